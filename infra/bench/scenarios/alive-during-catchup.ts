import { resolveFromFailoverConfig, startProbePaths } from '../../local-cloud/probe-path.ts';
import {
  type BenchScenario,
  sleep,
  type Trial,
  trialNodeIds,
  waitUntil,
  withTrialEnv,
} from '../trial-env.ts';
import { OLD_PRIMARY_CLIENTS, startFailoverExecution, startTimeline, timelineTrial } from './timeline.ts';

/** The monitor gets this long to decide on its own before the bench decides for it. */
const DECIDE_MS = 5000;
/** After the failover, past the semi-sync timeout (10 s): a stalled commit is acknowledged by then. */
const WATCH_AFTER_FAILOVER_MS = 12_000;

/**
 * T7 (issue 11): the old primary is alive and keeps its clients (writers straight to it and via
 * the VIP), but the prober is cut off from it (a blackhole on the prober's own path) and a
 * failover runs: CatchUpCandidate freezes the survivors' IO threads while the old primary can
 * still commit. The prober alone cannot confirm a death while the replicas still receive, so
 * when the monitor has not started a failover within 5 s the bench starts it with the request the
 * monitor would have sent (`triggeredBy`) — the same execution a prober that lost the primary
 * would start. Must hold: no acknowledged write lost, none on the old primary after the promotion.
 */
export const aliveDuringCatchup: BenchScenario = {
  name: 'alive-during-catchup',
  description:
    'failover while the old primary is alive (prober cut off from it), writers direct and via the VIP',
  expectFailover: true,
  defaultTrials: 5,
  expect: () => ({
    failovers: 1,
    zero: ['oldPrimaryAcksAfterPromotion', 'ackedLost', 'stuckInProgress'],
    true: ['stateNamesWritable'],
  }),
  run: async () => {
    const paths = await startProbePaths(trialNodeIds(), resolveFromFailoverConfig());
    try {
      return await withTrialEnv(
        { cloud: { nodeOverrides: paths.nodeOverrides, healthCheckTimeoutMs: 10_000, scheduleRateMs: 5000 } },
        async (env): Promise<Trial> => {
          const routed = paths.stats('db1').accepted;
          if (!(await waitUntil(() => paths.stats('db1').accepted > routed + 2, 15_000)))
            throw new Error('the prober never used its own path');
          const tl = startTimeline(env, { directToOld: OLD_PRIMARY_CLIENTS });
          await sleep(1500 + Math.random() * 1000);
          const faultAt = tl.markFault();
          paths.set('db1', 'drop');
          try {
            const byMonitor = await waitUntil(() => tl.failoverExecutions().length > 0, DECIDE_MS);
            if (!byMonitor)
              await startFailoverExecution(env, 'db1', {
                reason: { analysis: 'DeadPrimary', evidence: 'bench: the prober lost the primary' },
              });
            const startedAt = Date.now();
            await tl.waitSettled(90_000);
            await sleep(WATCH_AFTER_FAILOVER_MS);
            const f = await tl.figures();
            return timelineTrial(f, {
              triggeredBy: byMonitor ? 'monitor' : 'bench',
              startedAtMs: startedAt - faultAt,
            });
          } finally {
            paths.set('db1', 'pass');
          }
        },
      );
    } finally {
      await paths.close();
    }
  },
};
