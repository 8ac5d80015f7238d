import { type BenchScenario, sleep, type Trial, waitUntil, withTrialEnv } from '../trial-env.ts';
import { startFailoverExecution, startTimeline, timelineTrial } from './timeline.ts';

/** failover.maxLagSeconds for this scenario (the default, 3600 s, would take an hour to exceed). */
const MAX_LAG_SECONDS = 5;
/**
 * How long the primary keeps taking writes after the replicas lost it: the first 10 s are the
 * semi-sync timeout (commits wait for an ack), then async commits pile up only on the primary,
 * so the replicas end about 10 s behind in time and far behind in transactions.
 */
const LAG_BUILD_MS = 20_000;
/** Detection plus a whole failover fit in this after the crash. */
const WATCH_AFTER_CRASH_MS = 15_000;

/**
 * T4 (issue 11): every replica lost the primary long ago (IO threads stopped 20 s before the
 * crash) while the primary kept acknowledging writes, beyond `maxLagSeconds` (5 s here); then
 * kill -9 of the primary. Must hold: no promotion (failovers 0; an execution that starts and ends
 * with a veto is fine) and nothing left in progress. With `--force` the bench starts the failover
 * as an operator would, with `ignoreLag: true` in the execution input once the automatic one ended or
 * never came: then exactly one promotion (the operator accepted the loss, ackedLost is reported,
 * not judged).
 */
export const laggingSurvivors: BenchScenario = {
  name: 'lagging-survivors',
  description: `every replica lost the primary ${LAG_BUILD_MS / 1000} s before its crash (maxLagSeconds ${MAX_LAG_SECONDS}): must not promote unless --force`,
  expectFailover: false,
  defaultTrials: 5,
  expect: (opts) =>
    opts.force
      ? {
          failovers: 1,
          zero: ['oldPrimaryAcksAfterPromotion', 'stuckInProgress'],
          true: ['stateNamesWritable'],
        }
      : {
          failovers: 0,
          zero: ['oldPrimaryAcksAfterPromotion', 'ackedLost', 'stuckInProgress'],
          true: ['stateNamesWritable'],
        },
  run: (opts) =>
    withTrialEnv(
      { cloud: { clusterOverrides: { failover: { maxLagSeconds: MAX_LAG_SECONDS } } } },
      async (env): Promise<Trial> => {
        const { cluster } = env;
        const replicas = cluster.nodes.filter((n) => n.id !== 'db1').map((n) => n.id);
        const tl = startTimeline(env);
        await sleep(1000);
        const lostAt = Date.now();
        await Promise.all(replicas.map((r) => cluster.query(r, 'STOP SLAVE IO_THREAD')));
        await sleep(LAG_BUILD_MS);
        const faultAt = tl.markFault();
        await cluster.crash('db1');
        let forcedExecution: string | null = null;
        if (opts.force) {
          // The operator steps in once the automatic path has had its chance.
          await waitUntil(() => tl.failoverExecutions().length > 0, WATCH_AFTER_CRASH_MS);
          await waitUntil(() => tl.failoverExecutions().every((e) => e.status !== 'RUNNING'), 90_000);
          const promoted = tl
            .failoverExecutions()
            .some((e) => e.states.some((s) => s.name === 'PromoteCandidate' && s.outcome === 'exited'));
          if (!promoted)
            forcedExecution = await startFailoverExecution(env, 'db1', {
              ignoreLag: true,
              ignoreBlock: true,
              reason: { analysis: 'DeadPrimary', evidence: 'forced by the operator (bench --force)' },
            });
          await tl.waitSettled(90_000);
        } else {
          await sleep(WATCH_AFTER_CRASH_MS);
          if (tl.failoverExecutions().length > 0) await tl.waitSettled(90_000);
        }
        const f = await tl.figures();
        return timelineTrial(f, {
          replicasLostPrimaryMs: faultAt - lostAt,
          maxLagSeconds: MAX_LAG_SECONDS,
          forcedExecution,
        });
      },
    ),
};
