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
 */
import { InvalidRequestError } from '../errors.ts';
import { type SwitchoverContext, switchoverAborted } from '../operator/switchover-steps.ts';
import type { Runtime } from '../runtime.ts';
import type { FailoverContext, FailoverRequest } from './context.ts';
import { candidateOf, failoverFailed, stepCompleted } from './finish-steps.ts';

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

/**
 * Runs the cleanup for an execution that ended FAILED, TIMED_OUT or ABORTED, when it still owns
 * its cluster's epoch (failoverInProgress names it); otherwise changes nothing. Idempotent: a
 * repeated event, or one for an execution whose Catch ran, finds nothing to do.
 *
 * @throws InvalidRequestError when the event is not an execution status change with the input
 *   the health check or an operator action gave the execution.
 */
export async function executionEnded(rt: Runtime, event: ExecutionEndedEvent): Promise<ExecutionEndedResult> {
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
  rt.log({ level: 'warn', type: 'execution-ended', cluster: req.cluster, epoch: owned.epoch, ...base });
  if (req.kind === 'switchover') {
    const sctx = ctx as SwitchoverContext;
    sctx.limits ??= (req as Partial<SwitchoverContext>).limits as SwitchoverContext['limits'];
    // What the audit record says it got to: the undo needs it (the VIP may have moved).
    if (stepCompleted(record, 'SwitchoverPreCheck')) sctx.phase = 'prechecked';
    const out = await switchoverAborted(rt, { ...sctx, error });
    return { ...base, action: 'cleaned', reason: out.abortReason };
  }
  await failoverFailed(rt, { ...ctx, error });
  return {
    ...base,
    action: 'cleaned',
    reason: `failover ${d.name} ended ${d.status}: FailoverFailed's cleanup ran`,
  };
}
