import { onInst } from '../adapters/mysql/admin.ts';
import { ANY_DIALECT_WORDS, dialectWords } from '../adapters/mysql/dialect/vocabulary.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { describeError, HookFailedError } from '../errors.ts';
import type { FailoverRecord } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import { restartFrozenReplicas } from './catch-up-candidate.ts';
import { type FailoverContext, node, requireCandidate, timeouts } from './context.ts';
import {
  publishEvent,
  revokeAndSettle,
  runHook,
  type StepOutcome,
  step,
  TASK_OVERRUN_MARGIN_MS,
} from './step-runner.ts';

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
 * FailoverFailed (Catch target, and the cleanup of an execution that ended outside its Catch):
 * records the failure, keeps the block, alerts. One rule for failover and switchover: once the
 * candidate is (or may have been) writable, roll FORWARD: the candidate is recorded as the
 * primary, the old one needs rejoin (the health check keeps it fenced), and the alert names every
 * step that did not complete. Nothing promoted: the IO threads CatchUpCandidate froze are started
 * again. A stale execution (StaleEpochError) never touches the record of the execution that owns
 * the epoch; a failure already recorded (post hook, or a cleanup that ran first) is not announced twice.
 */
export async function failoverFailed(
  rt: Runtime,
  ctx: FailoverContext & { error?: { Error?: string; Cause?: string } },
  opts: CleanupOptions = {},
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
  let ending = '';
  let candidate = ctx.candidate;
  if (typeof ctx.epoch === 'number') {
    const before = await rt.store.getFailover(ctx.cluster, ctx.epoch);
    if (before && before.status !== 'running') return ctx;
    // Revoke the claim, wait out the tasks in flight, and only then decide (execution-ended.ts).
    if (!(await revokeAndSettle(rt, ctx, settleDeadline(rt, error, opts), opts.sleep))) return ctx;
    const record = await rt.store.getFailover(ctx.cluster, ctx.epoch);
    if (record && record.status !== 'running') return ctx;
    const state = await rt.store.getClusterState(ctx.cluster);
    // Another execution owns the cluster by now: this one changes nothing.
    if (state?.failoverInProgress?.epoch !== ctx.epoch) return ctx;
    candidate ??= candidateOf(record);
    const promoted = await findPromotion(rt, c, record, candidate);
    if (promoted) {
      const forward = await rollForward(rt, c, ctx, record, promoted, {
        blockedUntil: now + c.failover.blockPeriodSeconds * 1000,
        error,
      });
      ending = ` ROLLED FORWARD: ${forward.summary}`;
    } else {
      // Only the IO threads this execution stopped (recorded by the freeze): a replica an
      // operator had stopped before the failover stays as it was.
      const io = await restartFrozenIo(rt, { ...ctx, ...(candidate ? { candidate } : {}) }, frozenBy(record));
      await rt.store.appendStep(ctx.cluster, ctx.epoch, {
        name: 'FailoverFailed',
        startedAt: now,
        endedAt: rt.now(),
        result: 'ok',
        detail: { promoted: false, error, ioRestarted: io.restarted, ioNotRestarted: io.failed },
      });
      await rt.store.endFailover({
        cluster: ctx.cluster,
        epoch: ctx.epoch,
        status: 'failed',
        oldPrimary: ctx.failedPrimary,
        now,
        blockedUntil: now + c.failover.blockPeriodSeconds * 1000,
        error,
      });
      ending = ` Nothing was promoted: ${ctx.failedPrimary} is still the recorded primary.${io.restarted.length ? ` IO threads restarted on ${io.restarted.join(', ')}.` : ''}${io.failed.length ? ` Could NOT restart the IO thread on ${(await startIoAdvice(rt, ctx.cluster, io.failed)).join('; ')}.` : ''}`;
    }
  }
  await rt.notifier.notify({
    cluster: ctx.cluster,
    severity: 'critical',
    subject: `${ctx.kind} FAILED: ${error.name}`,
    message: `${error.message}${ending} The cluster needs an operator. Check "serverless invoke -f status".`,
    data: { epoch: ctx.epoch, candidate: candidate ?? null },
  });
  await publishEvent(rt, 'MySQL Failover Failed', { ...ctx, ...(candidate ? { candidate } : {}) }, { error });
  return ctx;
}

/** How a cleanup learns when the tasks still in flight are over (see execution-ended.ts). */
export interface CleanupOptions {
  /**
   * Epoch ms when every task of the execution that may still run is over. The execution status
   * rule computes it from the execution history; a Catch target (the failing task returned)
   * leaves it out.
   */
  inFlightUntil?: number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * When the cleanup may decide: `opts.inFlightUntil`, or, as a Catch target, now, except after a
 * task timeout (States.Timeout), whose Lambda may run a little longer than its Task state.
 */
export function settleDeadline(rt: Runtime, error: { name: string }, opts: CleanupOptions): number {
  if (opts.inFlightUntil !== undefined) return opts.inFlightUntil;
  return rt.now() + (error.name === 'States.Timeout' ? TASK_OVERRUN_MARGIN_MS : 0);
}

/** The elected candidate as the audit record has it (ElectCandidate or SwitchoverPreCheck). */
export function candidateOf(record: FailoverRecord | undefined): string | undefined {
  for (const s of record?.steps ?? []) {
    if ((s.name === 'ElectCandidate' || s.name === 'SwitchoverPreCheck') && s.result === 'ok') {
      const cand = s.detail?.candidate;
      if (typeof cand === 'string' && cand) return cand;
    }
  }
  return undefined;
}

/** Whether the audit record shows a step that completed (ok or a verified no-op). */
export function stepCompleted(record: FailoverRecord | undefined, name: string): boolean {
  return (record?.steps ?? []).some((s) => s.name === name && s.result !== 'error');
}

/**
 * The candidate when it was promoted: the audit record shows PromoteCandidate completed, or the
 * candidate answers writable now (a promotion can fail AFTER read_only=OFF, a task can time out
 * after it).
 */
export async function findPromotion(
  rt: Runtime,
  c: ClusterConfig,
  record: FailoverRecord | undefined,
  candidate: string | undefined,
): Promise<string | undefined> {
  if (!candidate) return undefined;
  if (stepCompleted(record, 'PromoteCandidate')) return candidate;
  const writable = await (async () => {
    const logins = await rt.logins(c);
    const n = node(c, candidate);
    return onInst(
      n.id,
      n,
      logins.admin,
      timeouts(c),
      'FailoverFailed',
      async (inst) => !(await inst.isReadOnly()),
    );
  })().catch(() => undefined);
  return writable === true ? candidate : undefined;
}

/**
 * Records `candidate` as the primary (the old one needs rejoin), audited, and says which steps did
 * not complete and what to do about each.
 */
export async function rollForward(
  rt: Runtime,
  c: ClusterConfig,
  ctx: FailoverContext,
  record: FailoverRecord | undefined,
  candidate: string,
  opts: { blockedUntil: number; error: { name: string; message: string }; oldPrimaryRejoined?: boolean },
): Promise<{ summary: string; pending: string[] }> {
  const now = rt.now();
  const pending: string[] = [];
  const repointDone = stepCompleted(record, 'RepointReplicas') || stepCompleted(record, 'SwitchoverRepoint');
  if (!repointDone) {
    const others = c.nodes.filter((n) => n.id !== candidate && n.id !== ctx.failedPrimary).map((n) => n.id);
    if (others.length > 0) {
      pending.push(
        `RepointReplicas: ${others.join(', ')} may not replicate from ${candidate}: rejoin each (serverless invoke -f rejoin --data '{"cluster":"${c.name}","node":"<id>"}')`,
      );
    }
  }
  const mover = c.vip.provider === 'none' ? undefined : await rt.vipMover(c).catch(() => undefined);
  if (mover) {
    const holder = await mover
      .currentHolder()
      .catch((err: unknown) => `unknown (${describeError(err).message})`);
    if (holder !== candidate) {
      pending.push(
        `MoveVip: VIP ${mover.address} still on ${holder ?? 'no node'}: move it to ${candidate} (${mover.provider}; the provider's console or API)`,
      );
    }
  }
  await rt.store.appendStep(ctx.cluster, ctx.epoch, {
    name: 'RollForward',
    startedAt: now,
    endedAt: rt.now(),
    result: 'ok',
    detail: { newPrimary: candidate, needsRejoin: [ctx.failedPrimary], pending, error: opts.error },
  });
  await rt.store.endFailover({
    cluster: ctx.cluster,
    epoch: ctx.epoch,
    status: 'failed',
    newPrimary: candidate,
    oldPrimary: ctx.failedPrimary,
    now,
    blockedUntil: opts.blockedUntil,
    error: opts.error,
  });
  if (opts.oldPrimaryRejoined) await rt.store.removeNeedsRejoin(ctx.cluster, ctx.failedPrimary);
  const summary = `${candidate} was promoted and is now the recorded primary; ${ctx.failedPrimary} needs rejoin and stays fenced.${pending.length ? ` Not completed: ${pending.join('; ')}.` : ''}`;
  return { summary, pending };
}

/**
 * Restarts the IO threads this execution froze, through {@link restartFrozenReplicas}, as two
 * lists for the record and the alert.
 */
export async function restartFrozenIo(
  rt: Runtime,
  ctx: Pick<FailoverContext, 'cluster' | 'failedPrimary' | 'candidate'>,
  frozen: readonly string[],
): Promise<{ restarted: string[]; failed: Array<{ nodeId: string; error: string }> }> {
  if (frozen.length === 0) return { restarted: [], failed: [] };
  type Result = Awaited<ReturnType<typeof restartFrozenReplicas>>;
  const r: Result = await restartFrozenReplicas(rt, ctx, frozen).catch(
    (err: unknown): Result => ({
      nodes: frozen.map((nodeId) => ({ nodeId, error: describeError(err).message })),
    }),
  );
  if ('skipped' in r)
    return { restarted: [], failed: frozen.map((nodeId) => ({ nodeId, error: r.skipped })) };
  return {
    restarted: r.nodes
      .filter((n) => n.action === 'restarted' || n.action === 'repointed')
      .map((n) => n.nodeId),
    failed: r.nodes.flatMap((n) => (n.error ? [{ nodeId: n.nodeId, error: n.error }] : [])),
  };
}

/**
 * "node (error): run START REPLICA IO_THREAD there" per node, in that node's dialect (MySQL 8.4
 * rejects START SLAVE): read from the node's server when it answers, both forms when it does not.
 */
export async function startIoAdvice(
  rt: Runtime,
  cluster: string,
  failed: ReadonlyArray<{ nodeId: string; error: string }>,
): Promise<string[]> {
  const c = rt.cluster(cluster);
  const known = c.nodes.map((n) => n.id);
  const logins = failed.some((f) => known.includes(f.nodeId))
    ? await rt.logins(c).catch(() => undefined)
    : undefined;
  return Promise.all(
    failed.map(async (f) => {
      const n = c.nodes.find((x) => x.id === f.nodeId);
      const words =
        n && logins
          ? await onInst(n.id, n, logins.admin, timeouts(c), 'RestartFrozenReplicas', async (inst) =>
              dialectWords(inst.dialect),
            ).catch(() => undefined)
          : undefined;
      return `${f.nodeId} (${f.error}): run ${words?.startIo ?? ANY_DIALECT_WORDS.startIo} there`;
    }),
  );
}

/** The survivors whose IO thread this execution stopped, as the freeze recorded them. */
export function frozenBy(record: FailoverRecord | undefined): string[] {
  const ids = new Set<string>();
  for (const st of record?.steps ?? []) {
    const d = st.detail as { freeze?: { frozen?: unknown }; frozen?: unknown } | undefined;
    for (const list of [d?.freeze?.frozen, d?.frozen])
      if (Array.isArray(list)) for (const id of list) if (typeof id === 'string') ids.add(id);
  }
  return [...ids];
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
