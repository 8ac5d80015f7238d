import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { runHealthCheck } from '../lib/health/monitor.ts';
import { getRuntime } from '../lib/runtime.ts';
import { logContext } from './middleware.ts';

/** Stop probing this long before the invocation's own timeout (flush state, release leases). */
const SAFETY_MARGIN_MS = 4000;

/** Scheduled (rate 1 minute): probes every cluster at detection.intervalMs until shortly before the timeout. */
export async function plain(
  _event: unknown,
  context: Pick<Context, 'awsRequestId' | 'getRemainingTimeInMillis'>,
  signal?: AbortSignal,
) {
  const rt = getRuntime();
  const deadline = rt.now() + context.getRemainingTimeInMillis() - SAFETY_MARGIN_MS;
  // HEALTH_ROUND_LOG=1 (the bench's probe-round figure) logs each round's duration.
  const roundLog = process.env.HEALTH_ROUND_LOG === '1';
  const results = await runHealthCheck(rt, {
    owner: context.awsRequestId,
    deadline,
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
              // The slowest node's probe (connect + queries): the rest of the round is analysis,
              // fencing checks and state writes.
              probeMs: r.snapshot.nodes.reduce((m, n) => Math.max(m, n.probeMs ?? 0), 0),
            }),
        }
      : {}),
  });
  return { results };
}

export const handler = middy()
  .use(logContext())
  .handler((event: unknown, context: Context) => plain(event, context));
