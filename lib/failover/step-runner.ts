import type { FailoverEventType } from '../adapters/eventbridge-publisher.ts';
import type { Login } from '../adapters/mysql/connection.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { describeError, StaleEpochError } from '../errors.ts';
import type { FailoverStep } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import type { FailoverContext } from './context.ts';
import { getFailoverIntegrations } from './integrations.ts';

export type Detail = Record<string, unknown>;
/** What a step's body returns: its audit detail, typed as the step declares it. */
export interface StepOutcome<T extends Detail = Detail> {
  result?: 'ok' | 'skipped';
  detail: T;
}

/**
 * Throws StaleEpochError unless this execution still owns the cluster's epoch with a claim the
 * cleanup has not revoked. Every step calls it when it starts; a step about to make an
 * irreversible change (promotion, read_only on a primary, a VIP move) calls it again right
 * before that statement, so a task still running after its execution ended (a timeout, a
 * StopExecution) refuses once the cleanup has revoked the claim (see execution-ended.ts). The
 * cleanup's own steps pass `allowRevoked`.
 */
export async function assertClaim(
  rt: Runtime,
  ctx: FailoverContext,
  what: string,
  opts: { allowRevoked?: boolean } = {},
): Promise<void> {
  const state = await rt.store.getClusterState(ctx.cluster);
  const p = state?.failoverInProgress;
  if (!state || state.epoch !== ctx.epoch || p?.epoch !== ctx.epoch) {
    throw new StaleEpochError(
      `${what} for ${ctx.cluster} refused: this execution owns epoch ${ctx.epoch}, the cluster is at ${state?.epoch ?? 'none'}${p ? ` (in progress: ${p.executionName})` : ' with no failover in progress'}.`,
      { cluster: ctx.cluster, epoch: ctx.epoch },
    );
  }
  if (p.revokedAt !== undefined && !opts.allowRevoked) {
    throw new StaleEpochError(
      `${what} for ${ctx.cluster} refused: execution ${p.executionName} ended and its cleanup revoked the claim on epoch ${ctx.epoch} at ${new Date(p.revokedAt).toISOString()}.`,
      { cluster: ctx.cluster, epoch: ctx.epoch, revokedAt: p.revokedAt },
    );
  }
  await testPauseAfterClaim(rt, ctx, what);
}

/**
 * Fault injection for the timeline tests, inert unless FAILOVER_TEST_PAUSE_AFTER_CLAIM is set
 * (`<what>=<ms>`, e.g. `PromoteCandidate:promote=8000`): the step pauses right after its claim check
 * passed, so a test can end the execution while the step is in flight (test/timelines/
 * stopped-mid-step.test.ts). Like the local cloud's provider and DynamoDB faults; never set it
 * in a deployment.
 */
async function testPauseAfterClaim(rt: Runtime, ctx: FailoverContext, what: string): Promise<void> {
  const spec = process.env.FAILOVER_TEST_PAUSE_AFTER_CLAIM;
  if (!spec) return;
  const [step, ms] = spec.split('=');
  if (step !== what || !Number(ms)) return;
  rt.log({ level: 'warn', type: 'test-pause', step: what, ms: Number(ms), executionName: ctx.executionName });
  await defaultSleep(Number(ms));
}

/**
 * Runs one step: checks that this execution still owns the cluster's epoch (a stale or
 * duplicated execution, or one whose claim the cleanup revoked, stops here, before touching
 * anything), times it and appends the audit entry to the failover record. Returns the step's
 * detail with the type its body gave it, so callers read typed results, never cast them.
 */
export async function step<T extends Detail = Detail>(
  rt: Runtime,
  ctx: FailoverContext,
  name: string,
  fn: (c: ClusterConfig, logins: { admin: Login; replication: Login }) => Promise<StepOutcome<T>>,
  opts: { allowRevoked?: boolean } = {},
): Promise<T> {
  const c = rt.cluster(ctx.cluster);
  await assertClaim(rt, ctx, name, opts);
  const logins = await rt.logins(c);
  const startedAt = rt.now();
  const secrets = [logins.admin.password, logins.replication.password];
  try {
    const { result = 'ok', detail } = await fn(c, logins);
    const entry: FailoverStep = { name, startedAt, endedAt: rt.now(), result, detail };
    await rt.store.appendStep(ctx.cluster, ctx.epoch, entry);
    rt.log({ level: 'info', type: 'failover-step', cluster: ctx.cluster, epoch: ctx.epoch, ...entry });
    return detail;
  } catch (err) {
    const entry: FailoverStep = {
      name,
      startedAt,
      endedAt: rt.now(),
      result: 'error',
      error: describeError(err, secrets),
    };
    await rt.store.appendStep(ctx.cluster, ctx.epoch, entry).catch(() => {});
    rt.log({ level: 'error', type: 'failover-step', cluster: ctx.cluster, epoch: ctx.epoch, ...entry });
    throw err;
  }
}

/** Invokes a hook Lambda with the failover's context (never secrets). */
export async function runHook(
  rt: Runtime,
  functionName: string,
  phase: 'pre' | 'post',
  ctx: FailoverContext,
) {
  return getFailoverIntegrations((e) => rt.log(e)).hooks.invoke(functionName, {
    phase,
    cluster: ctx.cluster,
    kind: ctx.kind,
    epoch: ctx.epoch,
    executionName: ctx.executionName,
    failedPrimary: ctx.failedPrimary,
    ...(ctx.candidate ? { newPrimary: ctx.candidate } : {}),
    ...(ctx.repointed ? { repointed: ctx.repointed } : {}),
    ...(ctx.notRepointed ? { notRepointed: ctx.notRepointed } : {}),
  });
}

/** EventBridge event (when EVENT_BUS_NAME is set); never fails the step. */
export async function publishEvent(
  rt: Runtime,
  type: FailoverEventType,
  ctx: Partial<FailoverContext> & { cluster: string },
  extra: Record<string, unknown> = {},
): Promise<void> {
  const events = getFailoverIntegrations((e) => rt.log(e)).events;
  if (!events) return;
  await events.publish({
    type,
    cluster: ctx.cluster,
    detail: {
      kind: ctx.kind,
      epoch: ctx.epoch,
      executionName: ctx.executionName,
      failedPrimary: ctx.failedPrimary,
      ...(ctx.candidate ? { newPrimary: ctx.candidate } : {}),
      ...extra,
    },
  });
}

/**
 * How long a task Lambda may outlive the Task state that invoked it: the Lambda's timeout clock
 * starts when it starts, a little after Step Functions scheduled it (invoke latency, cold start).
 */
export const TASK_OVERRUN_MARGIN_MS = 10_000;

/**
 * The first move of every cleanup (FailoverFailed, SwitchoverAborted, ExecutionEnded): revokes
 * the execution's claim (a conditional write: no step of it passes assertClaim afterwards), then
 * waits until `inFlightUntil`, when every task of the execution that could have passed its
 * re-check before the revoke is over. Only then does the cleanup look at the servers to decide
 * what was promoted. False when the execution holds no claim (nothing to clean).
 */
export async function revokeAndSettle(
  rt: Runtime,
  ctx: FailoverContext,
  inFlightUntil: number,
  sleep: (ms: number) => Promise<void> = defaultSleep,
): Promise<boolean> {
  const revoked = await rt.store.revokeClaim(ctx.cluster, ctx.epoch, ctx.executionName, rt.now());
  if (!revoked) return false;
  const waitMs = inFlightUntil - rt.now();
  if (waitMs > 0) {
    rt.log({
      level: 'warn',
      type: 'cleanup-waits-in-flight',
      cluster: ctx.cluster,
      epoch: ctx.epoch,
      executionName: ctx.executionName,
      waitMs,
    });
    await sleep(waitMs);
  }
  return true;
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
