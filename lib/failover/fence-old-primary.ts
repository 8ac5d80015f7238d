import { fenceNode, onNode } from '../adapters/mysql/admin.ts';
import { createStonith } from '../adapters/stonith.ts';
import { describeError, NodeUnreachableError } from '../errors.ts';
import type { Runtime } from '../runtime.ts';
import { type FailoverContext, node, requireCandidate, timeouts } from './context.ts';
import { type StepOutcome, step } from './step-runner.ts';

/** How long the SQL fence may take before the VIP is taken away concurrently. */
const FENCE_HEAD_START_MS = 150;

/**
 * FenceOldPrimary: if the old primary answers, make it read-only and end its client sessions.
 * If it does not, take the VIP from it now, before the candidate becomes writable: a hung
 * primary can resume (SIGCONT, a healed partition) with read_only=OFF and would take writes
 * through the VIP while the new primary does (orchestrator's two-primaries case). The VIP then
 * points at the still read-only candidate: clients get read-only errors until the promotion.
 * With failover.stonith.enabled, an old primary that did not take the SQL fence also has its
 * instance stopped through the cloud API (detail.stonith); a failed stop throws StonithFailedError.
 */
export async function fenceOldPrimary(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  let vipFenced = ctx.vipFenced === true;
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
      });
      vipFenced = true;
      return moved;
    };
    // The SQL fence answers in milliseconds from a live server and is refused at once by a
    // crashed one; a hung or cut-off one costs the whole connect timeout. Past a short head
    // start, take the VIP away concurrently instead of after that timeout: moving it to the
    // still read-only candidate is safe whatever the SQL attempt then finds.
    const sqlFence = onNode(n.id, n, logins.admin, timeouts(c), 'FenceOldPrimary', (sess) =>
      fenceNode(sess, logins.admin.user),
    ).then(
      (r) => ({ ok: true as const, killed: r.killed }),
      (err: unknown) => ({ ok: false as const, err }),
    );
    const headStart = await Promise.race([
      sqlFence,
      new Promise<'slow'>((res) => setTimeout(() => res('slow'), FENCE_HEAD_START_MS)),
    ]);
    const speculative =
      headStart === 'slow' && mover && c.vip.provider !== 'none' ? moveVipAway() : undefined;
    // Do not leave a rejected speculative move unhandled while the SQL attempt finishes.
    speculative?.catch(() => undefined);
    const sql = await sqlFence;
    if (sql.ok) {
      const moved = speculative ? await speculative : undefined;
      return {
        detail: {
          readOnly: true,
          killedSessions: sql.killed,
          ...(moved ? { vipTakenFrom: ctx.failedPrimary, vipHolder: moved.holder, vipMs: moved.ms } : {}),
        },
      };
    }
    // STONITH: whatever the SQL attempt found (hung, cut off, or refused by a crashed mariadbd on
    // a host that may restart it), a node that did not take the fence is stopped through the cloud
    // API before anyone is promoted, concurrently with the VIP move. A node that answered is fenced
    // by read_only and never stopped. A failed stop fails the step (StonithFailedError, terminal).
    const stonith =
      ctx.kind === 'failover' && c.failover.stonith.enabled
        ? createStonith(c, rt.secrets, (e) => rt.log(e)).then((s) =>
            s?.stop(ctx.failedPrimary, { deadline: Date.now() + c.failover.stonith.waitStoppedMs }),
          )
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
    const takeVip = ctx.kind === 'failover' && (c.failover.vipFenceWhenUnreachable === 'always' || !crashed);
    const reason = describeError(err).message;
    if (!takeVip) {
      // Refused: the process is gone. It comes back only through a restart, and the VIP
      // leaves it in MoveVip; the health check re-fences it if it returns writable.
      const moved = speculative ? await speculative : undefined;
      return withStonith({
        result: 'skipped',
        detail: { reachable: false, crashed, reason, ...(moved ? { vipHolder: moved.holder } : {}) },
      });
    }
    if (!mover)
      return withStonith({ result: 'skipped', detail: { reachable: false, crashed, reason, vip: 'none' } });
    const moved = await (speculative ?? moveVipAway());
    return withStonith({
      detail: {
        reachable: false,
        crashed,
        reason,
        vipTakenFrom: ctx.failedPrimary,
        vipHolder: moved?.holder,
        vipMs: moved?.ms,
      },
    });
  });
  return { ...ctx, vipFenced };
}
