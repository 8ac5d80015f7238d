import middy from '@middy/core';
import { z } from 'zod';
import { checkCluster } from '../lib/operator/check.ts';
import { parseRequest } from '../lib/operator/common.ts';
import { getRuntime } from '../lib/runtime.ts';
import { logContext } from './middleware.ts';

const CheckRequest = z.object({ cluster: z.string().min(1) }).strict();

/** Manual invoke: `serverless invoke -f check --data '{"cluster":"orders"}'` (pre-flight, reads only). */
export async function plain(event: unknown) {
  const req = parseRequest('check', CheckRequest, event, '{"cluster":"<name>"}');
  const rt = getRuntime();
  return checkCluster(rt, rt.cluster(req.cluster));
}

export const handler = middy()
  .use(logContext())
  .handler((event: unknown) => plain(event));
