import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../infra/cluster/cleanup-registry.ts';
import {
  ADMIN_GRANTS,
  type HarnessAccount,
  type MariaDbCluster,
  startCluster,
} from '../../infra/cluster/mariadb-cluster.ts';

const harnessPath = fileURLToPath(new URL('../../infra/cluster/mariadb-cluster.ts', import.meta.url));

type Row = Record<string, unknown>;

async function connectAs(cluster: MariaDbCluster, id: string, account: HarnessAccount) {
  return mysql.createConnection({ ...cluster.connectionOptions(id, account), connectTimeout: 2000 });
}

async function rows(conn: mysql.Connection, sql: string, params?: unknown[]): Promise<Row[]> {
  const [result] = await conn.query(sql, params);
  return Array.isArray(result) ? (result as Row[]) : [];
}

async function statusOf(cluster: MariaDbCluster, id: string, name: string): Promise<string | undefined> {
  const [row] = await cluster.query<{ Value: string }>(id, 'SHOW GLOBAL STATUS LIKE ?', [name]);
  return row?.Value;
}

async function gtidBinlogPositions(cluster: MariaDbCluster): Promise<string[]> {
  return Promise.all(
    cluster.nodes.map(async (n) => {
      const [row] = await cluster.query<{ pos: string }>(n.id, 'SELECT @@GLOBAL.gtid_binlog_pos AS pos');
      return row!.pos;
    }),
  );
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

describe('MariaDbCluster', () => {
  let cluster: MariaDbCluster;
  let startupMs = 0;

  beforeAll(async () => {
    const t0 = Date.now();
    cluster = await startCluster();
    startupMs = Date.now() - t0;
    console.log(`3-node cluster ready and replicating in ${startupMs} ms`);
  });

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('starts three nodes replicating from db1 with semi-sync active in well under 15 s', async () => {
    expect(startupMs).toBeLessThan(15_000);
    expect(cluster.nodes.map((n) => n.id)).toEqual(['db1', 'db2', 'db3']);
    expect(new Set(cluster.nodes.map((n) => n.port)).size).toBe(3);
    const [primaryRo] = await cluster.query(cluster.nodes[0]!.id, 'SELECT @@read_only AS ro');
    expect(primaryRo.ro).toBe(0);
    for (const id of ['db2', 'db3']) {
      const [status] = await cluster.query(id, 'SHOW SLAVE STATUS');
      expect(status).toMatchObject({
        Slave_IO_Running: 'Yes',
        Slave_SQL_Running: 'Yes',
        Using_Gtid: 'Slave_Pos',
        Master_Port: cluster.node('db1').port,
        Master_User: 'repl',
      });
      const [ro] = await cluster.query(id, 'SELECT @@read_only AS ro, @@slave_parallel_threads AS threads');
      expect(ro).toEqual({ ro: 1, threads: 4 });
    }
    expect(await statusOf(cluster, 'db1', 'Rpl_semi_sync_master_status')).toBe('ON');
    expect(await statusOf(cluster, 'db1', 'Rpl_semi_sync_master_clients')).toBe('2');
    const [waitPoint] = await cluster.query('db1', 'SELECT @@rpl_semi_sync_master_wait_point AS wp');
    expect(waitPoint.wp).toBe('AFTER_SYNC');
    // Accounts were replicated, not created per node: one history everywhere.
    const positions = await gtidBinlogPositions(cluster);
    expect(new Set(positions).size).toBe(1);
    expect(positions[0]).toMatch(/^0-1-\d+$/);
  });

  it('writes secrets to mode-600 files', async () => {
    for (const cred of Object.values(cluster.credentials)) {
      expect(statSync(cred.passwordFile).mode & 0o777).toBe(0o600);
      expect(readFileSync(cred.passwordFile, 'utf8').trim()).toBe(cred.password);
    }
  });

  it('replicates a write on the primary to both replicas with a semi-sync acknowledgement', async () => {
    const acked = Number(await statusOf(cluster, 'db1', 'Rpl_semi_sync_master_yes_tx'));
    const app = await connectAs(cluster, 'db1', 'app');
    try {
      await app.query('CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))');
      await app.query("INSERT INTO app.t VALUES (1, 'before-crash')");
    } finally {
      await app.end();
    }
    expect(Number(await statusOf(cluster, 'db1', 'Rpl_semi_sync_master_yes_tx'))).toBeGreaterThanOrEqual(
      acked + 2,
    );
    await cluster.waitForReplicas('db1', 5000);
    for (const id of ['db2', 'db3']) {
      expect(await cluster.query(id, 'SELECT id, v FROM app.t')).toEqual([{ id: 1, v: 'before-crash' }]);
    }
  });

  it('grants the admin account each failover operation without ALL or SUPER', async () => {
    const primary = await connectAs(cluster, 'db1', 'admin');
    const replica = await connectAs(cluster, 'db3', 'admin');
    const app = await connectAs(cluster, 'db1', 'app');
    try {
      const grantText = (await rows(primary, 'SHOW GRANTS'))
        .map((g) => String(Object.values(g)[0]))
        .join('\n');
      expect(grantText).not.toMatch(/ALL PRIVILEGES ON \*\.\*/);
      expect(grantText).not.toMatch(/\bSUPER\b/);
      for (const privilege of ADMIN_GRANTS) expect(grantText).toContain(privilege);
      expect(grantText).toMatch(/ALL PRIVILEGES ON `failover_meta`\.\*/);
      // Not SUPER in practice either: a SUPER-only variable is refused.
      await expect(primary.query('SET GLOBAL general_log = ON')).rejects.toMatchObject({
        code: 'ER_SPECIFIC_ACCESS_DENIED_ERROR',
      });

      // Monitoring: replica status, binlog status, sessions and transactions of other users.
      expect((await rows(replica, 'SHOW SLAVE STATUS'))[0]).toMatchObject({ Slave_IO_Running: 'Yes' });
      expect((await rows(replica, 'SHOW ALL SLAVES STATUS'))[0]).toHaveProperty('Gtid_Slave_Pos');
      expect((await rows(primary, 'SHOW BINLOG STATUS'))[0]).toHaveProperty('File');
      expect((await rows(primary, 'SHOW BINARY LOGS')).length).toBeGreaterThan(0);
      expect((await rows(primary, 'SHOW SLAVE HOSTS')).length).toBe(2);
      const [appSession] = await rows(app, 'SELECT CONNECTION_ID() AS id');
      await app.query('BEGIN');
      await app.query("INSERT INTO app.t VALUES (99, 'uncommitted')");
      const sessions = await rows(
        primary,
        'SELECT ID, USER FROM information_schema.PROCESSLIST WHERE ID = ?',
        [appSession!.id],
      );
      expect(sessions).toEqual([{ ID: appSession!.id, USER: 'app' }]);
      const trx = await rows(
        primary,
        'SELECT trx_state FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ?',
        [appSession!.id],
      );
      expect(trx).toEqual([{ trx_state: 'RUNNING' }]);

      // Fencing: kill another user's session (its open transaction rolls back).
      await primary.query('KILL ?', [appSession!.id]);
      await expect(app.query('SELECT 1')).rejects.toThrow();
      expect(await cluster.query('db1', 'SELECT id FROM app.t WHERE id = 99')).toEqual([]);

      // Promotion/repointing steps on a replica.
      await replica.query('STOP SLAVE IO_THREAD');
      await replica.query('STOP SLAVE');
      const [pos] = await rows(replica, 'SELECT @@GLOBAL.gtid_slave_pos AS pos');
      await replica.query('SET GLOBAL gtid_slave_pos = ?', [pos!.pos]);
      await replica.query('RESET SLAVE');
      await replica.query('RESET SLAVE ALL');
      const repl = cluster.credentials.replication;
      await replica.query(
        'CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, ' +
          'MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1',
        ['127.0.0.1', cluster.node('db1').port, repl.user, repl.password],
      );
      await replica.query('START SLAVE');
      await cluster.waitForReplicaThreads('db3');
      await replica.query('SET GLOBAL rpl_semi_sync_slave_enabled = ON');
      await replica.query('SET GLOBAL read_only = ON');
      await primary.query('SET GLOBAL read_only = OFF');
      await primary.query('SET GLOBAL rpl_semi_sync_master_timeout = 10000');
      await primary.query('SET GLOBAL rpl_semi_sync_master_enabled = ON');
      await primary.query('SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC');

      // Heartbeat schema, written on the primary only.
      await primary.query(
        'INSERT INTO failover_meta.heartbeat VALUES (1, NOW(6), @@server_id) ' +
          'ON DUPLICATE KEY UPDATE ts = VALUES(ts), server_id = VALUES(server_id)',
      );
      // Not a general write account.
      await expect(primary.query("INSERT INTO app.t VALUES (7, 'admin')")).rejects.toMatchObject({
        code: 'ER_TABLEACCESS_DENIED_ERROR',
      });
    } finally {
      await Promise.all([primary.end(), replica.end(), app.end().catch(() => {})]);
    }
    await cluster.waitForReplicas('db1', 5000);
    expect(await cluster.query('db3', 'SELECT server_id FROM failover_meta.heartbeat')).toEqual([
      { server_id: 1 },
    ]);
    expect(new Set(await gtidBinlogPositions(cluster)).size).toBe(1);
  });

  it('refuses app writes on a read_only replica', async () => {
    const app = await connectAs(cluster, 'db2', 'app');
    try {
      await expect(app.query("INSERT INTO app.t VALUES (2, 'errant')")).rejects.toMatchObject({
        code: 'ER_OPTION_PREVENTS_STATEMENT',
      });
      await expect(app.query('SET GLOBAL read_only = OFF')).rejects.toThrow();
    } finally {
      await app.end();
    }
    expect(new Set(await gtidBinlogPositions(cluster)).size).toBe(1);
  });

  it('freezes a node on hang() so a new connection times out, and thaws it on resume()', async () => {
    cluster.hang('db3');
    const options = { ...cluster.connectionOptions('db3', 'app'), connectTimeout: 500 };
    const t0 = Date.now();
    await expect(mysql.createConnection(options)).rejects.toThrow();
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(3000);
    expect(cluster.isRunning('db3')).toBe(false);
    cluster.resume('db3');
    const conn = await mysql.createConnection(options);
    expect(await rows(conn, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await conn.end();
    await cluster.waitForReplicaThreads('db3');
  });

  it('kills the process on crash() and brings the node back with its data on restart()', async () => {
    const pid = cluster.node('db2').pid!;
    await cluster.crash('db2');
    expect(isProcessAlive(pid)).toBe(false);
    expect(cluster.node('db2').pid).toBeUndefined();
    await expect(
      mysql.createConnection({ ...cluster.connectionOptions('db2', 'app'), connectTimeout: 1000 }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // db3 still acknowledges, so this commit does not wait for the semi-sync timeout.
    await cluster.query('db1', "INSERT INTO app.t VALUES (3, 'while-down')");

    await cluster.restart('db2', { readOnly: true });
    expect(cluster.node('db2').pid).not.toBe(pid);
    expect(await cluster.query('db2', 'SELECT @@read_only AS ro')).toEqual([{ ro: 1 }]);
    await cluster.waitForReplicaThreads('db2');
    await cluster.waitForReplicas('db1', 5000);
    expect(await cluster.query('db2', 'SELECT id, v FROM app.t ORDER BY id')).toEqual([
      { id: 1, v: 'before-crash' },
      { id: 3, v: 'while-down' },
    ]);
  });

  it('restarts a cleanly stopped node', async () => {
    await cluster.stop('db3');
    expect(cluster.node('db3').pid).toBeUndefined();
    await cluster.restart('db3', { readOnly: true });
    await cluster.waitForReplicaThreads('db3');
    await cluster.waitForReplicas('db1', 5000);
  });

  it('leaves no process and no directory after destroy(), even with a hung node', async () => {
    const pids = cluster.nodes.map((n) => n.pid!);
    expect(pids.every(isProcessAlive)).toBe(true);
    cluster.hang('db2');
    await cluster.destroy();
    expect(pids.filter(isProcessAlive)).toEqual([]);
    expect(existsSync(cluster.dir)).toBe(false);
    await cluster.destroy();
  });
});

interface ChildReport {
  dir: string;
  pids: number[];
}

/** Runs a program that starts a one-node cluster in a child Node process and reports its layout. */
function startChild(
  then: string,
): Promise<{ report: ChildReport; exited: Promise<number | null>; pid: number }> {
  const code =
    `import { startCluster } from ${JSON.stringify(harnessPath)};\n` +
    'const c = await startCluster({ nodes: 1 });\n' +
    'console.log(JSON.stringify({ dir: c.dir, pids: c.nodes.map((n) => n.pid) }));\n' +
    then;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line !== undefined) resolve({ report: JSON.parse(line) as ChildReport, exited, pid: child.pid! });
    });
    void exited.then((status) => reject(new Error(`child exited (${status}) before reporting: ${err}`)));
  });
}

describe('cluster cleanup when the owning process dies', () => {
  const leftovers: ChildReport[] = [];

  afterAll(async () => {
    // Only reached when an assertion failed: do not leave the child's servers behind.
    for (const r of leftovers) {
      for (const pid of r.pids.filter(isProcessAlive)) process.kill(pid, 'SIGKILL');
      rmSync(r.dir, { recursive: true, force: true });
    }
  });

  it('kills the servers and removes the dir when the program dies of an uncaught error', async () => {
    const { report, exited } = await startChild("setTimeout(() => { throw new Error('boom'); }, 10);");
    leftovers.push(report);
    expect(await exited).not.toBe(0);
    expect(report.pids.filter(isProcessAlive)).toEqual([]);
    expect(existsSync(report.dir)).toBe(false);
  });

  it('kills the servers and removes the dir through the watchdog when the program is SIGKILLed', async () => {
    const { report, exited, pid } = await startChild('setInterval(() => {}, 1000);');
    leftovers.push(report);
    expect(report.pids.every(isProcessAlive)).toBe(true);
    process.kill(pid, 'SIGKILL');
    await exited;
    expect(await waitFor(() => !report.pids.some(isProcessAlive) && !existsSync(report.dir), 5000)).toBe(
      true,
    );
  });
});

/** Pids of live processes whose command line mentions `dir` (what the harness started there). */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (
        readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(`${dir}/`) &&
        isProcessAlive(Number(entry))
      ) {
        pids.push(Number(entry));
      }
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

describe('startCluster', () => {
  const parent = mkdtempSync(join(tmpdir(), 'smf-cluster-fail-'));

  afterAll(() => {
    for (const pid of processesUsing(parent)) process.kill(pid, 'SIGKILL');
    rmSync(parent, { recursive: true, force: true });
  });

  it('cleans up the nodes it started and reports the error log when a node fails half way', async () => {
    const baseDir = join(parent, 'c');
    await expect(
      startCluster({ baseDir, extraMyCnf: (id) => (id === 'db3' ? 'no_such_option=1' : '') }),
    ).rejects.toThrow(/db3[\s\S]*unknown variable 'no_such_option=1'/);
    expect(processesUsing(baseDir)).toEqual([]);
    expect(existsSync(baseDir)).toBe(false);
  });

  it('refuses a non-empty baseDir, which destroy() would otherwise delete', async () => {
    const busy = join(parent, 'busy');
    mkdirSync(busy);
    writeFileSync(join(busy, 'keep.txt'), 'mine');
    await expect(startCluster({ baseDir: busy, nodes: 1 })).rejects.toThrow(/not empty/);
    expect(readFileSync(join(busy, 'keep.txt'), 'utf8')).toBe('mine');
  });
});
