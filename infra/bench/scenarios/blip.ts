import { type BenchScenario, sleep, type Trial, waitUntil, withTrialEnv } from '../trial-env.ts';

/** How long the primary is frozen: shorter than the 2 s confirmation window. */
const BLIP_MS = 1500;

/**
 * A hang shorter than the confirmation window: SIGSTOP of the primary for 1.5 s under write
 * load, then SIGCONT. Must not fail over; ok = no failover execution and writes resume on the
 * same primary. `resumeMs`: from the SIGCONT to the first acknowledged write after it.
 */
export const blip: BenchScenario = {
  name: 'blip',
  description: `SIGSTOP of the primary for ${BLIP_MS} ms, then SIGCONT (must not fail over)`,
  expectFailover: false,
  run: () =>
    withTrialEnv({}, async ({ cluster, cloud, entries, startWriter }): Promise<Trial> => {
      const writer = startWriter();
      await sleep(2000 + Math.random() * 1000);
      const hungAt = Date.now();
      cluster.hang('db1');
      await sleep(BLIP_MS);
      cluster.resume('db1');
      const resumedAt = Date.now();
      const db1 = cluster.node('db1').serverId;
      await waitUntil(() => writer.acked.some((a) => a.at > resumedAt && a.serverId === db1), 10_000);
      // Watch for another confirmation window and more: nothing may start.
      await sleep(6000);
      await writer.stop();
      const resumed = writer.acked.find((a) => a.at > resumedAt);
      const failovers = cloud.sfn.executions().length;
      const suspected = entries.some(
        (e) => e.type === 'notification' && /DeadPrimary/.test(String(e.subject)),
      );
      return {
        detectMs: null,
        promoteMs: null,
        vipMs: null,
        rtoMs: resumed ? resumed.at - hungAt : null,
        resumeMs: resumed ? resumed.at - resumedAt : null,
        ackedWrites: writer.acked.length,
        ackedLost: 0,
        failovers,
        reportedDeadPrimary: suspected,
        ok: failovers === 0 && resumed !== undefined && resumed.serverId === db1,
      };
    }),
};
