import middy from '@middy/core';
import { z } from 'zod';
import { parseRequest } from '../lib/operator/common.ts';
import { planFailover } from '../lib/operator/plan.ts';
import { getRuntime } from '../lib/runtime.ts';
import { logContext } from './middleware.ts';

const PlanRequest = z.object({ cluster: z.string().min(1), ignoreLag: z.boolean().optional() }).strict();

/** Manual invoke: `serverless invoke -f plan --data '{"cluster":"orders"}'` (dry run, changes nothing). */
export async function plain(event: unknown) {
  const req = parseRequest('plan', PlanRequest, event, '{"cluster":"<name>","ignoreLag"?:true}');
  const rt = getRuntime();
  return planFailover(rt, rt.cluster(req.cluster), req.ignoreLag === true ? { ignoreLag: true } : {});
}

export const handler = middy()
  .use(logContext())
  .handler((event: unknown) => plain(event));
