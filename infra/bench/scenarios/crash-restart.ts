import { type BenchScenario, sleep, type Trial, waitUntil, withTrialEnv } from '../trial-env.ts';
import { OLD_PRIMARY_CLIENTS, startTimeline, timelineTrial } from './timeline.ts';

/** mysqld_safe / systemd bring a crashed server back within about a second. */
const RESTART_MIN_MS = 700;
const RESTART_SPREAD_MS = 300;
/** After the failover, time for the health check to find and fence the returned node. */
const WATCH_AFTER_FAILOVER_MS = 10_000;

/**
 * T2 (issue 11): kill -9 of the primary under write load (VIP and direct), restarted 0.7-1.0 s
 * later on the same datadir and port with read_only=OFF, as mysqld_safe or systemd would (or
 * right after the failover was decided, when that came later: `restartWaitedForDecision`). Must
 * hold: it takes no acknowledged write once the candidate can, nothing acknowledged is lost, and
 * it ends read_only and in the state's needs-rejoin list, and our prober commits nothing on it
 * after the promotion.
 */
export const crashRestart: BenchScenario = {
  name: 'crash-restart',
  description:
    'kill -9 of the primary, restarted read_only=OFF 0.7-1.0 s later, writers via the VIP and direct',
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
    true: ['stateNamesWritable', 'oldPrimaryFenced', 'oldPrimaryNeedsRejoin'],
  }),
  run: () =>
    withTrialEnv({}, async (env): Promise<Trial> => {
      const { cluster } = env;
      const tl = startTimeline(env, { directToOld: OLD_PRIMARY_CLIENTS });
      await sleep(2000 + Math.random() * 1000);
      const faultAt = tl.markFault();
      await cluster.crash('db1');
      await sleep(faultAt + RESTART_MIN_MS + Math.random() * RESTART_SPREAD_MS - Date.now());
      // On a loaded machine detection may take longer than the restart; a node back before any
      // decision is simply still the primary, and exercises nothing. Come back right after it.
      const beforeDecision = tl.failoverExecutions().length === 0;
      if (beforeDecision) await waitUntil(() => tl.failoverExecutions().length > 0, 10_000);
      const restartAt = Date.now();
      await cluster.restart('db1');
      const restartedAt = Date.now();
      await tl.waitSettled(60_000);
      await sleep(WATCH_AFTER_FAILOVER_MS);
      const f = await tl.figures();
      const promotedAt = tl.promoted()?.at;
      return timelineTrial(f, {
        restartAtMs: restartAt - faultAt,
        restartWaitedForDecision: beforeDecision,
        /** The restarted node answered (InnoDB recovery done). */
        restartedAtMs: restartedAt - faultAt,
        /** Negative: the old primary was back before the candidate was writable. */
        promotedAfterRestartMs: promotedAt === undefined ? null : promotedAt - restartedAt,
        oldPrimaryFenced: !f.writableAtEnd.includes('db1'),
        oldPrimaryNeedsRejoin: f.needsRejoin.includes('db1'),
      });
    }),
};
