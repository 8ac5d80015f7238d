import type { MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import { enterLogContext } from '../lib/log-context.ts';

/**
 * Sets the log context of the invocation (request id, function name, X-Ray trace id), so every
 * line the runtime logs for it carries them, concurrent invocations in one process included.
 */
export function logContext<I, O>(): MiddlewareObj<I, O, Error, Context> {
  return {
    before: (request) => {
      const trace = /Root=([^;]+)/.exec(process.env._X_AMZN_TRACE_ID ?? '')?.[1];
      enterLogContext({
        ...(request.context?.awsRequestId ? { requestId: request.context.awsRequestId } : {}),
        ...(request.context?.functionName ? { function: request.context.functionName } : {}),
        ...(trace ? { traceId: trace } : {}),
      });
    },
  };
}
