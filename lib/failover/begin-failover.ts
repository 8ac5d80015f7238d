import { HookFailedError } from '../errors.ts';
import type { Runtime } from '../runtime.ts';
import { type FailoverContext, type FailoverRequest, node } from './context.ts';
import { publishEvent, runHook, type StepOutcome, step } from './step-runner.ts';

/** BeginFailover: claims the next epoch (exactly once per cluster and incident). */
export async function beginFailover(rt: Runtime, req: FailoverRequest): Promise<FailoverContext> {
  const c = rt.cluster(req.cluster);
  node(c, req.failedPrimary);
  const now = rt.now();
  const claim = await rt.store.beginFailover({
    cluster: req.cluster,
    expectedEpoch: req.expectedEpoch,
    executionName: req.executionName,
    failedPrimary: req.failedPrimary,
    incidentId: req.incidentId,
    kind: req.kind,
    now,
    ignoreBlock: req.ignoreBlock === true,
  });
  const ctx: FailoverContext = { ...req, epoch: claim.epoch, startedAt: now };
  // The audit entry, the notification and the event are independent of each other (the last two
  // never throw), and every step after this waits for them: one round trip instead of three.
  await Promise.all([
    rt.store.appendStep(req.cluster, claim.epoch, {
      name: 'BeginFailover',
      startedAt: now,
      endedAt: rt.now(),
      result: claim.alreadyClaimed ? 'skipped' : 'ok',
      detail: { epoch: claim.epoch, alreadyClaimed: claim.alreadyClaimed },
    }),
    ...(claim.alreadyClaimed
      ? []
      : [
          rt.notifier.notify({
            cluster: req.cluster,
            severity: 'critical',
            subject: `${req.kind} started (epoch ${claim.epoch})`,
            message: `Primary ${req.failedPrimary} is being replaced. Execution ${req.executionName}.`,
            data: { epoch: claim.epoch, reason: req.reason },
          }),
          publishEvent(rt, 'MySQL Failover Started', ctx, { reason: req.reason }),
        ]),
  ]);
  // Before anything changes on a server. A retried BeginFailover calls it again: hooks must
  // be idempotent (they get the epoch to tell).
  const pre = c.failover.hooks?.pre;
  if (pre) {
    await step(rt, ctx, 'PreFailoverHook', async (): Promise<StepOutcome> => {
      const r = await runHook(rt, pre, 'pre', ctx);
      if (!r.ok && c.failover.hooks?.preFailurePolicy === 'fail') {
        throw new HookFailedError(`Pre-failover hook ${pre} failed: ${r.error}`, { hook: pre });
      }
      return { detail: { hook: pre, ok: r.ok, ms: r.ms, ...(r.error ? { error: r.error } : {}) } };
    });
  }
  return ctx;
}
