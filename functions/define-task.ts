import middy from '@middy/core';
import { scrubDriverError } from '../lib/adapters/mysql/connection.ts';
import { describeError, redact } from '../lib/errors.ts';
import { getRuntime, type Runtime } from '../lib/runtime.ts';
import { logContext } from './middleware.ts';

export type Plain<I, O> = (event: I) => Promise<O>;

/**
 * Wraps a lib function as a Lambda handler: the plain handler (for tests and the local
 * Step Functions endpoint) and the middy-wrapped one (for Lambda). Errors keep their class
 * name, which is what the state machine's Retry/Catch match on, but leave without secrets.
 */
export function defineTask<I, O>(name: string, fn: (rt: Runtime, event: I) => Promise<O>) {
  const plain: Plain<I, O> = async (event) => {
    const rt = getRuntime();
    try {
      return await fn(rt, event);
    } catch (err) {
      const safe = sanitizeError(err);
      rt.log({ level: 'error', type: 'task-failed', task: name, error: describeError(safe) });
      throw safe;
    }
  };
  const handler = middy<I, O>()
    .use(logContext())
    .handler((event: I) => plain(event));
  return { plain, handler };
}

/**
 * The error as it may leave a handler: Lambda logs an uncaught error ("Invoke Error") with its
 * message, stack and every enumerable property, and Step Functions stores the message in the
 * execution history. A driver error carries its statement (`sql`: CHANGE MASTER with
 * MASTER_PASSWORD); a typed error may wrap one as `cause`. Same instance and name (the state
 * machine's Retry/Catch match on the name), secrets removed, the cause chain included.
 */
export function sanitizeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error) || depth > 5) return err;
  scrubDriverError(err);
  err.message = redact(err.message);
  if (typeof err.stack === 'string') err.stack = redact(err.stack);
  const details = (err as { details?: unknown }).details;
  if (details !== null && typeof details === 'object') {
    for (const [k, v] of Object.entries(details)) {
      if (typeof v === 'string') (details as Record<string, unknown>)[k] = redact(v);
    }
  }
  if (err.cause !== undefined) sanitizeError(err.cause, depth + 1);
  return err;
}
