/**
 * Safe promotion on a real 4-node MariaDB cluster and the local cloud (packaged state machine,
 * dynalite, EC2, EventBridge and Lambda emulators). One cluster, three incidents in sequence:
 *   1. db1 crashes: db2 is promoted although it received least (db3 must_not, db4 lagging),
 *      after collecting what db3 received; a duplicated and a stale execution do nothing.
 *   2. db1 restarts writable: not reachable through the VIP, needs rejoin, re-fenced.
 *   3. db2 crashes: a relay-log timeout and a pedantic errant veto fail cleanly; then the
 *      steps, each run twice, promote db4; a failing post hook marks the failover failed.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import { type LocalCloud, startLocalCloud } from '../../infra/local-cloud/local-cloud.ts';
import { missingAcked, startWriter, WRITES_TABLE_DDL, type Writer } from '../../infra/workload/writer.ts';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import { fenceReturnedPrimaries } from '../../lib/failover/fence-returned.ts';
import {
  beginFailover,
  catchUpCandidate,
  completeFailover,
  electCandidateStep,
  type FailoverContext,
  type FailoverRequest,
  failoverFailed,
  fenceOldPrimary,
  moveVip,
  promoteCandidate,
  repointReplicas,
} from '../../lib/failover/steps.ts';
import { probeCluster } from '../../lib/health/monitor.ts';
import { createRuntime, getRuntime, resetRuntime } from '../../lib/runtime.ts';
import { seedClusterState } from '../support/seed-state.ts';
import { startExecution } from '../support/start-execution.ts';
import { holdTableLock } from '../support/table-lock.ts';
import { waitFor } from '../support/wait-for.ts';

const NAME = 'sp';

describe('safe promotion', () => {
  let cluster: MariaDbCluster | undefined;
  let cloud: LocalCloud | undefined;
  let store: DynamoStateStore;
  const writers: Writer[] = [];
  const logs: Array<Record<string, unknown>> = [];
  let heartbeat: NodeJS.Timeout | undefined;
  let firstCtx: FailoverContext | undefined;

  const c = () => cluster!;
  const lc = () => cloud!;

  /** Rewrites the cluster's config file (as an operator would) and rebuilds the runtime. */
  function setConfig(change: (cfg: Record<string, any>) => void): void {
    const file = lc().configFile;
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { clusters: Array<Record<string, any>> };
    change(doc.clusters[0]!);
    writeFileSync(file, JSON.stringify(doc, null, 2));
    resetRuntime(createRuntime(process.env, { log: (e) => logs.push(e) }));
  }

  function request(expectedEpoch: number, executionName: string): FailoverRequest {
    return {
      cluster: NAME,
      kind: 'failover',
      failedPrimary: '',
      expectedEpoch,
      incidentId: `incident-${executionName}`,
      executionName,
    };
  }

  function start(name: string, input: FailoverRequest): Promise<void> {
    return startExecution(lc().stateMachineArn, name, input);
  }

  async function waitDone(names: string[]) {
    await waitFor(
      () =>
        names.every((n) =>
          lc()
            .sfn.executions()
            .some((e) => e.name === n && e.status !== 'RUNNING'),
        ),
      60_000,
      `executions ${names.join(', ')} to end`,
    );
    return names.map(
      (n) =>
        lc()
          .sfn.executions()
          .find((e) => e.name === n)!,
    );
  }

  async function readOnly(id: string): Promise<number> {
    const [r] = await c().query<{ ro: number }>(id, 'SELECT @@read_only AS ro');
    return Number(r?.ro);
  }

  async function replicatingFrom(id: string, primary: string): Promise<boolean> {
    const [s] = await c().query<Record<string, unknown>>(id, 'SHOW SLAVE STATUS');
    return (
      Number(s?.Master_Port) === c().node(primary).port &&
      s?.Slave_IO_Running === 'Yes' &&
      s?.Slave_SQL_Running === 'Yes'
    );
  }

  async function checksum(id: string): Promise<string> {
    const [r] = await c().query<{ Checksum: string }>(id, 'CHECKSUM TABLE app.writes');
    return String(r?.Checksum);
  }

  function vipWriter(table = 'app.writes'): Writer {
    const app = c().credentials.app;
    const w = startWriter({
      host: lc().vip.host,
      port: lc().vip.port,
      user: app.user,
      password: app.password,
      paceMs: 2,
      table,
    });
    writers.push(w);
    return w;
  }

  beforeAll(async () => {
    cluster = await startCluster({ nodes: 4 });
    await cluster.query('db1', WRITES_TABLE_DDL);
    cloud = await startLocalCloud({
      cluster,
      clusterName: NAME,
      schedule: false,
      clusterOverrides: { failover: { blockPeriodSeconds: 0, maxLagSeconds: 4 } },
      onLog: (e) => logs.push(e),
    });
    store = new DynamoStateStore(cloud.tableName);
    setConfig((cfg) => {
      cfg.nodes.find((n: { id: string }) => n.id === 'db3').promotionRule = 'must_not';
    });
    await seedClusterState(store, NAME, 'db1');
  }, 120_000);

  afterAll(async () => {
    clearInterval(heartbeat);
    for (const w of writers) await w.stop();
    await cloud?.stop();
    await cluster?.destroy();
  });

  it('promotes the less advanced replica when the most advanced is must_not and the other lags, after collecting what they received, losing no acknowledged write', async () => {
    // The prober's heartbeat, as the health check writes it on the primary.
    heartbeat = setInterval(() => {
      c()
        .query(
          'db1',
          'REPLACE INTO failover_meta.heartbeat (id, ts, server_id) VALUES (1, NOW(6), @@server_id)',
        )
        .catch(() => {});
    }, 200);
    const writer = vipWriter();
    await waitFor(() => writer.acked.length >= 100, 15_000, '100 acknowledged writes');
    // db4 stops applying (it lags ~7 s); later db2 stops receiving (about 1 s behind), while
    // db3 and db4 keep acknowledging.
    await c().query('db4', 'STOP SLAVE SQL_THREAD');
    await new Promise((r) => setTimeout(r, 6000));
    await c().query('db2', 'STOP SLAVE IO_THREAD');
    const base = writer.acked.length;
    await waitFor(() => writer.acked.length >= base + 200, 15_000, '200 more writes');
    await c().crash('db1');
    clearInterval(heartbeat);

    // Two health checks confirming at once start the same execution name; a third requester
    // with another name and the same (soon stale) epoch is refused by the epoch claim.
    const input = { ...request(0, 'sp-failover-e1'), failedPrimary: 'db1' };
    await Promise.all([
      start('sp-failover-e1', input),
      start('sp-failover-e1', input),
      start('sp-failover-e1-other', { ...input, executionName: 'sp-failover-e1-other' }),
    ]);
    const execs = await waitDone(['sp-failover-e1', 'sp-failover-e1-other']);
    expect(lc().sfn.executions()).toHaveLength(2);
    const won = execs.filter((e) => e.status === 'SUCCEEDED');
    const lost = execs.filter((e) => e.status === 'FAILED');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.states.map((s) => s.name)).toEqual(['BeginFailover', 'FailoverFailed', 'Failed']);
    expect(lost[0]!.states[0]!.errors.map((e) => e.error)).toContain('StaleEpochError');

    const ctx = JSON.parse(won[0]!.output ?? '{}') as FailoverContext;
    firstCtx = ctx;
    expect(ctx.candidate).toBe('db2');
    const record = await store.getFailover(NAME, 1);
    expect(record?.status).toBe('succeeded');
    const elect = record?.steps.find((s) => s.name === 'ElectCandidate');
    const verdicts = elect?.detail?.verdicts as Array<{ nodeId: string; reasons: string[] }>;
    expect(verdicts.find((v) => v.nodeId === 'db3')?.reasons.join(' ')).toContain('must_not');
    expect(verdicts.find((v) => v.nodeId === 'db4')?.reasons.join(' ')).toMatch(
      /not eligible: lag [\d.]+ s over the limit of 4 s/,
    );
    const catchUp = record?.steps.find((s) => s.name === 'CatchUpCandidate');
    const from = ((catchUp?.detail?.caughtUpFrom ?? []) as Array<{ from: string }>).map((x) => x.from);
    expect(from).toEqual(['db3']);
    const state = await store.getClusterState(NAME);
    expect(state?.primaryId).toBe('db2');
    expect(state?.epoch).toBe(1);
    expect(state?.lastFailover?.status).toBe('succeeded');

    // Writes resume through the VIP on db2; every acknowledged id is there.
    const db2 = c().node('db2').serverId;
    await waitFor(
      () => writer.acked.filter((a) => a.serverId === db2).length >= 50,
      20_000,
      '50 writes on db2',
    );
    await writer.stop();
    expect(await missingAcked(c(), 'db2', writer.acked)).toEqual([]);

    // Both other replicas follow db2 (no 1236: none is ahead of it) and end with equal data.
    for (const id of ['db3', 'db4'])
      await waitFor(() => replicatingFrom(id, 'db2'), 10_000, `${id} replicating`);
    await c().waitForReplicas('db2');
    const sums = await Promise.all(['db2', 'db3', 'db4'].map(checksum));
    expect(new Set(sums).size).toBe(1);
    const [semi] = await c().query<{ e: number; w: string }>(
      'db2',
      'SELECT @@rpl_semi_sync_master_enabled AS e, @@rpl_semi_sync_master_wait_point AS w',
    );
    expect(Number(semi?.e)).toBe(1);
    expect(semi?.w).toBe('AFTER_SYNC');
    expect(await readOnly('db2')).toBe(0);

    const types = lc()
      .eventBridge.events()
      .filter((e) => e.detail.epoch === 1)
      .map((e) => e.detailType);
    expect(types).toEqual(['MySQL Failover Started', 'MySQL Failover Succeeded']);
  }, 120_000);

  it('keeps the restarted old primary out of the VIP, reports it as needing rejoin and re-fences it', async () => {
    await c().restart('db1');
    expect(await readOnly('db1')).toBe(0); // as a crashed primary comes back

    expect(lc().vipHolder()).toBe('db2');
    const app = c().credentials.app;
    const conn = await mysql.createConnection({
      host: lc().vip.host,
      port: lc().vip.port,
      user: app.user,
      password: app.password,
    });
    const [rows] = await conn.query('SELECT @@server_id AS s');
    await conn.end();
    expect(Number((rows as Array<{ s: number }>)[0]?.s)).toBe(c().node('db2').serverId);

    const rt = getRuntime();
    const cfg = rt.cluster(NAME);
    const state = (await store.getClusterState(NAME))!;
    expect(state.needsRejoin).toEqual(['db1']);
    const admin = (await rt.logins(cfg)).admin;
    const snapshot = await probeCluster(cfg, state.primaryId, admin, Date.now());
    const first = await fenceReturnedPrimaries(rt, cfg, snapshot, state);
    expect(first.plan.findings.map((f) => f.code)).toEqual(['OldPrimaryWritable']);
    expect(first.fenced.map((f) => f.nodeId)).toEqual(['db1']);
    expect(await readOnly('db1')).toBe(1);
    const again = await fenceReturnedPrimaries(
      rt,
      cfg,
      await probeCluster(cfg, 'db2', admin, Date.now()),
      state,
    );
    expect(again.plan.actions).toEqual([]);
    expect(again.plan.findings.map((f) => f.code)).toEqual(['OldPrimaryNeedsRejoin']);
    const events = await store.listEvents(NAME, 10);
    expect(events.map((e) => e.type)).toContain('OldPrimaryFenced');

    // A step of the finished execution retried late changes nothing.
    await expect(promoteCandidate(rt, firstCtx!)).rejects.toThrow(/refused/);
    await expect(repointReplicas(rt, firstCtx!)).rejects.toMatchObject({ name: 'StaleEpochError' });
    expect(await readOnly('db2')).toBe(0);
    expect((await store.getFailover(NAME, 1))?.status).toBe('succeeded');
  }, 60_000);

  it('fails cleanly when the candidate cannot apply its relay log in time, and in pedantic mode on errant transactions', async () => {
    await c().query('db2', WRITES_TABLE_DDL.replace('app.writes', 'app.writes2'));
    await waitFor(
      async () => (await c().query('db4', "SHOW TABLES FROM app LIKE 'writes2'")).length === 1,
      10_000,
      'app.writes2 on db4',
    );
    // db4's applier blocks on the first row of app.writes2 (a table lock held on db4): it receives
    // everything and applies nothing, so it cannot apply its relay log in time. (A MASTER_DELAY no
    // longer does it: the catch-up lifts the candidate's delay.)
    const releaseDb4 = await holdTableLock(c(), 'db4', 'app.writes2');
    const writer = vipWriter('app.writes2');
    await waitFor(() => writer.acked.length >= 100, 15_000, '100 acknowledged writes on db2');
    await c().crash('db2');
    await writer.stop();
    setConfig((cfg) => {
      cfg.failover.relayLogTimeoutSeconds = 1;
      cfg.failover.maxLagSeconds = 3600;
    });

    await start('sp-failover-e2', { ...request(1, 'sp-failover-e2'), failedPrimary: 'db2' });
    const [relay] = await waitDone(['sp-failover-e2']);
    expect(relay?.status).toBe('FAILED');
    expect(relay?.states.map((s) => s.name)).toEqual([
      'BeginFailover',
      'ElectCandidate',
      'FenceOldPrimary',
      'CatchUpCandidate',
      'FailoverFailed',
      'Failed',
    ]);
    const r2 = await store.getFailover(NAME, 2);
    expect(r2?.status).toBe('failed');
    expect(r2?.error?.name).toBe('RelayLogTimeoutError');
    await releaseDb4();

    // An errant transaction on db3 (root bypasses read_only): pedantic aborts before any change.
    await c().query('db3', "INSERT INTO app.writes (id, at, payload) VALUES (999999999, 0, 'errant')");
    setConfig((cfg) => {
      cfg.failover.pedantic = true;
    });
    await start('sp-failover-e3', { ...request(2, 'sp-failover-e3'), failedPrimary: 'db2' });
    const [errant] = await waitDone(['sp-failover-e3']);
    expect(errant?.status).toBe('FAILED');
    expect(errant?.states.map((s) => s.name)).toEqual([
      'BeginFailover',
      'ElectCandidate',
      'FailoverFailed',
      'Failed',
    ]);
    const r3 = await store.getFailover(NAME, 3);
    expect(r3?.error?.name).toBe('ErrantTransactionsError');
    expect(r3?.error?.message).toContain('db3');

    // Safe: nobody writable, the VIP off the dead node (the fence comes first: it moved to the
    // read-only candidate db4 in sp-failover-e2), the state unchanged.
    for (const id of ['db1', 'db3', 'db4']) expect(await readOnly(id)).toBe(1);
    expect(lc().vipHolder()).toBe('db4');
    const state = await store.getClusterState(NAME);
    expect(state?.primaryId).toBe('db2');
    expect(state?.failoverInProgress).toBeUndefined();
    const failedEvents = lc()
      .eventBridge.events()
      .filter((e) => e.detailType === 'MySQL Failover Failed')
      .map((e) => e.detail.epoch);
    expect(failedEvents).toEqual([2, 3]);
  }, 90_000);

  it('runs every step twice harmlessly, skips the errant replica, and marks the failover failed when the post hook fails under policy fail', async () => {
    const acked = writers[1]!.acked;
    expect(acked.length).toBeGreaterThanOrEqual(100);
    lc().lambda.register('mysql-failover-hook-post', () => {
      throw new Error('service discovery is down');
    });
    setConfig((cfg) => {
      cfg.failover.pedantic = false;
      cfg.failover.relayLogTimeoutSeconds = 30;
      cfg.failover.hooks = { post: 'mysql-failover-hook-post', postFailurePolicy: 'fail' };
    });
    const rt = getRuntime();
    const twice = async <T>(fn: () => Promise<T>): Promise<T> => {
      const a = await fn();
      const b = await fn();
      return b ?? a;
    };
    let ctx = await twice(() => beginFailover(rt, { ...request(3, 'sp-failover-e4'), failedPrimary: 'db2' }));
    expect(ctx.epoch).toBe(4);
    ctx = await twice(() => electCandidateStep(rt, ctx));
    expect(ctx.candidate).toBe('db4');
    expect(ctx.verdicts?.find((v) => v.nodeId === 'db3')?.reasons.join(' ')).toContain('errant transactions');
    expect(ctx.verdicts?.find((v) => v.nodeId === 'db1')?.reasons.join(' ')).toContain('needs rejoin');
    const elected = ctx;
    ctx = await twice(() => fenceOldPrimary(rt, elected));
    const fenced = ctx;
    ctx = await twice(() => catchUpCandidate(rt, fenced));
    const caught = ctx;
    ctx = await twice(() => promoteCandidate(rt, caught));
    const promoted = ctx;
    ctx = await twice(() => repointReplicas(rt, promoted));
    expect(ctx.repointed).toEqual([]);
    expect(ctx.notRepointed?.map((r) => r.nodeId).sort()).toEqual(['db1', 'db3']);
    expect(ctx.notRepointed?.find((r) => r.nodeId === 'db3')?.error).toContain('lacks');
    const repointed = ctx;
    ctx = await twice(() => moveVip(rt, repointed));
    expect(lc().vipHolder()).toBe('db4');

    await expect(completeFailover(rt, ctx)).rejects.toMatchObject({ name: 'HookFailedError' });
    const hookCalls = lc().lambda.invocations();
    expect(hookCalls.map((h) => [h.name, h.ok])).toEqual([['mysql-failover-hook-post', false]]);
    expect(hookCalls[0]?.event).toMatchObject({ phase: 'post', newPrimary: 'db4', epoch: 4 });
    // The state machine's Catch then runs FailoverFailed: no second record change or alert.
    await failoverFailed(rt, { ...ctx, error: { Error: 'HookFailedError', Cause: 'post hook' } });
    await expect(completeFailover(rt, ctx)).rejects.toMatchObject({ name: 'StaleEpochError' });

    const record = await store.getFailover(NAME, 4);
    expect(record?.status).toBe('failed');
    expect(record?.error?.name).toBe('HookFailedError');
    const complete = record?.steps.find((s) => s.name === 'CompleteFailover');
    expect(
      ((complete?.detail?.notRepointed ?? []) as Array<{ nodeId: string }>).map((r) => r.nodeId).sort(),
    ).toEqual(['db1', 'db3']);
    const state = await store.getClusterState(NAME);
    expect(state?.primaryId).toBe('db4');
    expect(state?.needsRejoin).toEqual(['db1', 'db2']);
    expect(await readOnly('db4')).toBe(0);
    expect(await readOnly('db3')).toBe(1);
    const e4 = lc()
      .eventBridge.events()
      .filter((e) => e.detail.epoch === 4);
    expect(e4.map((e) => e.detailType)).toEqual(['MySQL Failover Started', 'MySQL Failover Failed']);
    expect(e4[1]?.detail.notRepointed).toHaveLength(2);

    // Nothing db2 acknowledged is missing on db4, and the errant row was not copied.
    expect(await missingAcked(c(), 'db4', acked, 'app.writes2')).toEqual([]);
    const [errantRow] = await c().query<{ n: number }>(
      'db4',
      'SELECT COUNT(*) AS n FROM app.writes WHERE id = 999999999',
    );
    expect(Number(errantRow?.n)).toBe(0);
    const text = JSON.stringify(logs);
    for (const cred of Object.values(c().credentials)) expect(text).not.toContain(cred.password);
  }, 90_000);
});
