import type { MariaDbCluster } from '../../cluster/mariadb-cluster.ts';
import { resolveFromFailoverConfig, startProbePaths } from '../../local-cloud/probe-path.ts';
import {
  type BenchScenario,
  sleep,
  type Trial,
  trialNodeIds,
  waitUntil,
  withTrialEnv,
} from '../trial-env.ts';
import { startTimeline, timelineTrial } from './timeline.ts';

const PARTITION_MS = 8000;
/** A decision taken at the very end of the cut still shows within this. */
const WATCH_AFTER_HEAL_MS = 6000;

/**
 * MariaDB's defaults on the replicas: slave_net_timeout 60 s and a heartbeat period of half of
 * it, 30 s (the harness uses 3 s and 1 s). A quiet primary then sends a replica nothing for 30 s.
 */
async function defaultHeartbeat(cluster: MariaDbCluster): Promise<void> {
  for (const n of cluster.nodes.slice(1)) {
    await cluster.query(n.id, 'STOP SLAVE');
    await cluster.query(n.id, 'SET GLOBAL slave_net_timeout=60');
    await cluster.query(n.id, 'CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD=30');
    await cluster.query(n.id, 'START SLAVE');
    await cluster.waitForReplicaThreads(n.id);
  }
}

/**
 * T8 (issue 11): replicas at the default heartbeat period (30 s), no application writes, and the
 * prober cut off from the primary for 8 s (a blackhole on its own path; replication untouched).
 * The primary is healthy: must not fail over (no execution at all), and stays the writable,
 * recorded primary.
 */
export const quietPrimaryPartition: BenchScenario = {
  name: 'quiet-primary-partition',
  description: `heartbeat period 30 s, no writes, prober cut off from the primary for ${PARTITION_MS} ms (must not fail over)`,
  expectFailover: false,
  defaultTrials: 5,
  expect: () => ({
    failovers: 0,
    zero: ['failoverAttempts', 'oldPrimaryAcksAfterPromotion', 'stuckInProgress'],
    true: ['stateNamesWritable', 'primaryKept'],
  }),
  run: async () => {
    const paths = await startProbePaths(trialNodeIds(), resolveFromFailoverConfig());
    try {
      return await withTrialEnv(
        {
          cloud: { nodeOverrides: paths.nodeOverrides, healthCheckTimeoutMs: 10_000, scheduleRateMs: 5000 },
          prepare: defaultHeartbeat,
        },
        async (env): Promise<Trial> => {
          const routed = paths.stats('db1').accepted;
          if (!(await waitUntil(() => paths.stats('db1').accepted > routed + 2, 15_000)))
            throw new Error('the prober never used its own path');
          const tl = startTimeline(env, { vipWriters: 0, directToOld: 0, directToOthers: false });
          await sleep(1500 + Math.random() * 1000);
          const cutAt = tl.markFault();
          paths.set('db1', 'drop');
          try {
            await sleep(PARTITION_MS);
          } finally {
            paths.set('db1', 'pass');
          }
          await sleep(WATCH_AFTER_HEAL_MS);
          if (tl.failoverExecutions().length > 0) await tl.waitSettled(90_000);
          const started = env.entries.find((e) => e.type === 'failover-started');
          const f = await tl.figures();
          return timelineTrial(f, {
            decidedAfterCutMs: started ? Number(started.detectedAt) - cutAt : null,
            evidence: (started?.reason as { evidence?: string } | undefined)?.evidence ?? null,
            primaryKept: f.statePrimary === 'db1' && f.writableAtEnd.includes('db1'),
          });
        },
      );
    } finally {
      await paths.close();
    }
  },
};
