import { type BenchScenario, sleep, type Trial, waitUntil, withTrialEnv } from '../trial-env.ts';

/**
 * kill -9 of a replica under write load. Must not fail over; ok = ReplicaDown reported (a
 * notification), no failover, writes continue on the primary.
 */
export const replicaCrash: BenchScenario = {
  name: 'replica-crash',
  description: 'kill -9 of a replica under write load (must not fail over)',
  expectFailover: false,
  run: () =>
    withTrialEnv({}, async ({ cluster, cloud, entries, startWriter }): Promise<Trial> => {
      const writer = startWriter();
      await sleep(1500 + Math.random() * 1000);
      const killedAt = Date.now();
      await cluster.crash('db3');
      const isNote = (e: Record<string, unknown>) =>
        e.type === 'notification' && String(e.subject).startsWith('ReplicaDown');
      const seen = await waitUntil(() => entries.some(isNote), 8000);
      const reportMs = seen ? Date.now() - killedAt : null;
      await sleep(killedAt + 8000 - Date.now());
      await writer.stop();
      const failovers = cloud.sfn.executions().length;
      const reported = entries.some(isNote);
      const after = writer.acked.filter((a) => a.at > killedAt + 1000).length;
      return {
        detectMs: null,
        promoteMs: null,
        vipMs: null,
        rtoMs: null,
        reportMs,
        ackedWrites: writer.acked.length,
        ackedLost: 0,
        failovers,
        reportedReplicaDown: reported,
        writesAfterCrash: after,
        ok: failovers === 0 && reported && after > 0,
      };
    }),
};
