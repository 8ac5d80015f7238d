import middy from '@middy/core';
import { z } from 'zod';
import { MAX_SWITCHOVER_CATCH_UP_SECONDS } from '../lib/config/schema.ts';
import { parseRequest } from '../lib/operator/common.ts';
import { runSwitchover } from '../lib/operator/switchover.ts';
import { getRuntime } from '../lib/runtime.ts';
import { logContext } from './middleware.ts';

const SwitchoverRequest = z
  .object({
    cluster: z.string().min(1),
    candidate: z.string().min(1).optional(),
    /** Pre-check limits (defaults: 5 s lag, 10 s transaction, 100 ms grace, 10 s catch-up). */
    maxLagSeconds: z.number().min(0).max(3600).optional(),
    maxTransactionSeconds: z.number().min(0).max(86_400).optional(),
    graceMs: z.number().int().min(0).max(10_000).optional(),
    catchUpTimeoutSeconds: z.number().min(1).max(MAX_SWITCHOVER_CATCH_UP_SECONDS).optional(),
  })
  .strict();

const USAGE =
  '{"cluster":"<name>", "candidate"?: "<node id>", "maxLagSeconds"?: 5, "maxTransactionSeconds"?: 10, "graceMs"?: 100, "catchUpTimeoutSeconds"?: 10}';

/** Manual invoke: `serverless invoke -f switchover --data '{"cluster":"orders","candidate":"db2"}'`. */
export async function plain(event: unknown) {
  const req = parseRequest('switchover', SwitchoverRequest, event, USAGE);
  const rt = getRuntime();
  const c = rt.cluster(req.cluster);
  const limits = {
    ...(req.maxLagSeconds !== undefined ? { maxLagSeconds: req.maxLagSeconds } : {}),
    ...(req.maxTransactionSeconds !== undefined ? { maxTransactionSeconds: req.maxTransactionSeconds } : {}),
    ...(req.graceMs !== undefined ? { graceMs: req.graceMs } : {}),
    ...(req.catchUpTimeoutSeconds !== undefined ? { catchUpTimeoutSeconds: req.catchUpTimeoutSeconds } : {}),
  };
  return runSwitchover(rt, c, { ...(req.candidate ? { candidate: req.candidate } : {}), limits });
}

export const handler = middy()
  .use(logContext())
  .handler((event: unknown) => plain(event));
