/**
 * Every MariaDB operation of the dialect, run through the named operations (Inst) against a
 * real 3-node MariaDB 10.11 cluster from the harness, as the failover admin account (the least
 * privileges of lib/operator/grants.ts). Real outcomes: rows that arrive or do not, threads that
 * run or stop, sessions that die, writes refused.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import { AdminSession } from '../../lib/adapters/mysql/connection.ts';
import { dialectWords } from '../../lib/adapters/mysql/dialect/vocabulary.ts';
import { Inst, openInst, translate } from '../../lib/adapters/mysql/operations.ts';
import { InvalidSqlValueError, MissingPrivilegeError, ReplicationNotRunningError } from '../../lib/errors.ts';
import { missingGlobalGrants, parseGrants } from '../../lib/operator/grants.ts';

let cluster: MariaDbCluster;
const sessions: AdminSession[] = [];
const timeouts = { connectTimeoutMs: 2000, queryTimeoutMs: 15_000 };

async function adminSession(id: string): Promise<AdminSession> {
  const o = cluster.connectionOptions(id, 'admin');
  const s = await AdminSession.open(o, o, timeouts, id);
  sessions.push(s);
  return s;
}

async function inst(id: string): Promise<Inst> {
  return openInst(await adminSession(id), id);
}

function replSource(
  id: string,
  account: { user: string; password: string } = cluster.credentials.replication,
) {
  const n = cluster.node(id);
  return { host: n.host, port: n.port, user: account.user, password: account.password };
}

async function appWrite(id: string, n: number): Promise<void> {
  const conn = await mysql.createConnection({
    ...cluster.connectionOptions(id, 'app'),
    connectTimeout: 2000,
  });
  try {
    for (let i = 0; i < n; i++) await conn.query('INSERT INTO app.t (note) VALUES (?)', [`row on ${id}`]);
  } finally {
    await conn.end();
  }
}

async function count(id: string, where = '1=1'): Promise<number> {
  const [r] = await cluster.query<{ n: number | string }>(
    id,
    `SELECT COUNT(*) AS n FROM app.t WHERE ${where}`,
  );
  return Number(r?.n);
}

async function binlogPos(id: string): Promise<string> {
  const [r] = await cluster.query<{ p: string }>(id, 'SELECT @@GLOBAL.gtid_binlog_pos AS p');
  return r!.p;
}

beforeAll(async () => {
  cluster = await startCluster({ nodes: 3 });
  await cluster.query('db1', 'CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(64))');
  await cluster.waitForReplicas('db1');
});

afterAll(async () => {
  for (const s of sessions) await s.close();
  await cluster?.destroy();
});

describe('MariaDB dialect against a live cluster', () => {
  it('detects MariaDB 10.11 and reads a replica status in the normalised shape', async () => {
    const db2 = await inst('db2');
    expect(db2.dialect.name).toBe('mariadb');
    expect(db2.dialect.version).toMatchObject({ flavor: 'mariadb', major: 10, minor: 11 });
    expect(db2.quote.noBackslashEscapes).toBe(false);
    const st = await db2.readReplicaStatus();
    expect(st).toMatchObject({
      flavor: 'mariadb',
      ioState: 'Yes',
      sqlRunning: true,
      sourcePort: cluster.node('db1').port,
      autoPosition: true,
      usingGtid: 'Slave_Pos',
    });
    expect(st!.receivedGtid).toBe(await binlogPos('db1'));
    expect(st!.heartbeatsReceived).not.toBeNull();
    // The primary is not a replica.
    expect(await (await inst('db1')).readReplicaStatus()).toBeUndefined();
    const pos = await (await inst('db1')).readGtidPosition();
    expect(pos).toMatchObject({ flavor: 'mariadb', binlog: await binlogPos('db1'), purged: '' });
    const bl = await (await inst('db1')).readBinlogStatus();
    expect(bl?.file).toMatch(/\.\d{6}$/);
    expect(bl?.position).toBeGreaterThan(0);
  });

  it('stops only the IO thread; applyRelayLog reaches what was received and times out beyond it', async () => {
    const db2 = await inst('db2');
    await db2.stopReplicationIo();
    const st = await db2.readReplicaStatus();
    expect(st?.ioState).toBe('No');
    expect(st?.sqlRunning).toBe(true);
    await appWrite('db1', 3); // db3 receives these, db2 cannot
    const ahead = await binlogPos('db1');
    expect(await (await inst('db3')).applyRelayLog(ahead, 10)).toBe('reached');
    expect(await db2.applyRelayLog(st!.receivedGtid, 10)).toBe('reached');
    expect(await count('db2')).toBe(0);
    expect(await count('db3')).toBe(3);
    const t0 = Date.now();
    expect(await db2.applyRelayLog(ahead, 1)).toBe('timeout');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  });

  it('collects from a replica ahead up to its received position, never its errant tail, then drops the relay log', async () => {
    // db3 gets a local (errant) write in a domain of its own, after what it received from db1.
    // An explicit id far above db1's: the errant row must not collide with what db1 sends next.
    const root = await mysql.createConnection({ socketPath: cluster.node('db3').socket, user: 'root' });
    try {
      await root.query('SET SESSION gtid_domain_id = 9');
      await root.query("INSERT INTO app.t (id, note) VALUES (1000, 'errant')");
    } finally {
      await root.end();
    }
    expect(await binlogPos('db3')).toMatch(/(^|,)9-3-1(,|$)/);
    const db3 = await inst('db3');
    const received = (await db3.readReplicaStatus())!.receivedGtid;
    expect(received).not.toMatch(/(^|,)9-/);

    const db2 = await inst('db2');
    const outcome = await db2.collectFrom(replSource('db3'), received, 20);
    expect(outcome).toBe('reached');
    expect(await count('db2')).toBe(3);
    expect(await count('db2', "note = 'errant'")).toBe(0);
    const pos = await db2.readGtidPosition();
    expect(db2.dialect.gtid.contains(pos.executed, await binlogPos('db1'))).toBe(true);
    expect(pos.executed).not.toMatch(/(^|,)9-/);
    const st = await db2.readReplicaStatus();
    expect(st?.ioState).toBe('No');
    expect(st?.sqlRunning).toBe(false);
    // The errant transaction stays db3's alone.
    const errant = db2.dialect.gtid.errant(await binlogPos('db3'), [await binlogPos('db1')]);
    expect(errant.count).toBe(1);
  });

  it('follows the primary again as a semi-sync replica and applies new writes', async () => {
    const db2 = await inst('db2');
    await db2.followPrimary(replSource('db1'), { semiSync: true });
    const st = await db2.waitReplicationRunning(10_000);
    expect(st.sourcePort).toBe(cluster.node('db1').port);
    await appWrite('db1', 2);
    const target = await binlogPos('db1');
    expect(await db2.applyRelayLog(target, 10)).toBe('reached');
    expect(await count('db2')).toBe(5);
    // Idempotent: the same call again re-points to the same source and keeps running.
    await db2.followPrimary(replSource('db1'), { semiSync: true });
    expect((await db2.waitReplicationRunning(10_000)).sourcePort).toBe(cluster.node('db1').port);
  });

  it('quotes a password with quotes and backslashes right under both sql_modes', async () => {
    const password = `p'a\\ss"w''o\\'rd`;
    await cluster.query('db1', 'CREATE USER ?@? IDENTIFIED BY ?', ['repl_q', '127.0.0.1', password]);
    await cluster.query('db1', 'GRANT REPLICATION SLAVE ON *.* TO ?@?', ['repl_q', '127.0.0.1']);
    await cluster.waitForReplicas('db1');
    const account = { user: 'repl_q', password };

    const plain = await inst('db2');
    await plain.followPrimary(replSource('db1', account));
    expect((await plain.waitReplicationRunning(10_000)).ioState).toBe('Yes');

    const s = await adminSession('db2');
    await s.query("SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES')");
    const nbe = await openInst(s, 'db2');
    expect(nbe.quote.noBackslashEscapes).toBe(true);
    await nbe.followPrimary(replSource('db1', account));
    expect((await nbe.waitReplicationRunning(10_000)).ioState).toBe('Yes');

    // The wrong quoting really breaks authentication: this test can fail.
    const wrong = new Inst(s, 'db2', nbe.dialect, { noBackslashEscapes: false });
    await wrong.followPrimary(replSource('db1', account));
    const failure = await wrong.waitReplicationRunning(4000).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ReplicationNotRunningError);
    expect((failure as ReplicationNotRunningError).details).toMatchObject({ lastIoErrno: 1045 });
    await nbe.followPrimary(replSource('db1'));
    await nbe.waitReplicationRunning(10_000);
  });

  it('refuses an unsafe host before touching the node, and keeps passwords out of errors', async () => {
    const db2 = await inst('db2');
    await expect(
      db2.followPrimary({ ...replSource('db1'), host: "db1' , MASTER_PORT=1" }),
    ).rejects.toBeInstanceOf(InvalidSqlValueError);
    expect((await db2.readReplicaStatus())?.ioState).toBe('Yes'); // nothing was stopped

    // A real server error on a statement holding a password: the message says what failed, not the secret.
    const secret = 'Sup3r-s3cret-pw';
    const s = await adminSession('db2');
    const err = await s
      .query(`CHANGE MASTER TO MASTER_PASSWORD = '${secret}', BOGUS = 1`)
      .catch((e: unknown) => e);
    // mysql2 attaches the SQL to its errors; the session (connection.ts) scrubs it already.
    expect(JSON.stringify({ ...(err as object), message: (err as Error).message })).not.toContain(secret);
    const typed = translate(err, 'db2', 'followPrimary', [secret]);
    expect(typed.message).toMatch(/followPrimary on db2 failed: ER_PARSE_ERROR/);
    expect(typed.message).not.toContain(secret);
    expect(JSON.stringify({ ...typed, cause: typed.cause })).not.toContain(secret);
    // And translate holds on its own, for a raw driver error that still carries `sql`.
    const raw = Object.assign(new Error(`You have an error in your SQL syntax near '${secret}' at line 1`), {
      code: 'ER_PARSE_ERROR',
      errno: 1064,
      sql: `CHANGE MASTER TO MASTER_PASSWORD = '${secret}'`,
    });
    const typedRaw = translate(raw, 'db2', 'followPrimary', [secret]);
    expect(JSON.stringify({ ...typedRaw, message: typedRaw.message, cause: typedRaw.cause })).not.toContain(
      secret,
    );

    // The app account lacks the privileges: a typed error naming the operation.
    const o = cluster.connectionOptions('db2', 'app');
    const app = await AdminSession.open(o, o, timeouts, 'db2');
    sessions.push(app);
    const appInst = await openInst(app, 'db2');
    await expect(appInst.stopReplicationIo()).rejects.toBeInstanceOf(MissingPrivilegeError);
  });

  it('fences the primary: writes refused, client sessions killed, replication kept', async () => {
    const db1 = await inst('db1');
    const client = await mysql.createConnection({
      ...cluster.connectionOptions('db1', 'app'),
      connectTimeout: 2000,
    });
    client.on('error', () => {});
    await client.query('SELECT 1');
    const { killed } = await db1.fence();
    expect(killed).toBeGreaterThanOrEqual(1);
    await expect(client.query('SELECT 1')).rejects.toThrow();
    expect(await db1.readReadOnly()).toEqual({ readOnly: true, superReadOnly: false });
    const fresh = await mysql.createConnection({
      ...cluster.connectionOptions('db1', 'app'),
      connectTimeout: 2000,
    });
    await expect(fresh.query("INSERT INTO app.t (note) VALUES ('refused')")).rejects.toMatchObject({
      code: 'ER_OPTION_PREVENTS_STATEMENT',
    });
    await fresh.end();
    // The replicas' dump threads survived the kill.
    expect((await (await inst('db3')).readReplicaStatus())?.ioState).toBe('Yes');
    expect((await (await inst('db2')).readReplicaStatus())?.ioState).toBe('Yes');
    await db1.setReadOnly(false);
    await appWrite('db1', 1);
    expect(await count('db1')).toBe(6);
  });

  it('turns semi-sync off and on again on the primary and reads it back under the built-in names', async () => {
    const db1 = await inst('db1');
    const before = await db1.readSemiSync();
    expect(before).toMatchObject({
      family: 'builtin',
      masterEnabled: true,
      masterActive: true,
      waitPoint: 'AFTER_SYNC',
    });
    expect(before.masterClients).toBe(2);
    await db1.disableSemiSyncPrimary();
    expect(await db1.readSemiSync()).toMatchObject({ masterEnabled: false, masterActive: false });
    await db1.enableSemiSyncPrimary({ timeoutMs: 7000 });
    let after = await db1.readSemiSync();
    for (let i = 0; i < 100 && !(after.masterActive && after.masterClients === 2); i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = await db1.readSemiSync();
    }
    expect(after).toMatchObject({
      masterEnabled: true,
      masterActive: true,
      masterClients: 2,
      timeoutMs: 7000,
    });
    // A committed write is acknowledged by a replica (the yes-tx counter grows).
    const yes = async () =>
      Number(
        (
          await cluster.query<{ Value: string }>(
            'db1',
            "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_yes_tx'",
          )
        )[0]?.Value,
      );
    const y0 = await yes();
    await appWrite('db1', 1);
    expect(await yes()).toBe(y0 + 1);
    // Replica side: off and on under the built-in name.
    const db3 = await inst('db3');
    await db3.setSemiSyncReplica(false);
    expect((await db3.readSemiSync()).slaveEnabled).toBe(false);
    await db3.setSemiSyncReplica(true);
    expect((await db3.readSemiSync()).slaveEnabled).toBe(true);
  });

  it('starts and stops each thread on its own, and RESET SLAVE ALL forgets the source', async () => {
    const db3 = await inst('db3');
    await db3.stopReplicationSql();
    expect(await db3.readReplicaStatus()).toMatchObject({ ioState: 'Yes', sqlRunning: false });
    await appWrite('db1', 1);
    const target = await binlogPos('db1');
    // Received but not applied while the SQL thread is stopped.
    expect(await db3.applyRelayLog(target, 1)).toBe('timeout');
    await db3.startReplicationSql();
    expect(await db3.applyRelayLog(target, 10)).toBe('reached');
    await db3.stopReplicationIo();
    expect(await db3.readReplicaStatus()).toMatchObject({ ioState: 'No', sqlRunning: true });
    await db3.startReplicationIo();
    expect((await db3.waitReplicationRunning(10_000)).ioState).toBe('Yes');
    await db3.stopReplication();
    await db3.resetReplicaAll();
    expect(await db3.readReplicaStatus()).toBeUndefined();
    await expect(db3.waitReplicationRunning(1000)).rejects.toThrow('replicates from no source');
    await db3.followPrimary(replSource('db1'), { semiSync: true });
    expect((await db3.waitReplicationRunning(10_000)).sourcePort).toBe(cluster.node('db1').port);
    expect(await db3.applyRelayLog(await binlogPos('db1'), 10)).toBe('reached');
  });

  it('words an operator message with the statement this server runs (START SLAVE IO_THREAD here)', async () => {
    const db3 = await inst('db3');
    const words = dialectWords(db3.dialect);
    expect(words.startIo).toBe('START SLAVE IO_THREAD');
    await db3.stopReplicationIo();
    expect(await db3.readReplicaStatus()).toMatchObject({ ioState: 'No' });
    // What the failover-failed alert tells the operator to run, run as an operator would.
    await cluster.query('db3', words.startIo);
    expect((await db3.waitReplicationRunning(10_000)).ioState).toBe('Yes');
  });

  it('ran everything with exactly the grants the MariaDB dialect lists', async () => {
    const db1 = await inst('db1');
    const rows = await cluster.query<Record<string, string>>('db1', 'SHOW GRANTS FOR ?@?', [
      cluster.credentials.admin.user,
      '127.0.0.1',
    ]);
    const grants = parseGrants(rows.map((r) => Object.values(r)[0]!));
    const wanted = db1.dialect.adminGrants().map((g) => g.privilege);
    expect(missingGlobalGrants(grants, wanted)).toEqual([]);
    expect(grants.get('*.*')?.has('SUPER')).toBe(false);
    expect(grants.get('*.*')?.has('ALL')).toBe(false);
  });
});
