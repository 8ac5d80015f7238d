import middy from '@middy/core';
import { describeError } from '../lib/errors.ts';
import { getRuntime, type Runtime } from '../lib/runtime.ts';
import { logContext } from './middleware.ts';

export type Plain<I, O> = (event: I) => Promise<O>;

/**
 * Wraps a lib function as a Lambda handler: the plain handler (for tests and the local
 * Step Functions endpoint) and the middy-wrapped one (for Lambda). Errors keep their class
 * name, which is what the state machine's Retry/Catch match on.
 */
export function defineTask<I, O>(name: string, fn: (rt: Runtime, event: I) => Promise<O>) {
  const plain: Plain<I, O> = async (event) => {
    const rt = getRuntime();
    try {
      return await fn(rt, event);
    } catch (err) {
      rt.log({ level: 'error', type: 'task-failed', task: name, error: describeError(err) });
      throw err;
    }
  };
  const handler = middy<I, O>()
    .use(logContext())
    .handler((event: I) => plain(event));
  return { plain, handler };
}
