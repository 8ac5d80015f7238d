import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { METRIC_DETAILS, type MetricDetail } from '../lib/health/metrics.ts';
import { runHealthCheck } from '../lib/health/monitor.ts';
import { clustersOfShard, parseShard, secondWatchedShard, watchedShard } from '../lib/health/shards.ts';
import { getRuntime } from '../lib/runtime.ts';
import { logContext } from './middleware.ts';

/** Stop probing this long before the invocation's own timeout (flush state, release leases). */
const SAFETY_MARGIN_MS = 4000;

/** FAILOVER_METRICS=1 turns the EMF metrics on; FAILOVER_METRICS_DETAIL picks how many per cluster. */
function metricsSetting(env: NodeJS.ProcessEnv): MetricDetail | 'off' {
  if (env.FAILOVER_METRICS !== '1') return 'off';
  const detail = env.FAILOVER_METRICS_DETAIL ?? 'deployment';
  const known = METRIC_DETAILS.find((d) => d === detail);
  if (!known)
    throw new Error(
      `FAILOVER_METRICS_DETAIL must be one of ${METRIC_DETAILS.join(', ')} (got "${detail}"); see lib/health/metrics.ts.`,
    );
  return known;
}

/**
 * Scheduled (rate 1 minute): probes its clusters at detection.intervalMs until shortly before the
 * timeout. The event may carry a shard (`{"shard": i, "of": K}`, lib/health/shards.ts): the
 * invocation then probes only that shard's clusters, and takes over a cluster of the previous
 * shard whose lease lapsed (lib/health/lease.ts); without one, every cluster.
 */
export async function plain(
  event: unknown,
  context: Pick<Context, 'awsRequestId' | 'getRemainingTimeInMillis'>,
  signal?: AbortSignal,
) {
  const shard = parseShard(event);
  const rt = getRuntime();
  // The failover start and the alerts load on first use (chunks of the bundle, see serverless.yml):
  // compile them now, in the background, rather than between a confirmed failure and StartExecution.
  void Promise.all([import('../lib/adapters/sdk/sfn-start.ts'), import('../lib/adapters/sdk/sns.ts')]).catch(
    () => undefined,
  );
  const deadline = rt.now() + context.getRemainingTimeInMillis() - SAFETY_MARGIN_MS;
  const env = process.env;
  // HEALTH_ROUND_LOG=1 (the bench's probe-round figure) logs each round's duration and phases.
  const roundLog = env.HEALTH_ROUND_LOG === '1';
  const clusters = clustersOfShard(rt.config.clusters, shard);
  const second = secondWatchedShard(shard);
  rt.log({
    level: 'info',
    type: 'health-check-start',
    owner: context.awsRequestId,
    shard: shard.shard,
    of: shard.of,
    clusters: clusters.length,
  });
  const results = await runHealthCheck(rt, {
    owner: context.awsRequestId,
    deadline,
    clusters,
    // The previous shard's clusters: taken over when their lease lapses (a dead or hung shard).
    // One (or, with 3 shards or more, two) watchers per cluster keep the lease reads at about
    // 0.1/s per cluster and watcher whatever K is.
    watch: shard.of > 1 ? clustersOfShard(rt.config.clusters, watchedShard(shard)) : [],
    // And the one before it, a little later: two neighbouring shards dying at once lose nothing.
    watchLater: second ? clustersOfShard(rt.config.clusters, second) : [],
    metrics: metricsSetting(env),
    // HEALTH_PERSISTENT_PROBES=0: a fresh connection per node per round (the bench's comparison).
    persistentConnections: env.HEALTH_PERSISTENT_PROBES !== '0',
    ...(signal ? { signal } : {}),
    ...(roundLog
      ? {
          onRound: (r) =>
            rt.log({
              level: 'debug',
              type: 'probe-round',
              cluster: r.cluster,
              owner: r.owner,
              at: r.startedAt,
              ms: r.endedAt - r.startedAt,
              phases: r.phases,
              woken: r.woken,
            }),
        }
      : {}),
  });
  return { results };
}

export const handler = middy()
  .use(logContext())
  .handler((event: unknown, context: Context) => plain(event, context));
