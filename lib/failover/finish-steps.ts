import { describeError, HookFailedError } from '../errors.ts';
import type { Runtime } from '../runtime.ts';
import { restartFrozenReplicas } from './catch-up-candidate.ts';
import { type FailoverContext, requireCandidate } from './context.ts';
import { publishEvent, runHook, type StepOutcome, step } from './step-runner.ts';

/**
 * CompleteFailover: the new primary becomes the truth; the anti-flap block starts; the post
 * hook runs. A failed post hook under policy 'fail' records the failover as failed (the new
 * primary stays the truth: it is promoted and behind the VIP) and fails the execution.
 */
export async function completeFailover(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  const c = rt.cluster(ctx.cluster);
  const post = c.failover.hooks?.post;
  let hook: { hook: string; ok: boolean; ms: number; error?: string } | undefined;
  if (post) {
    // Epoch-checked like every step: a stale execution never runs the hook.
    await step(rt, ctx, 'PostFailoverHook', async (): Promise<StepOutcome> => {
      const r = await runHook(rt, post, 'post', ctx);
      hook = { hook: post, ok: r.ok, ms: r.ms, ...(r.error ? { error: r.error } : {}) };
      return { detail: hook };
    });
  }
  const hookFailed = hook !== undefined && !hook.ok && c.failover.hooks?.postFailurePolicy === 'fail';
  const now = rt.now();
  const notRepointed = ctx.notRepointed ?? [];
  await rt.store.appendStep(ctx.cluster, ctx.epoch, {
    name: 'CompleteFailover',
    startedAt: now,
    endedAt: now,
    result: hookFailed ? 'error' : 'ok',
    detail: {
      newPrimary: candidate,
      repointed: ctx.repointed ?? [],
      notRepointed,
      needsRejoin: [ctx.failedPrimary],
      ...(hook && !hook.ok ? { postHookError: hook.error } : {}),
    },
  });
  const error = hookFailed
    ? { name: 'HookFailedError', message: `Post-failover hook ${post} failed: ${hook?.error ?? ''}` }
    : undefined;
  await rt.store.endFailover({
    cluster: ctx.cluster,
    epoch: ctx.epoch,
    status: hookFailed ? 'failed' : 'succeeded',
    newPrimary: candidate,
    oldPrimary: ctx.failedPrimary,
    now,
    blockedUntil: now + c.failover.blockPeriodSeconds * 1000,
    ...(error ? { error } : {}),
  });
  const took = now - (ctx.startedAt ?? now);
  const notRep = notRepointed.length
    ? ` NOT repointed: ${notRepointed.map((r) => `${r.nodeId} (${r.error})`).join('; ')}.`
    : '';
  await rt.notifier.notify({
    cluster: ctx.cluster,
    severity: 'critical',
    subject: hookFailed
      ? `${ctx.kind} FAILED (post hook): ${ctx.failedPrimary} -> ${candidate}`
      : `${ctx.kind} succeeded: ${ctx.failedPrimary} -> ${candidate}`,
    message: `New primary ${candidate} (epoch ${ctx.epoch}) in ${took} ms. ${ctx.failedPrimary} needs rejoin.${notRep}${error ? ` ${error.message}` : hook && !hook.ok ? ` Post hook failed (policy warn): ${hook.error}` : ''}`,
    data: {
      epoch: ctx.epoch,
      repointed: ctx.repointed,
      notRepointed,
      vip: ctx.vip,
      caughtUpFrom: ctx.caughtUpFrom,
    },
  });
  await publishEvent(rt, hookFailed ? 'MySQL Failover Failed' : 'MySQL Failover Succeeded', ctx, {
    newPrimary: candidate,
    durationMs: took,
    repointed: ctx.repointed ?? [],
    notRepointed,
    needsRejoin: [ctx.failedPrimary],
    ...(error ? { error } : {}),
  });
  if (hookFailed) throw new HookFailedError(error?.message ?? 'post hook failed', { hook: post });
  return ctx;
}

/**
 * FailoverFailed (Catch target): records the failure, keeps the block, alerts. A stale
 * execution (StaleEpochError) never touches the record of the execution that owns the epoch;
 * a failure CompleteFailover already recorded (post hook) is not announced twice.
 */
export async function failoverFailed(
  rt: Runtime,
  ctx: FailoverContext & { error?: { Error?: string; Cause?: string } },
): Promise<FailoverContext> {
  const c = rt.cluster(ctx.cluster);
  const now = rt.now();
  const error = parseStatesError(ctx.error);
  if (error.name === 'StaleEpochError' || error.name === 'FailoverBlockedError') {
    await rt.notifier.notify({
      cluster: ctx.cluster,
      severity: 'warning',
      subject: `${ctx.kind} execution ${ctx.executionName} refused: ${error.name}`,
      message: `${error.message} Nothing was changed by this execution.`,
      data: { executionName: ctx.executionName, expectedEpoch: ctx.expectedEpoch },
    });
    return ctx;
  }
  if (typeof ctx.epoch === 'number') {
    const record = await rt.store.getFailover(ctx.cluster, ctx.epoch);
    if (record && record.status !== 'running') return ctx;
    await rt.store.endFailover({
      cluster: ctx.cluster,
      epoch: ctx.epoch,
      status: 'failed',
      oldPrimary: ctx.failedPrimary,
      now,
      blockedUntil: now + c.failover.blockPeriodSeconds * 1000,
      error,
    });
  }
  // Nothing promoted: the survivors CatchUpCandidate froze replicate from the old primary again.
  const replicas =
    ctx.kind === 'failover' && ctx.candidate
      ? await restartFrozenReplicas(rt, ctx).catch((err: unknown) => ({
          skipped: describeError(err).message,
        }))
      : undefined;
  await rt.notifier.notify({
    cluster: ctx.cluster,
    severity: 'critical',
    subject: `${ctx.kind} FAILED: ${error.name}`,
    message: `${error.message} The cluster needs an operator. Check "serverless invoke -f status".`,
    data: { epoch: ctx.epoch, candidate: ctx.candidate, ...(replicas ? { frozenReplicas: replicas } : {}) },
  });
  await publishEvent(rt, 'MySQL Failover Failed', ctx, { error });
  return ctx;
}

/** The `{Error, Cause}` a Catch puts in the context, as a name and a readable message. */
export function parseStatesError(e: { Error?: string; Cause?: string } | undefined): {
  name: string;
  message: string;
} {
  if (!e) return { name: 'Unknown', message: 'no error information' };
  let message = e.Cause ?? '';
  try {
    const parsed = JSON.parse(message) as { errorMessage?: string; message?: string };
    message = parsed.errorMessage ?? parsed.message ?? message;
  } catch {
    // Cause is plain text already.
  }
  return { name: e.Error ?? 'Error', message: message.slice(0, 1000) };
}
