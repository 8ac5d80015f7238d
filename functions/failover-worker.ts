import middy from '@middy/core';
import { getRuntime } from '../lib/runtime.ts';
import { taskHandlers } from './tasks.ts';

/** What a Task state sends: its own name (`$$.State.Name`) and its input. */
export interface TaskEvent {
  task: string;
  input: unknown;
}

/** The warm-up ping of the schedule (serverless.yml): answers without touching anything. */
export interface PingEvent {
  ping: true;
}

// One function serves every Task state of both state machines, so a failover runs on the
// instance the ping keeps warm instead of paying one cold start per step (README: Lambda runtime).
const startedAt = Date.now();

/** Runs the Task state named in the event, or answers a ping. */
export async function plain(event: TaskEvent | PingEvent): Promise<unknown> {
  if (typeof event !== 'object' || event === null)
    throw new TypeError('failoverWorker: the event must be {task, input} or {ping: true}');
  if ('ping' in event) {
    // Warm what every failover runs first, off the failover path: the configuration, the state
    // table client, the secrets and the VIP provider client (no database is touched). Measured:
    // an import-only ping left ~0.45 s of first-use work to BeginFailover.
    const rt = getRuntime();
    await Promise.all(
      rt.config.clusters.map(async (c) => {
        await rt.store.getClusterState(c.name);
        await rt.logins(c);
        await rt.vipMover(c);
      }),
    );
    return { pong: true, instanceAgeMs: Date.now() - startedAt };
  }
  const run = taskHandlers[event.task];
  if (run === undefined)
    throw new TypeError(
      `failoverWorker: no Task state named '${String(event.task)}' (known: ${Object.keys(taskHandlers).join(', ')}); each Task state passes {"task": "<its state name>", "input.$": "$"}`,
    );
  return run(event.input as never);
}

export const handler = middy<TaskEvent | PingEvent, unknown>().handler((event) => plain(event));
