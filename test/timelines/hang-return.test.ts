/**
 * T1 · hang, then return (issue 11). The primary is frozen (SIGSTOP) with clients writing to it
 * through the VIP and directly; the failover promotes a replica; the old primary continues
 * (SIGCONT) while the failover is finishing, with a commit held since the freeze waiting for a
 * semi-sync ACK its replicas will never send, and a probe round in flight that began when it was
 * still the recorded primary.
 *
 *   db1   |--writes--|SIGSTOP .................................|SIGCONT  fenced: read_only, sessions killed
 *   fail.            |  confirmed ~2.5 s |Fence(VIP)|CatchUp|Promote|Repoint|MoveVip|Complete
 *   acks on db1 after Promote: none (the held commits are killed, never acknowledged at the timeout)
 *
 * Several clients write to db1 directly, so that db1 resumes with several commits in one binlog
 * group: only the group's leader waits for the semi-sync ACK, and a fence that killed it before
 * the others acknowledged them (a write on db1 only: the lost ack of the hang-return bench).
 * The one exception allowed: a commit sent BEFORE the freeze whose ACK db1 had already received
 * is answered at SIGCONT, before anything can fence; that write is on the new primary.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Ack,
  missingAcked,
  startDirectWriter,
  WRITES_TABLE_DDL,
  type Writer,
} from '../../infra/workload/writer.ts';
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

const NAME = 't1';
/** rpl_semi_sync_master_timeout of the harness cluster (its default, the server's default). */
const SEMI_SYNC_TIMEOUT_MS = 10_000;
/**
 * SIGSTOP takes effect a moment after the signal: a write sent within this much after it may still
 * have run on db1 and been acknowledged by a replica (measured in hang-return-group-commit).
 */
const FREEZE_TAKES_EFFECT_MS = 100;
/** Clients connected straight to db1 besides the one of startWriters (each its own id range). */
const MORE_DIRECT_CLIENTS = 3;

describe('T1 hang, then return', () => {
  let env: LiveEnv;
  let m: RunningMonitor;
  let writers: { vip: Writer; direct: Writer } | undefined;
  let moreDirect: Writer[] = [];

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
    await Promise.allSettled(moreDirect.map((d) => d.stop()));
    try {
      env?.cluster.resume('db1');
    } catch {
      // not running
    }
    await m?.stop();
    await env?.close();
  });

  it('acknowledges nothing on the resumed old primary after the promotion, loses no acknowledged write, and the prober never writes there', async () => {
    const w = startWriters(env, 'db1');
    writers = w;
    const n1 = env.cluster.node('db1');
    const app = env.cluster.credentials.app;
    moreDirect = Array.from({ length: MORE_DIRECT_CLIENTS }, (_, i) =>
      startDirectWriter({
        host: n1.host,
        port: n1.port,
        user: app.user,
        password: app.password,
        table: 'app.direct',
        paceMs: 5,
        queryTimeoutMs: 30_000,
        firstId: (i + 1) * 1_000_000_000,
      }),
    );
    await waitFor(
      () => [w.vip, w.direct, ...moreDirect].every((x) => x.acked.length >= 50),
      15_000,
      '50 writes each',
    );
    const db1 = env.cluster.node('db1').serverId;

    const hungAt = Date.now();
    env.cluster.hang('db1');
    // Resume as soon as the candidate was promoted: the failover is still finishing, a probe
    // round that began while db1 was the recorded primary is in flight, and the commit db1 held
    // at the freeze is still inside its semi-sync wait.
    await waitFor(
      () => {
        const e = env.cloud.sfn.executions()[0];
        return (
          e !== undefined && (e.status !== 'RUNNING' || e.states.some((s) => s.name === 'RepointReplicas'))
        );
      },
      60_000,
      'the promotion',
    );
    env.cluster.resume('db1');
    const resumedAt = Date.now();
    // The precondition of this timeline: db1 resumes inside its semi-sync wait (a freeze longer
    // than rpl_semi_sync_master_timeout acknowledges the held commit at SIGCONT: only STONITH
    // prevents that, see the fencing notes in lib/failover/fence-old-primary.ts).
    expect(resumedAt - hungAt, 'db1 must resume before its semi-sync timeout').toBeLessThan(
      SEMI_SYNC_TIMEOUT_MS - 1500,
    );

    await waitFor(() => env.cloud.sfn.executions()[0]?.status !== 'RUNNING', 60_000, 'the failover to end');
    const exec = env.cloud.sfn.executions()[0]!;
    expect(exec.status).toBe('SUCCEEDED');
    const state = (await env.store.getClusterState(NAME))!;
    const newPrimary = state.primaryId;
    expect(['db2', 'db3']).toContain(newPrimary);
    const record = await env.store.getFailover(NAME, state.epoch);
    const writableFrom = promotionStartedAt(record);
    const epochChangedAt = record!.startedAt;

    // Past the semi-sync timeout of the held commit (counted from the freeze) and of any commit
    // started after SIGCONT: that is when the old code acknowledged them.
    await sleep(Math.max(0, hungAt + SEMI_SYNC_TIMEOUT_MS + 2500 - Date.now()));
    await sleep(3000);
    await w.vip.stop();
    await w.direct.stop();
    await Promise.all(moreDirect.map((d) => d.stop()));

    // An acknowledgement from db1 after the promotion is allowed only for a commit sent before
    // the freeze took effect that the new primary holds (its ACK had reached db1 before SIGSTOP).
    const newPrimaryHas = async (acks: Ack[], table: string) => {
      const missing = new Set(await missingAcked(env.cluster, newPrimary, acks, table));
      return (a: Ack) => !missing.has(a.id);
    };
    const late = (acks: Ack[]) => acks.filter((a) => a.serverId === db1 && a.at >= writableFrom);
    const splitBrain = async (acks: Ack[], table: string) => {
      const held = await newPrimaryHas(acks, table);
      return late(acks).filter(
        (a) => !(a.sentAt !== undefined && a.sentAt < hungAt + FREEZE_TAKES_EFFECT_MS && held(a)),
      );
    };
    const since = `resumed +${resumedAt - writableFrom} ms after the promotion began`;
    // Through the VIP: its connections were cut when the VIP moved.
    const vipSplit = await splitBrain(w.vip.acked, 'app.writes');
    expect(
      vipSplit,
      `VIP acks on db1 after the promotion (${since}): ${describeAcks(vipSplit, writableFrom)}`,
    ).toEqual([]);
    expect(await missingAcked(env.cluster, newPrimary, w.vip.acked)).toEqual([]);
    // Directly: every client of db1.
    const directAcks = [w.direct, ...moreDirect].flatMap((x) => x.acked);
    const directSplit = await splitBrain(directAcks, 'app.direct');
    expect(
      directSplit,
      `direct acks on db1 after the promotion (${since}): ${describeAcks(directSplit, writableFrom)}`,
    ).toEqual([]);
    expect(
      await missingAcked(env.cluster, newPrimary, directAcks, 'app.direct'),
      `direct acks lost (${since})`,
    ).toEqual([]);
    // The writer through the VIP goes on on the new primary.
    expect(w.vip.firstAckOn(env.cluster.node(newPrimary).serverId, hungAt)).toBeDefined();

    // The old primary ends fenced and awaiting rejoin.
    expect(await readOnly(env, 'db1')).toBe(1);
    expect(state.needsRejoin).toContain('db1');
    // The prober never wrote its heartbeat on db1 once the failover had claimed the epoch.
    const hb = await heartbeatOn(env, 'db1');
    expect(hb?.serverId).toBe(db1);
    expect(
      hb!.atMs,
      `heartbeat on db1 written ${hb!.atMs - epochChangedAt} ms after the epoch change`,
    ).toBeLessThan(epochChangedAt);
    expect(env.cloud.sfn.executions()).toHaveLength(1);
  }, 120_000);
});
