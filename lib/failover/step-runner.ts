import type { FailoverEventType } from '../adapters/eventbridge-publisher.ts';
import type { Login } from '../adapters/mysql/connection.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { describeError, StaleEpochError } from '../errors.ts';
import type { FailoverStep } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import type { FailoverContext } from './context.ts';
import { getFailoverIntegrations } from './integrations.ts';

/**
 * Runs one step: checks that this execution still owns the cluster's epoch (a stale or
 * duplicated execution stops here, before touching anything), times it and appends the
 * audit entry to the failover record.
 */
export type Detail = Record<string, unknown>;
export interface StepOutcome {
  result?: 'ok' | 'skipped';
  detail: Detail;
}

export async function step(
  rt: Runtime,
  ctx: FailoverContext,
  name: string,
  fn: (c: ClusterConfig, logins: { admin: Login; replication: Login }) => Promise<StepOutcome>,
): Promise<Detail> {
  const c = rt.cluster(ctx.cluster);
  const state = await rt.store.getClusterState(ctx.cluster);
  if (!state || state.epoch !== ctx.epoch || state.failoverInProgress?.epoch !== ctx.epoch) {
    throw new StaleEpochError(
      `${name} for ${ctx.cluster} refused: this execution owns epoch ${ctx.epoch}, the cluster is at ${state?.epoch ?? 'none'}${state?.failoverInProgress ? ` (in progress: ${state.failoverInProgress.executionName})` : ' with no failover in progress'}.`,
      { cluster: ctx.cluster, epoch: ctx.epoch },
    );
  }
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
