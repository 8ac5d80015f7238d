import { type BenchScenario, sleep, type Trial, waitUntil, withTrialEnv } from '../trial-env.ts';
import { OLD_PRIMARY_CLIENTS, startTimeline, timelineTrial } from './timeline.ts';

/** The old primary continues this long after a survivor was first seen writable. */
const RESUME_AFTER_PROMOTION_MS = 500;
/**
 * Watch the returned node this long: past the semi-sync timeout (10 s), when a commit stalled on
 * it falls back to async and is acknowledged.
 */
const WATCH_AFTER_RESUME_MS = 15_000;

/**
 * T1 (issue 11): SIGSTOP of the primary under write load, the failover promotes a replica, and
 * 0.5 s after the promotion the old primary continues (SIGCONT) while clients keep writing to it
 * directly and through the VIP. Must hold: no acknowledgement from the old primary after the new
 * one is writable, no acknowledged write lost, our prober commits nothing on it after the
 * promotion (`proberWritesOnOldPrimaryAfterPromotion`), the state table lets go of the failover.
 */
export const hangReturn: BenchScenario = {
  name: 'hang-return',
  description:
    'SIGSTOP of the primary, failover, then SIGCONT while clients write to it directly and via the VIP',
  expectFailover: true,
  defaultTrials: 5,
  expect: () => ({
    failovers: 1,
    zero: [
      'oldPrimaryAcksAfterPromotion',
      'ackedLost',
      'stuckInProgress',
      'proberWritesOnOldPrimaryAfterPromotion',
    ],
    true: ['stateNamesWritable'],
  }),
  run: () =>
    withTrialEnv({}, async (env): Promise<Trial> => {
      const { cluster } = env;
      const tl = startTimeline(env, { directToOld: OLD_PRIMARY_CLIENTS });
      await sleep(2000 + Math.random() * 1000);
      const faultAt = tl.markFault();
      cluster.hang('db1');
      let resumedAt: number | undefined;
      try {
        const promoted = await waitUntil(() => tl.promoted() !== undefined, 60_000);
        if (promoted) await sleep(RESUME_AFTER_PROMOTION_MS);
        cluster.resume('db1');
        resumedAt = Date.now();
        await tl.waitSettled(90_000);
        await sleep(Math.max(0, resumedAt + WATCH_AFTER_RESUME_MS - Date.now()));
      } finally {
        if (resumedAt === undefined) cluster.resume('db1');
      }
      const f = await tl.figures();
      const promotedAt = tl.promoted()?.at;
      return timelineTrial(f, {
        resumedAtMs: resumedAt - faultAt,
        resumedAfterPromotionMs: promotedAt === undefined ? null : resumedAt - promotedAt,
      });
    }),
};
