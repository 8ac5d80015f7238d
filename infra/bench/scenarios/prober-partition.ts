import { resolveFromFailoverConfig, startProbePaths } from '../../local-cloud/probe-path.ts';
import {
  type BenchScenario,
  sleep,
  type Trial,
  trialNodeIds,
  waitUntil,
  withTrialEnv,
} from '../trial-env.ts';

const PARTITION_MS = 8000;

/**
 * The prober is cut off from the primary only, for 8 s: its probes time out (a blackhole, not a
 * refusal) while the replicas keep replicating on their own path. Must not fail over; ok = no
 * failover, UnreachablePrimary reported, NoProblem again after the path heals, writes never stop.
 * `reportMs`: from the cut to the UnreachablePrimary notification.
 */
export const proberPartition: BenchScenario = {
  name: 'prober-partition',
  description: `the prober cut off from the primary for ${PARTITION_MS} ms (must not fail over)`,
  expectFailover: false,
  run: async () => {
    const paths = await startProbePaths(trialNodeIds(), resolveFromFailoverConfig());
    try {
      return await withTrialEnv(
        // Short invocations (6 s of probing, one every 5 s); they hand the lease over as the
        // 1-minute ones do.
        { cloud: { nodeOverrides: paths.nodeOverrides, healthCheckTimeoutMs: 10_000, scheduleRateMs: 5000 } },
        async ({ cloud, entries, startWriter, store }): Promise<Trial> => {
          const routed = paths.stats('db1').accepted;
          if (!(await waitUntil(() => paths.stats('db1').accepted > routed + 2, 15_000)))
            throw new Error('the prober never used its own path');
          const writer = startWriter();
          await sleep(1500 + Math.random() * 1000);
          const cutAt = Date.now();
          paths.set('db1', 'drop');
          const isNote = (e: Record<string, unknown>) =>
            e.type === 'notification' && String(e.subject).startsWith('UnreachablePrimary');
          const seen = await waitUntil(() => entries.some(isNote), PARTITION_MS);
          const reportMs = seen ? Date.now() - cutAt : null;
          await sleep(cutAt + PARTITION_MS - Date.now());
          paths.set('db1', 'pass');
          const healedAt = Date.now();
          const name = cloud.clusterName;
          const healthy = await waitUntil(
            async () => (await store.getClusterState(name))?.analysis === 'NoProblem',
            10_000,
          );
          await sleep(1000);
          await writer.stop();
          const note = entries.find(isNote);
          const during = writer.acked.filter((a) => a.at > cutAt && a.at < healedAt).length;
          const failovers = cloud.sfn.executions().length;
          return {
            detectMs: null,
            promoteMs: null,
            vipMs: null,
            rtoMs: null,
            reportMs,
            ackedWrites: writer.acked.length,
            ackedLost: 0,
            failovers,
            reportedUnreachablePrimary: note !== undefined,
            writesDuringPartition: during,
            ok: failovers === 0 && note !== undefined && healthy && during > 0,
          };
        },
      );
    } finally {
      await paths.close();
    }
  },
};
