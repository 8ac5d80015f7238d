import middy from '@middy/core';
import { z } from 'zod';
import { parseRequest } from '../lib/operator/common.ts';
import { runManualFailover } from '../lib/operator/failover.ts';
import { getRuntime } from '../lib/runtime.ts';

const FailoverRequest = z
  .object({
    cluster: z.string().min(1),
    candidate: z.string().min(1).optional(),
    ignoreLag: z.boolean().optional(),
    ignoreBlock: z.boolean().optional(),
    force: z.boolean().optional(),
  })
  .strict();

const USAGE =
  '{"cluster":"<name>", "candidate"?: "<node id>", "ignoreLag"?: true, "ignoreBlock"?: true, "force"?: true}';

/**
 * Manual invoke: `serverless invoke -f failover --data '{"cluster":"orders","candidate":"db2"}'`.
 * Fails over a primary that is down; a live primary is refused (use switchover) unless "force".
 */
export async function plain(event: unknown) {
  const req = parseRequest('failover', FailoverRequest, event, USAGE);
  const rt = getRuntime();
  return runManualFailover(rt, rt.cluster(req.cluster), {
    ...(req.candidate ? { candidate: req.candidate } : {}),
    ...(req.ignoreLag ? { ignoreLag: true } : {}),
    ...(req.ignoreBlock ? { ignoreBlock: true } : {}),
    ...(req.force ? { force: true } : {}),
  });
}

export const handler = middy().handler((event: unknown) => plain(event));
