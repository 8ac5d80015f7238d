import { onInst } from '../adapters/mysql/admin.ts';
import type { Login } from '../adapters/mysql/connection.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { describeError, NodeUnreachableError, PromotionFailedError } from '../errors.ts';
import type { Runtime } from '../runtime.ts';
import { freezeSurvivors } from './catch-up-candidate.ts';
import { type FailoverContext, instClock, node, requireCandidate, sourceOf, timeouts } from './context.ts';
import { type StepOutcome, step } from './step-runner.ts';

/** How long the SQL fence may take before the VIP is taken away concurrently. */
const FENCE_HEAD_START_MS = 150;
/** The SQL fence's own bound: read_only holding new writes back while the sessions in flight are killed. */
const FENCE_BUDGET_MS = 2000;

/**
 * FenceOldPrimary, the first thing the failover does to any server: an old primary that is
 * still alive must never see its replicas stop acknowledging while it can still commit (T7).
 * Only once it took the SQL fence or lost the VIP are the survivors' IO threads frozen
 * ({@link freezeSurvivors}); for a hung one (no answer within a short head start) the freeze
 * runs concurrently with the VIP move: against a hung source each IO thread takes up to ~2 s
 * to stop, and in sequence the two made the hang RTO.
 * One rule, the same for failover and switchover:
 * before a candidate becomes writable, the old primary is either SQL-fenced (read_only=ON
 * applied, every client session killed: the named operation `fencePrimary`) or has lost the VIP (verified).
 *
 * - It answers: fenced. Commits waiting for a semi-sync ACK are killed, never acknowledged.
 * - It does not (refused, timed out, the fence did not apply): the VIP is taken from it now and
 *   moved to the still read-only candidate, whatever the reason. A refused (crashed) primary is
 *   no exception: mysqld_safe or systemd can restart it within a second, writable, and it must
 *   not hold the VIP then (T2). Past a short head start the move runs concurrently with the SQL
 *   attempt, and the step ends as soon as the move is verified (a hung node's connect timeout
 *   is not waited for unless STONITH needs its verdict).
 * - With failover.stonith.enabled, a node that did not take the SQL fence also has its instance
 *   stopped through the cloud API (detail.stonith); a failed stop throws StonithFailedError.
 *
 * What stays open without STONITH: a node that resumes or restarts later can take writes from
 * clients connected to it directly (never through the VIP) until the health check fences it,
 * which it does also while the failover runs; PromoteCandidate fences it once more right before
 * the candidate becomes writable, and has the candidate collect from it whatever it acknowledged
 * meanwhile. Only writes it takes after that last check are lost (read_only=ON in my.cnf or STONITH
 * close that window; bench crash-restart-late measures it).
 */
export async function fenceOldPrimary(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  let vipFenced = ctx.vipFenced === true;
  let sqlFenced = ctx.sqlFenced === true;
  await step(rt, ctx, 'FenceOldPrimary', async (c, logins): Promise<StepOutcome> => {
    const n = node(c, ctx.failedPrimary);
    const mover = ctx.kind === 'failover' ? await rt.vipMover(c) : undefined;
    const moveVipAway = async () => {
      if (!mover) return undefined;
      const t0 = rt.now();
      const verifyMs = c.vip.provider === 'none' ? 0 : c.vip.verifyTimeoutMs;
      const moved = await mover.moveTo(candidate, {
        fromNodeId: ctx.failedPrimary,
        oldHolderDead: true,
        deadline: t0 + verifyMs,
        clientToken: ctx.executionName.slice(0, 64),
        mutateFirst: true,
      });
      vipFenced = true;
      return moved;
    };
    const sqlFence = onInst(
      n.id,
      n,
      logins.admin,
      timeouts(c),
      'FenceOldPrimary',
      (inst) => inst.fencePrimary({ graceMs: 0, budgetMs: FENCE_BUDGET_MS }),
      instClock(rt),
    ).then(
      (r) => ({ ok: true as const, killed: r.killed, attempts: r.attempts }),
      (err: unknown) => ({ ok: false as const, err }),
    );
    // A primary the health check confirmed on ambiguous evidence (timeouts, stalled positions)
    // has been silent for the whole confirmation window already: no head start then. The freeze
    // and the VIP move begin with the SQL attempt, which still fences a node that answers after
    // all, long before rpl_semi_sync_master_timeout could acknowledge a commit held meanwhile.
    const headStartMs = ctx.reason?.evidence === 'ambiguous' ? 0 : FENCE_HEAD_START_MS;
    const headStart = await Promise.race([
      sqlFence,
      new Promise<'slow'>((res) => setTimeout(() => res('slow'), headStartMs)),
    ]);
    // The survivors stop receiving from the old primary (the freeze) only once it took the SQL
    // fence or lost the VIP, so that whatever it acknowledged until then reaches them: a crashed
    // primary that mysqld_safe restarts writable while the VIP is still moving takes writes
    // through it, and the replicas reconnect and receive them (T2). A hung one (no answer within
    // the head start) is the exception: it cannot commit while frozen, and each IO thread takes
    // up to ~2 s to stop against it, so that freeze runs concurrently with the VIP move.
    let freeze: ReturnType<typeof freezeSurvivors> | undefined;
    const startFreeze = () => {
      if (ctx.kind !== 'failover') return undefined;
      freeze ??= freezeSurvivors(rt, c, logins.admin, ctx.failedPrimary);
      freeze.catch(() => undefined);
      return freeze;
    };
    if (headStart === 'slow') startFreeze();
    const withFreeze = async (o: StepOutcome): Promise<StepOutcome> => {
      const running = startFreeze();
      if (!running) return o;
      const f = await running.then(
        (r) => ({
          frozen: r.frozen,
          ...(r.stopping.length ? { stopping: r.stopping } : {}),
          ...(r.unreachable.length ? { unreachable: r.unreachable } : {}),
        }),
        (err: unknown) => ({ error: describeError(err).message }),
      );
      return { ...o, detail: { ...o.detail, freeze: f } };
    };
    const stonithOn = ctx.kind === 'failover' && c.failover.stonith.enabled;
    const speculative = headStart === 'slow' && mover ? moveVipAway() : undefined;
    // Do not leave a rejected speculative move unhandled while the SQL attempt finishes.
    speculative?.catch(() => undefined);
    if (speculative && !stonithOn) {
      // The VIP is off it once the move is verified: the SQL attempt's verdict changes nothing
      // (a hung node costs its whole connect timeout), unless it already came back.
      const first = await Promise.race([sqlFence, speculative.then(() => 'moved' as const)]);
      if (first === 'moved') {
        const moved = await speculative;
        // The step still waits for the SQL attempt to end (it is bounded by the connect timeout
        // and the fence budget): a node that was only slow, not hung, may be alive and committing
        // for direct clients while the survivors are frozen; its commits wait for an ACK that no
        // longer comes, and the fence must kill them before the semi-sync timeout acknowledges
        // them. Returning earlier would leave that fence to run in a Lambda frozen between
        // invocations.
        const late = await sqlFence;
        if (late.ok) sqlFenced = true;
        return withFreeze({
          detail: {
            ...(late.ok
              ? { readOnly: true, killedSessions: late.killed, fenceAttempts: late.attempts }
              : {
                  sqlFence: `no answer before the VIP move was verified (${describeError(late.err, [logins.admin.password]).message})`,
                }),
            vipTakenFrom: ctx.failedPrimary,
            vipHolder: moved?.holder,
            vipMs: moved?.ms,
          },
        });
      }
    }
    const sql = await sqlFence;
    if (sql.ok) {
      sqlFenced = true;
      const moved = speculative ? await speculative : undefined;
      return withFreeze({
        detail: {
          readOnly: true,
          killedSessions: sql.killed,
          fenceAttempts: sql.attempts,
          ...(moved ? { vipTakenFrom: ctx.failedPrimary, vipHolder: moved.holder, vipMs: moved.ms } : {}),
        },
      });
    }
    // STONITH: whatever the SQL attempt found (hung, cut off, or refused by a crashed mariadbd on
    // a host that may restart it), a node that did not take the fence is stopped through the cloud
    // API before anyone is promoted, concurrently with the VIP move. A node that answered is fenced
    // by read_only and never stopped. A failed stop fails the step (StonithFailedError, terminal).
    const stonith = stonithOn
      ? // Loaded only here (STONITH is off by default): the cloud clients stay off the cold start.
        import('../adapters/stonith.ts')
          .then(({ createStonith }) => createStonith(c, rt.secrets, (e) => rt.log(e)))
          .then((s) => s?.stop(ctx.failedPrimary, { deadline: rt.now() + c.failover.stonith.waitStoppedMs }))
      : undefined;
    stonith?.catch(() => undefined);
    const withStonith = async (o: StepOutcome): Promise<StepOutcome> => {
      const s = await stonith;
      if (!s) return o;
      return {
        detail: {
          ...o.detail,
          stonith: { instanceId: s.instanceId, state: s.state, ms: s.ms, apiCalls: s.apiCalls },
        },
      };
    };
    const err = sql.err;
    const code = err instanceof NodeUnreachableError ? String(err.details.code ?? '') : '';
    const crashed = code === 'ECONNREFUSED';
    const reason = describeError(err, [logins.admin.password]).message;
    if (!mover)
      return withFreeze(
        await withStonith({ result: 'skipped', detail: { reachable: false, crashed, reason, vip: 'none' } }),
      );
    const moved = await (speculative ?? moveVipAway());
    return withFreeze(
      await withStonith({
        detail: {
          reachable: false,
          crashed,
          reason,
          vipTakenFrom: ctx.failedPrimary,
          vipHolder: moved?.holder,
          vipMs: moved?.ms,
        },
      }),
    );
  });
  return { ...ctx, vipFenced, ...(sqlFenced ? { sqlFenced } : {}) };
}

/** Connect timeout of the last check when the VIP is already off the old primary. */
const LAST_CHECK_CONNECT_MS = 100;

/**
 * The last fence check, right before a candidate becomes writable (PromoteCandidate calls it
 * first, for failover and switchover alike). An old primary that restarted (crash, then
 * mysqld_safe: read_only=OFF from its my.cnf) or resumed since FenceOldPrimary is fenced again
 * now; one that answers read-only is fine; one that does not answer must have lost the VIP, and
 * when it has not (it took the SQL fence earlier and went away since), the VIP is taken now.
 * Throws (PromotionFailedError) only when none of that can be established: no promotion then.
 *
 * With the VIP already off the old primary the connect timeout is short: a node that is down
 * or frozen changes nothing here, and the check must not add a hang's connect timeout to the RTO.
 */
export async function confirmOldPrimaryFenced(
  rt: Runtime,
  ctx: FailoverContext,
  c: ClusterConfig,
  logins: { admin: Login; replication: Login },
): Promise<Record<string, unknown>> {
  const n = node(c, ctx.failedPrimary);
  const t = timeouts(c);
  const vipOff = ctx.vipFenced === true || ctx.kind === 'switchover';
  // A node that took the SQL fence is up: give it the full connect timeout, its tail matters.
  const short = vipOff && ctx.sqlFenced !== true;
  const probe = await onInst(
    n.id,
    n,
    logins.admin,
    short ? { ...t, connectTimeoutMs: Math.min(t.connectTimeoutMs, LAST_CHECK_CONNECT_MS) } : t,
    'ConfirmOldPrimaryFenced',
    async (inst) => {
      const fencedNow = !(await inst.isReadOnly());
      const killed = fencedNow
        ? (await inst.fencePrimary({ graceMs: 0, budgetMs: FENCE_BUDGET_MS })).killed
        : 0;
      // Read once it is read-only: nothing commits there any more (our prober is epoch-checked).
      const gtid = await inst.readGtidPosition();
      return { readOnly: true, fencedNow, killed, gtid: gtid.binlog ?? gtid.executed };
    },
    instClock(rt),
  ).then(
    (r) => ({ ok: true as const, ...r }),
    (err: unknown) => ({ ok: false as const, error: describeError(err, [logins.admin.password]).message }),
  );
  if (probe.ok) {
    const tail = ctx.kind === 'failover' ? await collectOldPrimaryTail(rt, ctx, c, logins, probe.gtid) : {};
    return { oldPrimary: ctx.failedPrimary, ...probe, ...tail };
  }
  if (vipOff) return { oldPrimary: ctx.failedPrimary, unreachable: probe.error, vip: 'already off it' };
  const mover = await rt.vipMover(c);
  if (!mover) {
    // No VIP to take: clients reach nodes by address, and nothing more can be done from here.
    return { oldPrimary: ctx.failedPrimary, unreachable: probe.error, vip: 'none' };
  }
  const t0 = rt.now();
  try {
    const moved = await mover.moveTo(requireCandidate(ctx), {
      fromNodeId: ctx.failedPrimary,
      oldHolderDead: true,
      deadline: t0 + (c.vip.provider === 'none' ? 0 : c.vip.verifyTimeoutMs),
      clientToken: ctx.executionName.slice(0, 64),
    });
    return {
      oldPrimary: ctx.failedPrimary,
      unreachable: probe.error,
      vipTakenNow: moved.holder,
      vipMs: moved.ms,
    };
  } catch (err) {
    throw new PromotionFailedError(
      `Not promoting ${ctx.candidate}: old primary ${ctx.failedPrimary} is neither fenced (${probe.error}) nor off the VIP (${describeError(err).message}).`,
      { candidate: ctx.candidate, oldPrimary: ctx.failedPrimary },
    );
  }
}

/**
 * The old primary answers (read-only now): whatever its binary log holds must be on the candidate
 * before the candidate becomes writable. A crashed primary that mysqld_safe restarted with
 * read_only=OFF before the fence acknowledged writes with semi-sync off (it is off after a
 * restart) until the fence, and the survivors' IO threads were frozen right after the fence, so
 * those writes may exist only there (measured: 154 acknowledged writes lost in one bench
 * crash-restart trial, exactly the old primary's errant count). The candidate collects them from
 * the old primary itself (START SLAVE UNTIL its position, then the replication is reset). A
 * collection that does not complete stops the promotion: those writes were acknowledged.
 */
async function collectOldPrimaryTail(
  rt: Runtime,
  ctx: FailoverContext,
  c: ClusterConfig,
  logins: { admin: Login; replication: Login },
  oldGtid: string,
): Promise<Record<string, unknown>> {
  const candidate = requireCandidate(ctx);
  const cand = node(c, candidate);
  const old = node(c, ctx.failedPrimary);
  const timeoutS = c.failover.relayLogTimeoutSeconds;
  const t0 = rt.now();
  const r = await onInst(
    cand.id,
    cand,
    logins.admin,
    timeouts(c),
    'ConfirmOldPrimaryFenced',
    async (inst) => {
      const have = (await inst.readGtidPosition()).executed;
      if (inst.dialect.gtid.contains(have, oldGtid)) return { missing: 'nothing' as const };
      const missing = inst.dialect.gtid.describeMissing(have, oldGtid);
      // A retried PromoteCandidate after the promotion: the candidate takes writes already, and
      // a tail collected now would interleave with them. It is reported, never collected then.
      if (!(await inst.isReadOnly())) return { missing, outcome: 'already-writable' as const };
      const outcome = await inst.collectFrom(sourceOf(old, logins.replication), oldGtid, timeoutS);
      return { missing, outcome };
    },
    instClock(rt),
  );
  if (r.missing === 'nothing') return { oldPrimaryGtid: oldGtid, tail: 'nothing missing' };
  if (r.outcome === 'already-writable')
    return {
      oldPrimaryGtid: oldGtid,
      tailNotCollected: r.missing,
      reason: `${candidate} is writable already`,
    };
  if (r.outcome === 'timeout') {
    throw new PromotionFailedError(
      `Not promoting ${candidate}: it lacks ${r.missing} that old primary ${ctx.failedPrimary} holds (acknowledged there after it came back) and did not collect it within ${timeoutS} s.`,
      { candidate, oldPrimary: ctx.failedPrimary },
    );
  }
  return { oldPrimaryGtid: oldGtid, tailCollected: r.missing, tailMs: rt.now() - t0 };
}
