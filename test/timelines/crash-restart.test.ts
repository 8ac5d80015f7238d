/**
 * T2 · crash, then a quick restart (issue 11). kill -9 of the primary with clients writing
 * through the VIP and directly; mysqld_safe brings it back 700 ms later with read_only=OFF from
 * its my.cnf while the failover runs, and the provider takes 3 s to move the VIP.
 *
 *   db1   |--writes--|kill -9 |..700 ms..|restart (read_only=OFF)  fenced by the health check
 *   fail.            | confirmed ~0.3 s |Fence: refused -> VIP to the candidate (3 s) |CatchUp|Promote|...
 *   VIP               db1 ........................................|candidate
 *
 * Before the fix the VIP stayed on db1 until MoveVip, after the promotion: both nodes took
 * writes, and db1's were lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missingAcked, WRITES_TABLE_DDL, type Writer } from '../../infra/workload/writer.ts';
import { type LiveEnv, type RunningMonitor, sleep, startLiveEnv } from '../health/live-env.ts';
import { waitFor } from '../support/wait-for.ts';
import {
  DIRECT_TABLE_DDL,
  describeAcks,
  heartbeatOn,
  promotionStartedAt,
  readOnly,
  startWriters,
} from './timeline-support.ts';

const NAME = 't2';

describe('T2 crash, then a quick restart', () => {
  let env: LiveEnv;
  let m: RunningMonitor;
  let writers: { vip: Writer; direct: Writer } | undefined;

  beforeAll(async () => {
    env = await startLiveEnv({ name: NAME });
    await env.cluster.query('db1', WRITES_TABLE_DDL);
    await env.cluster.query('db1', DIRECT_TABLE_DDL);
    m = env.startMonitor(150_000);
    await waitFor(() => m.rounds.some((r) => r.analysis.code === 'NoProblem'), 10_000, 'NoProblem');
  }, 120_000);

  afterAll(async () => {
    await writers?.vip.stop();
    await writers?.direct.stop();
    await m?.stop();
    await env?.close();
  });

  it('never lets the restarted old primary take a write through the VIP once the candidate can, loses no acknowledged write, and leaves it fenced', async () => {
    const w = startWriters(env, 'db1');
    writers = w;
    await waitFor(() => w.vip.acked.length >= 50 && w.direct.acked.length >= 50, 15_000, '50 writes each');
    const db1 = env.cluster.node('db1').serverId;
    // The provider moves the VIP slowly (as EC2 can under load).
    env.cloud.faults.set('AssignPrivateIpAddresses', { latencyMs: 3000 });

    const fault = env.cluster.crashThenRestart('db1', 700);
    const { crashedAt, restartedAt } = await fault;
    await waitFor(
      () => env.cloud.sfn.executions()[0]?.status === 'SUCCEEDED',
      60_000,
      'the failover to succeed',
    );
    const state = (await env.store.getClusterState(NAME))!;
    const newPrimary = state.primaryId;
    expect(['db2', 'db3']).toContain(newPrimary);
    const record = await env.store.getFailover(NAME, state.epoch);
    const writableFrom = promotionStartedAt(record);
    const epochChangedAt = record!.startedAt;
    const newServerId = env.cluster.node(newPrimary).serverId;
    await waitFor(
      () => w.vip.firstAckOn(newServerId, writableFrom) !== undefined,
      20_000,
      'a write on the new primary',
    );
    await sleep(3000);
    await w.vip.stop();
    await w.direct.stop();

    const ctxMsg = `killed at 0, back at +${restartedAt - crashedAt} ms, promotion began at +${writableFrom - crashedAt} ms`;
    const lateVip = w.vip.acked.filter((a) => a.serverId === db1 && a.at >= writableFrom);
    expect(
      lateVip,
      `VIP acks on db1 after the promotion (${ctxMsg}): ${describeAcks(lateVip, writableFrom)}`,
    ).toEqual([]);
    const lateDirect = w.direct.acked.filter((a) => a.at >= writableFrom);
    expect(
      lateDirect,
      `direct acks on db1 after the promotion (${ctxMsg}): ${describeAcks(lateDirect, writableFrom)}`,
    ).toEqual([]);
    expect(await missingAcked(env.cluster, newPrimary, w.vip.acked), `VIP acks lost (${ctxMsg})`).toEqual([]);
    expect(
      await missingAcked(env.cluster, newPrimary, w.direct.acked, 'app.direct'),
      `direct acks lost (${ctxMsg})`,
    ).toEqual([]);

    // The VIP left db1 before the promotion, in FenceOldPrimary.
    const fence = record?.steps.find((s) => s.name === 'FenceOldPrimary');
    expect(fence?.detail?.vipTakenFrom).toBe('db1');
    expect(env.cloud.vipHolder()).toBe(newPrimary);
    expect(await readOnly(env, 'db1')).toBe(1);
    expect(state.needsRejoin).toContain('db1');
    // The prober never wrote its heartbeat on db1 once the failover had claimed the epoch.
    const hb = await heartbeatOn(env, 'db1');
    expect(
      hb!.atMs,
      `heartbeat on db1 written ${hb!.atMs - epochChangedAt} ms after the epoch change`,
    ).toBeLessThan(epochChangedAt);
  }, 120_000);
});
