import middy from '@middy/core';
import { z } from 'zod';
import { parseRequest } from '../lib/operator/common.ts';
import { rejoinNode } from '../lib/operator/rejoin.ts';
import { getRuntime } from '../lib/runtime.ts';
import { logContext } from './middleware.ts';

const RejoinRequest = z
  .object({ cluster: z.string().min(1), node: z.string().min(1), rebuild: z.boolean().optional() })
  .strict();

/** Manual invoke: `serverless invoke -f rejoin --data '{"cluster":"orders","node":"db1"}'`. */
export async function plain(event: unknown) {
  const req = parseRequest(
    'rejoin',
    RejoinRequest,
    event,
    '{"cluster":"<name>", "node":"<node id>", "rebuild"?: true}',
  );
  const rt = getRuntime();
  return rejoinNode(rt, rt.cluster(req.cluster), req.node, { rebuild: req.rebuild === true });
}

export const handler = middy()
  .use(logContext())
  .handler((event: unknown) => plain(event));
