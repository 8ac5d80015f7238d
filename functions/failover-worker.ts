import middy from '@middy/core';
import { getRuntime } from '../lib/runtime.ts';
import { taskHandlers } from './tasks.ts';

/** What a Task state sends: its own name (`$$.State.Name`), its TimeoutSeconds and its input. */
export interface TaskEvent {
  task: string;
  /** The state's TimeoutSeconds: the task never outlives it (see {@link plain}). */
  timeoutSeconds?: number;
  input: unknown;
}

/** The warm-up ping of the schedule (serverless.yml): answers without touching anything. */
export interface PingEvent {
  ping: true;
}

// One function serves every Task state of both state machines, so a failover runs on the
// instance the ping keeps warm instead of paying one cold start per step (README: Lambda runtime).
const startedAt = Date.now();
/** Whether this instance has loaded what the failover path uses (by a ping, or see warmBehind). */
let warmed = false;

/**
 * An instance that no ping warmed (a cold failover: the worst case) starts loading what the later
 * steps of this cluster's failover use, the VIP provider's module and client and the chunks
 * BeginFailover loads, behind the task it runs now, so that FenceOldPrimary finds them ready.
 * Read-only; one Lambda instance runs the whole failover, so it completes between the tasks.
 */
function warmBehind(input: unknown): void {
  if (warmed) return;
  warmed = true;
  let rt: ReturnType<typeof getRuntime>;
  try {
    rt = getRuntime();
  } catch {
    return; // the task itself reports the configuration error
  }
  const name = (input as { cluster?: unknown } | null)?.cluster;
  const c = rt.config.clusters.find((x) => x.name === name);
  void Promise.all([
    c ? rt.vipMover(c) : undefined,
    import('../lib/adapters/sdk/sns.ts'),
    import('../lib/adapters/sdk/eventbridge.ts'),
  ]).catch(() => undefined);
}

/** Runs the Task state named in the event, or answers a ping. */
export async function plain(event: TaskEvent | PingEvent): Promise<unknown> {
  if (typeof event !== 'object' || event === null)
    throw new TypeError('failoverWorker: the event must be {task, input} or {ping: true}');
  if ('ping' in event) {
    // Warm what every failover runs first, off the failover path: the configuration, the state
    // table client, the secrets and the VIP provider client (no database is touched). Measured:
    // an import-only ping left ~0.45 s of first-use work to BeginFailover.
    const rt = getRuntime();
    await Promise.all([
      ...rt.config.clusters.map(async (c) => {
        await rt.store.getClusterState(c.name);
        await rt.logins(c);
        await rt.vipMover(c);
      }),
      // Code that the bundle loads on first use (split into chunks, see serverless.yml) and that
      // BeginFailover runs: compiled now rather than on the failover path.
      import('../lib/adapters/sdk/sns.ts'),
      import('../lib/adapters/sdk/eventbridge.ts'),
    ]);
    warmed = true;
    return { pong: true, instanceAgeMs: Date.now() - startedAt };
  }
  const run = taskHandlers[event.task];
  if (run === undefined)
    throw new TypeError(
      `failoverWorker: no Task state named '${String(event.task)}' (known: ${Object.keys(taskHandlers).join(', ')}); each Task state passes {"task": "<its state name>", "input.$": "$"}`,
    );
  // One function serves every state, so its Lambda timeout (the longest state's) does not bound
  // a task: Step Functions gives up on a state at its TimeoutSeconds, but the Lambda would keep
  // running. The cleanup of an execution that ended (lib/failover/execution-ended.ts) waits until
  // every open task is over, counting on each being dead by its state's TimeoutSeconds: end the
  // process then (Lambda reports Runtime.ExitError and starts a fresh instance), as a per-state
  // function would have been killed at its own timeout.
  // Only inside a Lambda runtime (AWS, or the local packaged runtime): called in-process by a
  // test, ending the process would end the test runner.
  warmBehind(event.input);
  const limitS = event.timeoutSeconds;
  const hardStop =
    typeof limitS === 'number' && limitS > 0 && process.env.AWS_LAMBDA_RUNTIME_API
      ? setTimeout(() => {
          process.stderr.write(
            `${JSON.stringify({ level: 'error', type: 'task-hard-stop', task: event.task, timeoutSeconds: limitS })}\n`,
          );
          process.exit(124);
        }, limitS * 1000)
      : undefined;
  try {
    return await run(event.input as never);
  } finally {
    if (hardStop) clearTimeout(hardStop);
  }
}

export const handler = middy<TaskEvent | PingEvent, unknown>().handler((event) => plain(event));
