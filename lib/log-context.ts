import { AsyncLocalStorage } from 'node:async_hooks';

/** What every log line of one invocation carries (set by functions/middleware.ts). */
export interface LogContext {
  requestId?: string;
  function?: string;
  /** X-Ray trace id when tracing is on, to jump from a log line to its trace. */
  traceId?: string;
}

const storage = new AsyncLocalStorage<LogContext>();

/** Makes `ctx` the log context of the current invocation and everything it awaits. */
export function enterLogContext(ctx: LogContext): void {
  storage.enterWith(ctx);
}

/** The current invocation's log context ({} outside one: tests, the sandbox). */
export function currentLogContext(): LogContext {
  return storage.getStore() ?? {};
}

/**
 * One log line: a JSON object with timestamp, level, the invocation's request id and the entry,
 * written straight to stdout. Lambda keeps such a line as one event whose fields CloudWatch Logs
 * Insights discovers, and EMF lines stay whole JSON objects (under Lambda's JSON log format,
 * console.log would wrap them in `message` and the metrics would be lost).
 */
export function formatLogLine(entry: Record<string, unknown>, now = Date.now()): string {
  return JSON.stringify({
    timestamp: new Date(now).toISOString(),
    level: 'info',
    ...currentLogContext(),
    ...entry,
  });
}
