/**
 * Issue 11, lagging candidate: every replica received (and, semi-sync, acknowledged) what the
 * primary committed, but its applier trails: its SQL thread was stopped (STOP SLAVE SQL_THREAD)
 * or it runs with MASTER_DELAY. kill -9 of the primary. Whichever replica is elected holds the
 * acknowledged writes only in its relay log, and must apply all of them before it is promoted.
 *
 * Before the fix: with both replication threads stopped (the operator's STOP SLAVE SQL_THREAD,
 * then the failover's freeze of the IO thread), MariaDB's START SLAVE SQL_THREAD in GTID mode
 * discards the relay log instead of applying it (Gtid_IO_Pos falls back to gtid_slave_pos), so
 * CatchUpCandidate waited for transactions that no longer existed anywhere alive and failed
 * (RelayLogTimeoutError), leaving no primary; a MASTER_DELAY longer than the relay-log timeout
 * failed the same way.
 *
 * The "ahead" variants: db3 (promotionRule must_not) received more than the candidate db2 (whose
 * IO thread was stopped meanwhile), with its own applier stopped or delayed. db3 must apply its
 * relay log before db2 can collect those writes from its binlog; before the fix the plain START
 * SLAVE SQL_THREAD discarded db3's relay log too, and with it the only copy of those writes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import { missingAcked, WRITES_TABLE_DDL, type Writer } from '../../infra/workload/writer.ts';
import { onInst } from '../../lib/adapters/mysql/admin.ts';
import { sourceOf } from '../../lib/failover/context.ts';
import { createRuntime, resetRuntime } from '../../lib/runtime.ts';
import { type LiveEnv, type RunningMonitor, sleep, startLiveEnv } from '../health/live-env.ts';
import { waitFor } from '../support/wait-for.ts';
import { DIRECT_TABLE_DDL, promotionStartedAt, startWriters } from './timeline-support.ts';

/** Far longer than the relay-log timeout: waiting it out can never be how the test passes. */
const DELAY_SECONDS = 600;
const RELAY_LOG_TIMEOUT_S = 15;

type Mode = 'stopped' | 'delayed';

/**
 * `ahead`: db2 is the candidate and db3 (must_not) the source it collects from; otherwise both
 * replicas trail alike and either may be elected.
 */
function laggingCandidateTimeline(mode: Mode, ahead: boolean) {
  const name = `lag${mode === 'stopped' ? 'stop' : 'delay'}${ahead ? 'ahead' : ''}`;
  const lagging = ahead ? ['db3'] : ['db2', 'db3'];
  const applier =
    mode === 'stopped' ? 'stopped (STOP SLAVE SQL_THREAD)' : `delayed (MASTER_DELAY=${DELAY_SECONDS})`;
  const title = ahead
    ? `lagging source: db3 received more than the candidate, its applier ${applier}`
    : `lagging candidate: applier ${applier}`;
  describe(title, () => {
    let env: LiveEnv;
    let m: RunningMonitor;
    const writers: Writer[] = [];
    const runtimeLogs: unknown[] = [];

    beforeAll(async () => {
      env = await startLiveEnv({
        name,
        clusterOverrides: { failover: { relayLogTimeoutSeconds: RELAY_LOG_TIMEOUT_S } },
      });
      await env.cluster.query('db1', WRITES_TABLE_DDL);
      await env.cluster.query('db1', DIRECT_TABLE_DDL);
      if (mode === 'delayed') {
        for (const id of lagging) {
          await env.cluster.query(id, 'STOP SLAVE');
          await env.cluster.query(id, `CHANGE MASTER TO MASTER_DELAY=${DELAY_SECONDS}`);
          await env.cluster.query(id, 'START SLAVE');
          await env.cluster.waitForReplicaThreads(id);
        }
      }
      if (ahead) {
        // As an operator would: db3 must never be promoted (rewrites the config, new runtime).
        const file = env.cloud.configFile;
        const doc = JSON.parse(readFileSync(file, 'utf8')) as {
          clusters: Array<{ nodes: Array<{ id: string; promotionRule?: string }> }>;
        };
        const db3 = doc.clusters[0]?.nodes.find((n) => n.id === 'db3');
        if (!db3) throw new Error(`no db3 in ${file}`);
        db3.promotionRule = 'must_not';
        writeFileSync(file, JSON.stringify(doc, null, 2));
        resetRuntime(createRuntime(process.env, { log: (e) => runtimeLogs.push(e) }));
      }
      m = env.startMonitor(120_000);
      await waitFor(() => m.rounds.some((r) => r.analysis.code === 'NoProblem'), 15_000, 'NoProblem');
    }, 120_000);

    afterAll(async () => {
      for (const w of writers) await w.stop();
      await m?.stop();
      await env?.close();
    });

    const backlog = async (id: string) => {
      const seq = (pos: string) => Number(/(?:^|,)0-\d+-(\d+)/.exec(pos)?.[1] ?? 0);
      const [st] = await env.cluster.query<Record<string, unknown>>(id, 'SHOW SLAVE STATUS');
      const [g] = await env.cluster.query<{ p: string }>(id, 'SELECT @@gtid_slave_pos AS p');
      return seq(String(st?.Gtid_IO_Pos ?? '')) - seq(g?.p ?? '');
    };

    it('applies the whole relay log before the promotion: the failover succeeds, 0 acknowledged writes lost', async () => {
      const c = env.cluster;
      const w = startWriters(env, 'db1');
      writers.push(w.vip, w.direct);
      await waitFor(() => w.vip.acked.length >= 30, 15_000, '30 writes');
      if (mode === 'stopped') {
        await Promise.all(lagging.map((id) => c.query(id, 'STOP SLAVE SQL_THREAD')));
      }
      // The candidate stops receiving: db3 alone acknowledges (semi-sync) from now on.
      if (ahead) await c.query('db2', 'STOP SLAVE IO_THREAD');
      const ackedBefore = w.vip.acked.length + w.direct.acked.length;
      await sleep(3000);
      // The timeline holds: acknowledged writes arrived meanwhile, and every replica has them
      // only in its relay log.
      expect(w.vip.acked.length + w.direct.acked.length).toBeGreaterThan(ackedBefore + 20);
      const backlogAtCrash = { db2: await backlog('db2'), db3: await backlog('db3') };
      for (const id of lagging)
        expect(backlogAtCrash[id as 'db2' | 'db3'], JSON.stringify(backlogAtCrash)).toBeGreaterThan(20);

      const before = (await env.store.getClusterState(name))!;
      await c.crash('db1');
      const execName = `${name}-failover-e${before.epoch + 1}`;
      await waitFor(
        () => env.cloud.sfn.executions().some((e) => e.name === execName && e.status !== 'RUNNING'),
        90_000,
        'the failover to end',
      );
      const execution = env.cloud.sfn.executions().find((e) => e.name === execName)!;
      const errors = execution.states.flatMap((s) =>
        s.errors.map((e) => `${s.name}: ${e.error}: ${e.cause}`),
      );
      expect(execution.status, errors.join('\n')).toBe('SUCCEEDED');

      const state = (await env.store.getClusterState(name))!;
      const newPrimary = state.primaryId;
      expect(ahead ? ['db2'] : ['db2', 'db3']).toContain(newPrimary);
      expect(env.cloud.vipHolder()).toBe(newPrimary);
      const record = await env.store.getFailover(name, state.epoch);
      const catchUp = record?.steps.find((s) => s.name === 'CatchUpCandidate');
      // The candidate applied its relay log itself (nothing else alive held those writes in a
      // binlog), with its applier resumed and any delay lifted.
      if (ahead) {
        // What only db3 held came from db3, once db3 had applied it.
        const from = (catchUp?.detail?.caughtUpFrom as Array<{ from: string }> | undefined) ?? [];
        expect(
          from.map((f) => f.from),
          JSON.stringify(catchUp?.detail),
        ).toEqual(['db3']);
      } else {
        expect(catchUp?.detail?.applierResumed, JSON.stringify(catchUp?.detail)).toMatchObject({
          restarted: true,
          liftedDelaySeconds: mode === 'delayed' ? DELAY_SECONDS : 0,
        });
      }
      const writableFrom = promotionStartedAt(record);
      const newServerId = c.node(newPrimary).serverId;
      await waitFor(
        () => w.vip.firstAckOn(newServerId, writableFrom) !== undefined,
        20_000,
        'a write on the new primary',
      );
      await sleep(1000);
      await w.vip.stop();
      await w.direct.stop();

      // Every acknowledged write is on the new primary: through the VIP and straight to db1.
      expect(w.vip.acked.length).toBeGreaterThan(50);
      expect(await missingAcked(c, newPrimary, w.vip.acked)).toEqual([]);
      expect(await missingAcked(c, newPrimary, w.direct.acked, 'app.direct')).toEqual([]);
      // The other survivor follows the new primary with its applier running. A delayed one keeps
      // its delay (the operator's setting): only the candidate's is lifted, for the catch-up.
      const other = newPrimary === 'db2' ? 'db3' : 'db2';
      const [st] = await c.query<Record<string, unknown>>(other, 'SHOW SLAVE STATUS');
      expect(Number(st?.Master_Port)).toBe(c.node(newPrimary).port);
      expect(st?.Slave_SQL_Running).toBe('Yes');
      expect(Number(st?.SQL_Delay)).toBe(mode === 'delayed' ? DELAY_SECONDS : 0);
      if (mode === 'stopped') {
        await waitFor(
          async () => (await missingAcked(c, other, w.vip.acked)).length === 0,
          30_000,
          `every acknowledged write on ${other}`,
        );
      }
    }, 180_000);
  });
}

laggingCandidateTimeline('stopped', false);
laggingCandidateTimeline('delayed', false);
laggingCandidateTimeline('stopped', true);
laggingCandidateTimeline('delayed', true);

/**
 * A failover that ends without a promotion restarts the survivors it froze
 * (restartFrozenReplicas -> restartReplicationIo). On a survivor whose applier an operator had
 * stopped, both threads are stopped by then, and a plain START SLAVE discarded its relay log:
 * with the old primary still dead, what it had received and acknowledged was gone from it.
 */
describe('an aborted failover restarts a frozen replica whose applier was stopped', () => {
  let cluster: MariaDbCluster | undefined;

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('keeps its relay log and applies it, with the old primary still dead', async () => {
    cluster = await startCluster({ nodes: 2 });
    const c = cluster;
    await c.query('db1', 'CREATE TABLE app.t_abort (id INT PRIMARY KEY)');
    await waitFor(
      async () => (await c.query('db2', "SHOW TABLES FROM app LIKE 't_abort'")).length === 1,
      5000,
      't_abort on db2',
    );
    await c.query('db2', 'STOP SLAVE SQL_THREAD');
    for (let i = 1; i <= 100; i++) await c.query('db1', 'INSERT INTO app.t_abort VALUES (?)', [i]);
    const [p] = await c.query<{ g: string }>('db1', 'SELECT @@gtid_binlog_pos AS g');
    // Semi-sync acknowledged them: db2 received every one.
    const [received] = await c.query<Record<string, unknown>>('db2', 'SHOW SLAVE STATUS');
    expect(received?.Gtid_IO_Pos).toBe(p?.g);
    await c.crash('db1');
    await c.query('db2', 'STOP SLAVE IO_THREAD'); // the failover's freeze
    const db1 = c.node('db1');
    const db2 = c.node('db2');
    const action = await onInst(
      'db2',
      db2,
      c.credentials.admin,
      { connectTimeoutMs: 2000, queryTimeoutMs: 15_000 },
      'test',
      (inst) => inst.restartReplicationIo(sourceOf(db1, c.credentials.replication)),
    );
    expect(action).toBe('restarted');
    await waitFor(
      async () =>
        Number((await c.query<{ n: number }>('db2', 'SELECT COUNT(*) AS n FROM app.t_abort'))[0]?.n) === 100,
      15_000,
      'db2 to apply its relay log',
    ).catch(() => {});
    const [after] = await c.query<Record<string, unknown>>('db2', 'SHOW SLAVE STATUS');
    const [n] = await c.query<{ n: number }>('db2', 'SELECT COUNT(*) AS n FROM app.t_abort');
    expect({ rows: Number(n?.n), ioPos: after?.Gtid_IO_Pos }).toEqual({ rows: 100, ioPos: p?.g });
    expect(after?.Slave_SQL_Running).toBe('Yes');
  }, 120_000);
});
