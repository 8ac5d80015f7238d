import middy from '@middy/core';
import { z } from 'zod';
import { formatIssues } from '../lib/config/load-config.ts';
import { InvalidRequestError } from '../lib/errors.ts';
import { clusterStatus, formatStatus } from '../lib/operator/status.ts';
import { getRuntime } from '../lib/runtime.ts';
import { logContext } from './middleware.ts';

const StatusRequest = z.object({ cluster: z.string().min(1).optional() }).strict();

/** Manual invoke: `serverless invoke -f status [--data '{"cluster":"orders"}']`. */
export async function plain(event: unknown) {
  const parsed = StatusRequest.safeParse(event ?? {});
  if (!parsed.success)
    throw new InvalidRequestError(`Invalid status request:\n${formatIssues(parsed.error.issues)}`);
  const rt = getRuntime();
  const clusters = parsed.data.cluster ? [rt.cluster(parsed.data.cluster)] : rt.config.clusters;
  const statuses = await Promise.all(clusters.map((c) => clusterStatus(rt, c)));
  return { report: statuses.map(formatStatus).join('\n\n'), clusters: statuses };
}

export const handler = middy()
  .use(logContext())
  .handler((event: unknown) => plain(event));
