import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plain as check } from '../../functions/check.ts';
import { plain as rejoin } from '../../functions/rejoin.ts';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import { type LocalCloud, startLocalCloud } from '../../infra/local-cloud/local-cloud.ts';
import { WRITES_TABLE_DDL } from '../../infra/workload/writer.ts';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import { REBUILD_GRANTS } from '../../lib/operator/grants.ts';
import { findErrantByState } from '../../lib/operator/rejoin.ts';
import { waitFor } from '../support/wait-for.ts';

const CLUSTER = 'rejoin';

describe('check and rejoin on a live cluster', () => {
  let cluster: MariaDbCluster | undefined;
  let cloud: LocalCloud | undefined;
  let store: DynamoStateStore;

  /** Runs statements as root on one node without binlogging them (no errant GTID, no replication). */
  const local = async (id: string, ...sql: string[]) => {
    const conn = await mysql.createConnection({
      socketPath: cluster!.node(id).socket,
      user: 'root',
      password: '',
    });
    try {
      await conn.query('SET SESSION sql_log_bin = 0');
      for (const q of sql) await conn.query(q);
    } finally {
      conn.destroy();
    }
  };
  const slaveStatus = async (id: string) =>
    (await cluster!.query<Record<string, unknown>>(id, 'SHOW SLAVE STATUS'))[0];
  const gtidState = async (id: string) =>
    String((await cluster!.query<{ s: string }>(id, 'SELECT @@gtid_binlog_state AS s'))[0]?.s ?? '');

  beforeAll(async () => {
    cluster = await startCluster();
    await cluster.query('db1', WRITES_TABLE_DDL);
    await cluster.query('db1', "INSERT INTO app.writes (id, at, payload) VALUES (1, 0, 'a'), (2, 0, 'b')");
    cloud = await startLocalCloud({ cluster, clusterName: CLUSTER });
    store = new DynamoStateStore(cloud.tableName);
    await waitFor(
      async () => (await store.getClusterState(CLUSTER))?.analysis === 'NoProblem',
      30_000,
      'NoProblem',
    );
  });

  afterAll(async () => {
    await cloud?.stop();
    await cluster?.destroy();
  });

  it('finds a missing privilege of the admin account and a replica with read_only off', async () => {
    const healthy = await check({ cluster: CLUSTER });
    expect(healthy.errors, healthy.report).toBe(0);
    expect(healthy.ok).toBe(true);
    expect(healthy.vip.holder).toBe('db1');
    // Fencing and rebuild words as MariaDB names them (read from the live servers' semi-sync):
    // no MySQL-only names, and no clone finding (MariaDB rebuilds by logical copy).
    const fencing = healthy.findings.filter((f) => f.check === 'fencing');
    expect(fencing.length).toBeGreaterThan(0);
    for (const f of fencing) {
      expect(`${f.message} ${f.fix}`).not.toContain('rpl_semi_sync_source');
      expect(`${f.message} ${f.fix}`).not.toContain('super_read_only');
    }
    expect(fencing.map((f) => f.message).join(' ')).toContain('rpl_semi_sync_master_timeout');
    expect(healthy.findings.filter((f) => f.check === 'rebuild-clone')).toEqual([]);

    const admin = cluster!.credentials.admin.user;
    await local('db3', `REVOKE CONNECTION ADMIN ON *.* FROM '${admin}'@'127.0.0.1'`);
    await local('db2', 'SET GLOBAL read_only = OFF');
    try {
      const r = await check({ cluster: CLUSTER });
      expect(r.ok).toBe(false);
      const grant = r.findings.find((f) => f.check === 'admin-grants' && f.nodeId === 'db3');
      expect(grant?.severity).toBe('error');
      expect(grant?.message).toContain('CONNECTION ADMIN');
      expect(grant?.fix).toContain('GRANT CONNECTION ADMIN');
      const ro = r.findings.find((f) => f.check === 'read-only' && f.nodeId === 'db2');
      expect(ro?.severity).toBe('error');
      expect(ro?.fix).toContain('read_only=ON');
      expect(r.errors).toBe(2);
      expect(r.report).toContain('NOT READY');
    } finally {
      await local('db3', `GRANT CONNECTION ADMIN ON *.* TO '${admin}'@'127.0.0.1'`);
      await local('db2', 'SET GLOBAL read_only = ON');
    }
    expect((await check({ cluster: CLUSTER })).errors).toBe(0);
  });

  it('rejoins a clean old primary after a crash failover and a restart', async () => {
    const c = cluster!;
    const lc = cloud!;
    await c.crash('db1');
    await waitFor(
      () => lc.sfn.executions().some((e) => e.status !== 'RUNNING'),
      60_000,
      'the failover to end',
    );
    const execution = lc.sfn.executions()[0]!;
    expect(execution.status).toBe('SUCCEEDED');
    const primary = (await store.getClusterState(CLUSTER))!.primaryId;
    expect(primary).not.toBe('db1');
    expect((await store.getClusterState(CLUSTER))?.needsRejoin).toContain('db1');

    // The documented restart of an old primary: truncate an unacknowledged semi-sync tail, read-only.
    await c.restart('db1', { initRplRole: 'SLAVE', readOnly: true });
    const r = await rejoin({ cluster: CLUSTER, node: 'db1' });
    expect(r.outcome, r.report).toBe('rejoined');
    expect(r.errant).toEqual([]);
    const s = await slaveStatus('db1');
    expect(s?.Master_Port).toBe(c.node(primary).port);
    expect(s?.Slave_IO_Running).toBe('Yes');
    expect(s?.Slave_SQL_Running).toBe('Yes');
    expect(Number((await c.query('db1', 'SELECT @@read_only AS ro'))[0]?.ro)).toBe(1);
    expect((await store.getClusterState(CLUSTER))?.needsRejoin ?? []).not.toContain('db1');
    await c.query(primary, "INSERT INTO app.writes (id, at, payload) VALUES (3, 0, 'after rejoin')");
    await c.waitForReplicas(primary, 10_000);
    expect((await c.query('db1', 'SELECT id FROM app.writes WHERE id = 3')).length).toBe(1);
  });

  it('refuses to rejoin a node with an errant transaction, listing it and the options', async () => {
    const c = cluster!;
    const primary = (await store.getClusterState(CLUSTER))!.primaryId;
    // An operator writes to the old primary directly as root: a transaction nobody else has.
    await c.query('db1', 'STOP SLAVE');
    await c.query('db1', "INSERT INTO app.writes (id, at, payload) VALUES (4000, 0, 'errant')");
    const r = await rejoin({ cluster: CLUSTER, node: 'db1' });
    expect(r.outcome, r.report).toBe('refused');
    expect(r.errant.length).toBe(1);
    expect(r.errant[0]?.serverId).toBe(c.node('db1').serverId);
    expect(r.report).toContain(r.errant[0]!.gtid);
    expect(r.options?.some((o) => o.includes('"rebuild":true'))).toBe(true);
    expect(r.report).toContain('REFUSED');
    // Left fenced and untouched: read-only, not replicating, the errant row still there.
    expect(Number((await c.query('db1', 'SELECT @@read_only AS ro'))[0]?.ro)).toBe(1);
    expect((await slaveStatus('db1'))?.Slave_SQL_Running).toBe('No');
    expect((await c.query('db1', 'SELECT id FROM app.writes WHERE id = 4000')).length).toBe(1);
    expect(findErrantByState(await gtidState('db1'), await gtidState(primary)).length).toBe(1);
  });

  it('rebuilds the node from the primary when asked, dropping the errant transaction', async () => {
    const c = cluster!;
    const primary = (await store.getClusterState(CLUSTER))!.primaryId;
    const admin = c.credentials.admin.user;
    // The rebuild's extra privileges (documented in REBUILD_GRANTS): on the primary they replicate,
    // db1 does not replicate now, so it gets them locally.
    await c.query(primary, `GRANT ${REBUILD_GRANTS.join(', ')} ON *.* TO '${admin}'@'127.0.0.1'`);
    await local('db1', `GRANT ${REBUILD_GRANTS.join(', ')} ON *.* TO '${admin}'@'127.0.0.1'`);
    await c.query(primary, "INSERT INTO app.writes (id, at, payload) VALUES (5, 0, 'before rebuild')");

    const r = await rejoin({ cluster: CLUSTER, node: 'db1', rebuild: true });
    expect(r.outcome, r.report).toBe('rebuilt');
    expect(r.rebuild?.schemas).toEqual(expect.arrayContaining(['app', 'failover_meta']));
    expect(r.rebuild?.rows).toBeGreaterThan(0);
    await c.query(primary, "INSERT INTO app.writes (id, at, payload) VALUES (6, 0, 'after rebuild')");
    await c.waitForReplicas(primary, 15_000);
    const ids = (rows: Array<{ id: string | number }>) => rows.map((x) => Number(x.id)).sort((a, b) => a - b);
    const mine = ids(await c.query('db1', 'SELECT id FROM app.writes'));
    expect(mine).not.toContain(4000);
    expect(mine).toEqual(ids(await c.query(primary, 'SELECT id FROM app.writes')));
    const s = await slaveStatus('db1');
    expect(s?.Slave_IO_Running).toBe('Yes');
    expect(s?.Slave_SQL_Running).toBe('Yes');
    expect(findErrantByState(await gtidState('db1'), await gtidState(primary))).toEqual([]);
    expect(Number((await c.query('db1', 'SELECT @@read_only AS ro'))[0]?.ro)).toBe(1);
  });
});
