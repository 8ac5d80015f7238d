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
 *
 * With BENCH_KEEP_LOGS_DIR set, each trial leaves `<dir>/trial-<faultAt>/`: every node's binlog
 * and relay logs (read them with mysqlbinlog), and times.json (fault, promotion and SIGCONT
 * times, every writer's acknowledgements from 3 s before the fault, the functions' log entries,
 * the figures). `lostAcks` in the figures names each lost acknowledgement.
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
      const keep = process.env.BENCH_KEEP_LOGS_DIR;
      if (keep) {
        const { cpSync, mkdirSync, readdirSync, writeFileSync } = await import('node:fs');
        const dir = `${keep}/trial-${faultAt}`;
        mkdirSync(dir, { recursive: true });
        for (const n of cluster.nodes) {
          for (const file of readdirSync(n.datadir))
            if (/^(binlog|relay-bin)\.\d+$/.test(file))
              cpSync(`${n.datadir}/${file}`, `${dir}/${n.id}-${file}`);
          cpSync(cluster.errorLogPath(n.id), `${dir}/${n.id}-error.log`);
        }
        writeFileSync(
          `${dir}/times.json`,
          JSON.stringify(
            {
              faultAt,
              promoted: tl.promoted(),
              resumedAt,
              acks: Object.fromEntries(
                Object.entries(tl.acks()).map(([k, v]) => [k, v.filter((a) => a.at > faultAt - 3000)]),
              ),
              entries: env.entries,
              figures: f,
            },
            null,
            1,
          ),
        );
      }
      return timelineTrial(f, {
        resumedAtMs: resumedAt - faultAt,
        resumedAfterPromotionMs: promotedAt === undefined ? null : resumedAt - promotedAt,
      });
    }),
};
