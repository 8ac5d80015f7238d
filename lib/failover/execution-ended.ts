/**
 * The cleanup of an execution that ended outside its Catch. An execution-level timeout, a
 * StopExecution, or FailoverFailed / SwitchoverAborted failing themselves end the execution
 * without running the Catch target, and `failoverInProgress` would stay set forever (no further
 * failover; acknowledge, switchover and rejoin refuse). Step Functions publishes every status
 * change to EventBridge; a rule (serverless.yml, ExecutionEnded) sends FAILED, TIMED_OUT and
 * ABORTED ones of both state machines here, and this runs the Catch target's own idempotent
 * cleanup: roll forward when the candidate was promoted, otherwise restart the frozen IO threads
 * (failover) or move the VIP back and restore the old primary's writes (switchover).
 *
 *   execution   |Begin|Elect|CatchUp ... (TimeoutSeconds) x   <- no Catch runs
 *   EventBridge                                          |Status Change TIMED_OUT|
 *   this                                                        |still ours? -> cleanup, alert|
 *
 * Tasks in flight. Ending an execution does not stop the Lambda of the task it was running: a
 * PromoteCandidate (or a switchover's BlockWrites, a MoveVip) may still make its change after the
 * execution ended. If the cleanup decided "nothing promoted" before that, the state would name the
 * old primary while the candidate is writable (T3 again), or a switchover's undo would be followed
 * by BlockWrites making the old primary read-only with nothing writable. One rule, for failover
 * and switchover and for every cleanup (this, FailoverFailed, SwitchoverAborted):
 *
 *   1. revoke: a conditional write marks the claim revoked (failoverInProgress.revokedAt). Every
 *      irreversible statement is preceded by a re-check of the claim (assertClaim in
 *      step-runner.ts), which refuses a revoked one: a task reaching its statement after the
 *      revoke does nothing.
 *   2. settle: a task that passed its re-check BEFORE the revoke may still be executing its
 *      statement. It is over, at the latest, when its Lambda times out: the cleanup waits until
 *      the last attempt of every Task state still open in the execution history started plus
 *      that state's TimeoutSeconds (= the function's timeout) plus TASK_OVERRUN_MARGIN_MS.
 *   3. decide: only then does the cleanup look at the live servers (is the candidate writable?)
 *      and roll forward or undo.
 *
 *   task       |PromoteCandidate: claim ok ... assertClaim ok |read_only=OFF ...........|  (Lambda timeout)
 *   execution  ............ x StopExecution / TIMED_OUT
 *   cleanup                    |revoke|-- wait until entered + TimeoutSeconds + margin --|decide: db2 writable -> roll forward
 *   task'      |MoveVip: ......................... assertClaim -> StaleEpochError (revoked): no move
 *
 * A task whose re-check came after the revoke refuses; one whose re-check came before is over by
 * the time the cleanup decides. The executionEnded function's timeout (900 s) covers the longest
 * TimeoutSeconds of both machines' tasks (660 s) plus the margin and the cleanup itself.
 */
import { DescribeStateMachineCommand, GetExecutionHistoryCommand, SFNClient } from '@aws-sdk/client-sfn';
import { InvalidRequestError } from '../errors.ts';
import { type SwitchoverContext, switchoverAborted } from '../operator/switchover-steps.ts';
import type { Runtime } from '../runtime.ts';
import type { FailoverContext, FailoverRequest } from './context.ts';
import { type CleanupOptions, candidateOf, failoverFailed, stepCompleted } from './finish-steps.ts';
import { TASK_OVERRUN_MARGIN_MS } from './step-runner.ts';

/** The `detail` of an EventBridge "Step Functions Execution Status Change" event. */
export interface ExecutionStatusChange {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED' | 'PENDING_REDRIVE';
  startDate?: number;
  stopDate?: number | null;
  /** The execution's input, a JSON string (absent when larger than the event allows). */
  input?: string | null;
  error?: string | null;
  cause?: string | null;
}

export interface ExecutionEndedEvent {
  'detail-type'?: string;
  source?: string;
  detail?: ExecutionStatusChange;
}

export interface ExecutionEndedResult {
  executionName: string;
  status: string;
  /** cleaned: the cleanup ran; none: nothing left to clean (the Catch ran, or never claimed). */
  action: 'cleaned' | 'none';
  reason: string;
}

const ENDED = new Set(['FAILED', 'TIMED_OUT', 'ABORTED']);

/** Tasks of the ended execution that may still run, and when the last of them is over. */
export interface InFlight {
  /** Epoch ms after which no task of the execution runs any more. */
  until: number;
  /** The Task states still open when it ended, with the bound each got. */
  states: Array<{ name: string; attemptStartedAt: number; timeoutSeconds: number }>;
}

export interface ExecutionEndedDeps {
  /** Default: the execution history and the state machine definition (Step Functions API). */
  inFlightUntil?: (detail: ExecutionStatusChange, stopDate: number) => Promise<InFlight>;
  sleep?: (ms: number) => Promise<void>;
}

/** Used when a Task state has no TimeoutSeconds: the longest a Lambda can run. */
const LAMBDA_MAX_SECONDS = 900;

const ATTEMPT_STARTED = new Set(['TaskScheduled', 'TaskStarted', 'TaskSubmitted']);
const ATTEMPT_ENDED = new Set(['TaskFailed', 'TaskTimedOut', 'TaskStartFailed', 'TaskSubmitFailed']);

/**
 * The Task states still open in the execution history when the execution ended, each bounded by
 * the start of its last attempt (the latest TaskScheduled after it was entered; after a retry
 * with no such event, the stop date, since an attempt in flight started before it) plus its
 * TimeoutSeconds from the definition, plus TASK_OVERRUN_MARGIN_MS. A task that timed out (the
 * Lambda runs on a little) counts too.
 */
export async function inFlightFromHistory(d: ExecutionStatusChange, stopDate: number): Promise<InFlight> {
  const sfn = new SFNClient({});
  const events: Array<{ type?: string; timestamp?: Date; [k: string]: unknown }> = [];
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(
      new GetExecutionHistoryCommand({
        executionArn: d.executionArn,
        includeExecutionData: false,
        maxResults: 1000,
        ...(nextToken ? { nextToken } : {}),
      }),
    );
    events.push(...((page.events ?? []) as unknown as typeof events));
    nextToken = page.nextToken;
  } while (nextToken);
  const definition = (await sfn.send(new DescribeStateMachineCommand({ stateMachineArn: d.stateMachineArn })))
    .definition;
  return inFlightOf(events, taskTimeouts(JSON.parse(definition ?? '{}')), stopDate, d.status);
}

/** The pure part of inFlightFromHistory (exported for tests). */
export function inFlightOf(
  events: ReadonlyArray<{ type?: string; timestamp?: Date | number; [k: string]: unknown }>,
  timeouts: ReadonlyMap<string, number>,
  stopDate: number,
  status: ExecutionStatusChange['status'] = 'ABORTED',
): InFlight {
  const at = (e: { timestamp?: Date | number }) =>
    e.timestamp instanceof Date ? e.timestamp.getTime() : Number(e.timestamp ?? 0) * 1000;
  const open = new Map<string, { attemptStartedAt: number; unknownRetry: boolean; failed: boolean }>();
  let lastTimedOut: number | undefined;
  // Outside a Parallel or Map state, states run one at a time: entering one means the task before
  // it is over (it exited, or its error was caught). Inside one, branches interleave: nothing is
  // closed that way.
  let nested = 0;
  for (const e of events) {
    const type = e.type ?? '';
    const name = (e.stateEnteredEventDetails as { name?: string } | undefined)?.name;
    const exited = (e.stateExitedEventDetails as { name?: string } | undefined)?.name;
    if (type.endsWith('StateEntered') && nested === 0) open.clear();
    if (type === 'ParallelStateEntered' || type === 'MapStateEntered') nested++;
    else if ((type === 'ParallelStateExited' || type === 'MapStateExited') && nested > 0) nested--;
    if (type === 'TaskStateEntered' && name)
      open.set(name, { attemptStartedAt: at(e), unknownRetry: false, failed: false });
    else if (type === 'TaskStateExited' && exited) open.delete(exited);
    else if (ATTEMPT_STARTED.has(type)) {
      // Not tied to a state by name: a later attempt of any open state only moves bounds later.
      for (const o of open.values()) {
        o.attemptStartedAt = Math.max(o.attemptStartedAt, at(e));
        o.unknownRetry = false;
        o.failed = false;
      }
    } else if (ATTEMPT_ENDED.has(type)) {
      // A task timeout: its Lambda runs on a little (TaskTimedOut; States.Timeout locally).
      const timedOut =
        type === 'TaskTimedOut' ||
        (e.taskFailedEventDetails as { error?: string } | undefined)?.error === 'States.Timeout';
      for (const o of open.values()) {
        o.unknownRetry = true;
        o.failed = !timedOut;
      }
      if (timedOut) lastTimedOut = at(e);
    }
  }
  // An execution that FAILED on the error of its only open task: that task's Lambda returned it
  // (a failed state has no TaskStateExited). With several open (Parallel) the error may be
  // another's: all stay in flight.
  if (status === 'FAILED' && open.size === 1) {
    for (const [name, o] of open) if (o.failed) open.delete(name);
  }
  const states = [...open].map(([name, o]) => ({
    name,
    attemptStartedAt: o.unknownRetry ? Math.max(o.attemptStartedAt, stopDate) : o.attemptStartedAt,
    timeoutSeconds: timeouts.get(name) ?? LAMBDA_MAX_SECONDS,
  }));
  const bounds = states.map((s) => s.attemptStartedAt + s.timeoutSeconds * 1000 + TASK_OVERRUN_MARGIN_MS);
  if (lastTimedOut !== undefined) bounds.push(lastTimedOut + TASK_OVERRUN_MARGIN_MS);
  return { until: Math.max(stopDate, ...bounds), states };
}

/** Task state name -> TimeoutSeconds, nested states (Parallel branches, Map) included. */
export function taskTimeouts(definition: unknown): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (states: unknown) => {
    if (!states || typeof states !== 'object') return;
    for (const [name, st] of Object.entries(states as Record<string, Record<string, unknown>>)) {
      if (st?.Type === 'Task' && typeof st.TimeoutSeconds === 'number') out.set(name, st.TimeoutSeconds);
      for (const b of (st?.Branches as Array<{ States?: unknown }> | undefined) ?? []) walk(b.States);
      const inner = (st?.ItemProcessor ?? st?.Iterator) as { States?: unknown } | undefined;
      if (inner) walk(inner.States);
    }
  };
  walk((definition as { States?: unknown })?.States);
  return out;
}

/**
 * Runs the cleanup for an execution that ended FAILED, TIMED_OUT or ABORTED, when it still owns
 * its cluster's epoch (failoverInProgress names it); otherwise changes nothing. Idempotent: a
 * repeated event, or one for an execution whose Catch ran, finds nothing to do.
 *
 * @throws InvalidRequestError when the event is not an execution status change with the input
 *   the health check or an operator action gave the execution.
 */
export async function executionEnded(
  rt: Runtime,
  event: ExecutionEndedEvent,
  deps: ExecutionEndedDeps = {},
): Promise<ExecutionEndedResult> {
  const d = event.detail;
  if (!d || typeof d.name !== 'string' || typeof d.status !== 'string') {
    throw new InvalidRequestError(
      'executionEnded needs an EventBridge "Step Functions Execution Status Change" event (detail.name, detail.status).',
    );
  }
  const base = { executionName: d.name, status: d.status };
  if (!ENDED.has(d.status))
    return { ...base, action: 'none', reason: `status ${d.status}: nothing to clean` };
  let req: FailoverRequest;
  try {
    req = JSON.parse(d.input ?? '') as FailoverRequest;
  } catch {
    throw new InvalidRequestError(
      `Execution ${d.name} ended ${d.status} but its input is not in the event.`,
      {
        executionName: d.name,
      },
    );
  }
  if (typeof req?.cluster !== 'string' || typeof req.failedPrimary !== 'string') {
    throw new InvalidRequestError(`Execution ${d.name}: its input is no failover or switchover request.`, {
      executionName: d.name,
    });
  }
  const state = await rt.store.getClusterState(req.cluster);
  const owned = state?.failoverInProgress;
  if (!owned || owned.executionName !== d.name) {
    return {
      ...base,
      action: 'none',
      reason: 'the execution holds no claim on the cluster (its Catch ran, or it never claimed)',
    };
  }
  const record = await rt.store.getFailover(req.cluster, owned.epoch);
  const candidate = candidateOf(record);
  const error = {
    Error:
      d.status === 'TIMED_OUT'
        ? 'States.Timeout'
        : d.status === 'ABORTED'
          ? 'States.Aborted'
          : (d.error ?? 'States.Runtime'),
    Cause: `Execution ${d.name} ended ${d.status} outside its Catch${d.cause ? `: ${d.cause}` : ''}; cleaned up by the execution status rule.`,
  };
  const ctx: FailoverContext = {
    ...req,
    executionName: d.name,
    epoch: owned.epoch,
    failedPrimary: owned.failedPrimary,
    ...(candidate ? { candidate } : {}),
  };
  const stopDate = typeof d.stopDate === 'number' ? d.stopDate : rt.now();
  const inFlight = await (deps.inFlightUntil ?? inFlightFromHistory)(d, stopDate);
  const opts: CleanupOptions = {
    inFlightUntil: inFlight.until,
    ...(deps.sleep ? { sleep: deps.sleep } : {}),
  };
  rt.log({
    level: 'warn',
    type: 'execution-ended',
    cluster: req.cluster,
    epoch: owned.epoch,
    ...base,
    inFlight: inFlight.states,
    decideAt: new Date(inFlight.until).toISOString(),
  });
  if (req.kind === 'switchover') {
    const sctx = ctx as SwitchoverContext;
    sctx.limits ??= (req as Partial<SwitchoverContext>).limits as SwitchoverContext['limits'];
    // What the audit record says it got to: the undo needs it (the VIP may have moved).
    if (stepCompleted(record, 'SwitchoverPreCheck')) sctx.phase = 'prechecked';
    const out = await switchoverAborted(rt, { ...sctx, error }, opts);
    return { ...base, action: 'cleaned', reason: out.abortReason };
  }
  await failoverFailed(rt, { ...ctx, error }, opts);
  return {
    ...base,
    action: 'cleaned',
    reason: `failover ${d.name} ended ${d.status}: FailoverFailed's cleanup ran`,
  };
}
