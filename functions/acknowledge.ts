import middy from '@middy/core';
import { z } from 'zod';
import { acknowledgeBlock } from '../lib/operator/acknowledge.ts';
import { parseRequest } from '../lib/operator/common.ts';
import { getRuntime } from '../lib/runtime.ts';
import { logContext } from './middleware.ts';

const AcknowledgeRequest = z.object({ cluster: z.string().min(1) }).strict();

/** Manual invoke: `serverless invoke -f acknowledge --data '{"cluster":"orders"}'` (clears the anti-flap block). */
export async function plain(event: unknown) {
  const req = parseRequest('acknowledge', AcknowledgeRequest, event, '{"cluster":"<name>"}');
  return acknowledgeBlock(getRuntime(), req.cluster);
}

export const handler = middy()
  .use(logContext())
  .handler((event: unknown) => plain(event));
