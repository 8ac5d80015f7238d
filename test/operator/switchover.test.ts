import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plain as acknowledge } from '../../functions/acknowledge.ts';
import { plain as check } from '../../functions/check.ts';
import { plain as plan } from '../../functions/plan.ts';
import { plain as rejoin } from '../../functions/rejoin.ts';
import { plain as switchover } from '../../functions/switchover.ts';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import { type LocalCloud, startLocalCloud } from '../../infra/local-cloud/local-cloud.ts';
import { missingAcked, startWriter, WRITES_TABLE_DDL, type Writer } from '../../infra/workload/writer.ts';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import { waitFor } from '../support/wait-for.ts';

const CLUSTER = 'ops';

describe('operator actions on a live cluster (switchover, plan, acknowledge, bad input)', () => {
  let cluster: MariaDbCluster | undefined;
  let cloud: LocalCloud | undefined;
  let store: DynamoStateStore;
  const writers: Writer[] = [];
  const conns: mysql.Connection[] = [];

  const primaryOf = async () => (await store.getClusterState(CLUSTER))!.primaryId;
  const rootOn = async (id: string) => {
    const conn = await mysql.createConnection({
      socketPath: cluster!.node(id).socket,
      user: 'root',
      password: '',
    });
    conns.push(conn);
    return conn;
  };
  const readOnly = async (id: string) =>
    Number((await cluster!.query<{ ro: number }>(id, 'SELECT @@read_only AS ro'))[0]?.ro);
  /** Everything an unchanged cluster shows: who is primary, writable, behind the VIP, the epoch. */
  const snapshot = async () => {
    const s = await store.getClusterState(CLUSTER);
    const p = s!.primaryId;
    return { primary: p, epoch: s!.epoch, primaryRo: await readOnly(p), vip: cloud!.vipHolder() };
  };

  beforeAll(async () => {
    cluster = await startCluster();
    await cluster.query('db1', WRITES_TABLE_DDL);
    cloud = await startLocalCloud({ cluster, clusterName: CLUSTER });
    store = new DynamoStateStore(cloud.tableName);
    await waitFor(
      async () => (await store.getClusterState(CLUSTER))?.analysis === 'NoProblem',
      30_000,
      'NoProblem',
    );
  });

  afterAll(async () => {
    for (const c of conns) c.destroy();
    await Promise.allSettled(writers.map((w) => w.stop()));
    await cloud?.stop();
    await cluster?.destroy();
  });

  it('switches over under write load without losing an acknowledged write, and the old primary replicates from the new one', async () => {
    const c = cluster!;
    const lc = cloud!;
    const app = c.credentials.app;
    const writer = startWriter({
      host: lc.vip.host,
      port: lc.vip.port,
      user: app.user,
      password: app.password,
      paceMs: 2,
    });
    writers.push(writer);
    await waitFor(() => writer.acked.length >= 100, 15_000, '100 acknowledged writes');

    const r = await switchover({ cluster: CLUSTER });
    expect(r.outcome, r.report).toBe('succeeded');
    const to = r.to!;
    expect(['db2', 'db3']).toContain(to);
    expect(r.writeBlockMs).toBeGreaterThan(0);
    expect(r.writeBlockMs).toBeLessThan(3000);
    expect(r.report).toContain('write block');
    expect(r.steps.map((s) => s.name)).toEqual(
      expect.arrayContaining([
        'BeginFailover',
        'SwitchoverPreCheck',
        'BlockWrites',
        'WaitCandidateCaughtUp',
        'PromoteCandidate',
        'RepointReplicas',
        'ReplicateOldPrimary',
        'MoveVip',
        'CompleteSwitchover',
      ]),
    );

    const newServerId = c.node(to).serverId;
    await waitFor(
      () => writer.acked.filter((a) => a.serverId === newServerId).length >= 50,
      15_000,
      '50 writes on the new primary',
    );
    await writer.stop();
    expect(await missingAcked(c, to, writer.acked)).toEqual([]);

    // The old primary replicates from the new one, read-only; the VIP is on the new primary.
    await waitFor(
      async () => {
        const [s] = await c.query<Record<string, unknown>>('db1', 'SHOW SLAVE STATUS');
        return (
          s?.Master_Port === c.node(to).port &&
          s?.Slave_IO_Running === 'Yes' &&
          s?.Slave_SQL_Running === 'Yes'
        );
      },
      10_000,
      'db1 replicating from the new primary',
    );
    expect(await readOnly('db1')).toBe(1);
    expect(await readOnly(to)).toBe(0);
    expect(lc.vipHolder()).toBe(to);
    const state = await store.getClusterState(CLUSTER);
    expect(state?.primaryId).toBe(to);
    expect(state?.needsRejoin ?? []).not.toContain('db1');
    expect(state?.failoverInProgress).toBeUndefined();
    const record = await store.getFailover(CLUSTER, r.epoch!);
    expect(record?.kind).toBe('switchover');
    expect(record?.status).toBe('succeeded');
    await c.waitForReplicas(to, 15_000);
  });

  it('refuses a switchover to a lagging candidate and leaves the cluster unchanged', async () => {
    const c = cluster!;
    const primary = await primaryOf();
    const candidate = ['db1', 'db2', 'db3'].find((id) => id !== primary)!;
    await c.query(primary, 'INSERT INTO app.writes (id, at, payload) VALUES (900000001, 0, ?)', ['lock']);
    await c.waitForReplicas(primary, 10_000);
    // A row lock on the candidate stalls its applier on the next change of that row.
    const holder = await rootOn(candidate);
    await holder.query('BEGIN');
    await holder.query('SELECT * FROM app.writes WHERE id = 900000001 FOR UPDATE');
    await c.query(primary, "UPDATE app.writes SET payload = 'moved' WHERE id = 900000001");
    await waitFor(
      async () => Number((await c.query(candidate, 'SHOW SLAVE STATUS'))[0]?.Seconds_Behind_Master) >= 3,
      20_000,
      'the candidate to lag 3 s',
    );
    const before = await snapshot();
    const r = await switchover({ cluster: CLUSTER, candidate, maxLagSeconds: 1 });
    expect(r.outcome, r.report).toBe('refused');
    expect(r.preChecks?.find((p) => p.check === 'candidate lag under the limit')?.ok).toBe(false);
    expect(r.report).toContain('REFUSED');
    const after = await snapshot();
    expect({ ...after, epoch: before.epoch }).toEqual(before);
    expect(after.primaryRo).toBe(0);
    await holder.query('ROLLBACK');
    await c.waitForReplicas(primary, 20_000);
  });

  it('refuses a switchover while a long transaction runs on the primary and leaves the cluster unchanged', async () => {
    const c = cluster!;
    const primary = await primaryOf();
    const trx = await rootOn(primary);
    await trx.query('BEGIN');
    await trx.query("INSERT INTO app.writes (id, at, payload) VALUES (900000002, 0, 'long')");
    await new Promise((res) => setTimeout(res, 2500));
    const before = await snapshot();
    const r = await switchover({ cluster: CLUSTER, maxTransactionSeconds: 1 });
    expect(r.outcome, r.report).toBe('refused');
    expect(r.preChecks?.find((p) => p.check === 'no long transaction on the primary')?.ok).toBe(false);
    const after = await snapshot();
    expect({ ...after, epoch: before.epoch }).toEqual(before);
    // Still writable for clients through the VIP.
    const app = c.credentials.app;
    const conn = await mysql.createConnection({
      host: cloud!.vip.host,
      port: cloud!.vip.port,
      user: app.user,
      password: app.password,
    });
    conns.push(conn);
    await conn.query("INSERT INTO app.writes (id, at, payload) VALUES (900000003, 0, 'after')");
    await trx.query('ROLLBACK');
  });

  it('moves the VIP back and restores the old primary when the candidate cannot catch up', async () => {
    const c = cluster!;
    const lc = cloud!;
    const primary = await primaryOf();
    const candidate = ['db1', 'db2', 'db3'].find((id) => id !== primary)!;
    await c.query(primary, 'INSERT INTO app.writes (id, at, payload) VALUES (900000004, 0, ?)', ['stall']);
    await c.waitForReplicas(primary, 10_000);
    // A row lock on the candidate stalls its applier on the next change of that row: it stays a
    // running replica (the pre-checks pass) but cannot apply the old primary's last transaction.
    const holder = await rootOn(candidate);
    await holder.query('BEGIN');
    await holder.query('SELECT * FROM app.writes WHERE id = 900000004 FOR UPDATE');
    await c.query(primary, "UPDATE app.writes SET payload = 'stalled' WHERE id = 900000004");
    const before = await snapshot();
    expect(before.vip).toBe(primary);

    const r = await switchover({
      cluster: CLUSTER,
      candidate,
      maxLagSeconds: 60,
      catchUpTimeoutSeconds: 1,
    });
    expect(r.outcome, r.report).toBe('aborted');
    expect(r.error?.name).toBe('SwitchoverCatchUpTimeoutError');
    expect(r.restored).toBe(true);
    expect(r.vipMovedBack).toBe(true);
    const steps = new Map(r.steps.map((s) => [s.name, s]));
    // The VIP really went to the candidate and came back, before the writes were restored.
    expect(steps.get('MoveVip')?.result).toBe('ok');
    expect(steps.get('WaitCandidateCaughtUp')?.result).toBe('error');
    expect(steps.get('MoveVipBack')?.result).toBe('ok');
    expect(steps.get('RestoreOldPrimary')?.result).toBe('ok');
    expect(steps.has('PromoteCandidate')).toBe(false);
    const names = r.steps.map((s) => s.name);
    expect(names.indexOf('MoveVipBack')).toBeLessThan(names.indexOf('RestoreOldPrimary'));

    // The old primary takes writes through the VIP again; the candidate is a read-only replica.
    expect(lc.vipHolder()).toBe(primary);
    expect(await readOnly(primary)).toBe(0);
    expect(await readOnly(candidate)).toBe(1);
    const app = c.credentials.app;
    const conn = await mysql.createConnection({
      host: lc.vip.host,
      port: lc.vip.port,
      user: app.user,
      password: app.password,
    });
    conns.push(conn);
    const [sid] = (await conn.query('SELECT @@server_id AS sid'))[0] as Array<{ sid: number }>;
    expect(Number(sid?.sid)).toBe(c.node(primary).serverId);
    await conn.query("INSERT INTO app.writes (id, at, payload) VALUES (900000005, 0, 'after abort')");
    const state = await store.getClusterState(CLUSTER);
    expect(state?.primaryId).toBe(primary);
    expect(state?.failoverInProgress).toBeUndefined();
    expect((await store.getFailover(CLUSTER, r.epoch!))?.status).toBe('failed');

    await holder.query('ROLLBACK');
    const [repl] = await c.query<Record<string, unknown>>(candidate, 'SHOW SLAVE STATUS');
    expect(repl?.Master_Port).toBe(c.node(primary).port);
    await c.waitForReplicas(primary, 30_000);
  });

  it('aborts without blocking writes when the VIP cannot be moved, and the old primary stays writable', async () => {
    const c = cluster!;
    const lc = cloud!;
    const primary = await primaryOf();
    lc.faults.set('AssignPrivateIpAddresses', {
      permanentError: {
        code: 'UnauthorizedOperation',
        message: 'You are not authorized to perform this operation.',
        status: 403,
      },
    });
    try {
      const t0 = Date.now();
      // The previous test stalled a replica; its heartbeat lag is not what this one is about.
      const r = await switchover({ cluster: CLUSTER, maxLagSeconds: 60 });
      expect(r.outcome, r.report).toBe('aborted');
      expect(r.error?.name).toBe('VipMoveFailedError');
      expect(r.restored).toBe(true);
      // The terminal VIP error ends the wait for the VIP at once, not at its verify deadline.
      expect(Date.now() - t0).toBeLessThan(10_000);
      const steps = new Map(r.steps.map((s) => [s.name, s]));
      expect(steps.get('MoveVip')?.result).toBe('error');
      expect(steps.get('BlockWrites')?.result).toBe('error');
      expect(steps.has('WaitCandidateCaughtUp')).toBe(false);
      expect(steps.has('PromoteCandidate')).toBe(false);
    } finally {
      lc.faults.clear('AssignPrivateIpAddresses');
    }
    expect(lc.vipHolder()).toBe(primary);
    expect(await readOnly(primary)).toBe(0);
    for (const id of ['db1', 'db2', 'db3'].filter((x) => x !== primary)) expect(await readOnly(id)).toBe(1);
    expect((await store.getClusterState(CLUSTER))?.primaryId).toBe(primary);
    await c.waitForReplicas(primary, 10_000);
  });

  it('plans a failover without changing anything', async () => {
    const before = await snapshot();
    const r = await plan({ cluster: CLUSTER });
    expect(r.primary).toBe(before.primary);
    expect(r.candidate).toBeDefined();
    expect(r.candidate).not.toBe(before.primary);
    expect(r.wouldFailover).toBe(false);
    expect(r.steps.map((s) => s.state)).toContain('PromoteCandidate');
    expect(r.verdicts.length).toBe(3);
    expect(r.report).toContain('nothing was changed');
    expect(await snapshot()).toEqual(before);
  });

  it('acknowledges an anti-flap block and records an event', async () => {
    await store.setBlockedUntil(CLUSTER, Date.now() + 3_600_000);
    const r = await acknowledge({ cluster: CLUSTER });
    expect(r.cleared).toBe(true);
    expect((await store.getClusterState(CLUSTER))?.blockedUntil).toBeUndefined();
    const events = await store.listEvents(CLUSTER, 20);
    expect(events.some((e) => e.type === 'BlockAcknowledged')).toBe(true);
    const again = await acknowledge({ cluster: CLUSTER });
    expect(again.cleared).toBe(false);
  });

  it('rejects bad input for every action with an error naming the field, and changes nothing', async () => {
    const before = await snapshot();
    const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
      [
        'switchover unknown field',
        () => switchover({ cluster: CLUSTER, candidat: 'db2' }),
        /candidat: unknown key/,
      ],
      [
        'switchover wrong type',
        () => switchover({ cluster: CLUSTER, candidate: 2 }),
        /candidate: .*expected string/i,
      ],
      ['switchover unknown cluster', () => switchover({ cluster: 'nope' }), /Unknown cluster "nope"/],
      [
        'switchover unknown node',
        () => switchover({ cluster: CLUSTER, candidate: 'db9' }),
        /Node "db9" is not in cluster/,
      ],
      ['rejoin missing node', () => rejoin({ cluster: CLUSTER }), /node: .*expected string/i],
      [
        'rejoin wrong type',
        () => rejoin({ cluster: CLUSTER, node: 'db1', rebuild: 'yes' }),
        /rebuild: .*expected boolean/i,
      ],
      ['rejoin unknown cluster', () => rejoin({ cluster: 'nope', node: 'db1' }), /Unknown cluster "nope"/],
      [
        'rejoin unknown node',
        () => rejoin({ cluster: CLUSTER, node: 'db9' }),
        /Node "db9" is not in cluster/,
      ],
      ['check unknown field', () => check({ cluster: CLUSTER, verbose: true }), /verbose: unknown key/],
      ['check wrong type', () => check({ cluster: 7 }), /cluster: .*expected string/i],
      ['check unknown cluster', () => check({ cluster: 'nope' }), /Unknown cluster "nope"/],
      [
        'acknowledge unknown field',
        () => acknowledge({ cluster: CLUSTER, force: true }),
        /force: unknown key/,
      ],
      ['acknowledge wrong type', () => acknowledge({ cluster: [] }), /cluster: .*expected string/i],
      ['acknowledge unknown cluster', () => acknowledge({ cluster: 'nope' }), /Unknown cluster "nope"/],
      ['plan unknown field', () => plan({ cluster: CLUSTER, node: 'db1' }), /node: unknown key/],
      ['plan wrong type', () => plan({ cluster: null }), /cluster: .*expected string/i],
      ['plan unknown cluster', () => plan({ cluster: 'nope' }), /Unknown cluster "nope"/],
    ];
    for (const [what, call, message] of cases) {
      await expect(call(), what).rejects.toThrow(message);
    }
    expect(await snapshot()).toEqual(before);
    expect(cloud!.sfn.executions().filter((e) => e.stateMachineName.endsWith('switchover')).length).toBe(5);
  });
});
