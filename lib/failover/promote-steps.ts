import { type Inst, onInst } from '../adapters/mysql/admin.ts';
import type { Login } from '../adapters/mysql/connection.ts';
import type { OpsClock } from '../adapters/mysql/operations.ts';
import type { ClusterConfig, NodeConfig } from '../config/schema.ts';
import { describeError, PromotionFailedError } from '../errors.ts';
import type { Runtime } from '../runtime.ts';
import { type FailoverContext, instClock, node, requireCandidate, sourceOf, timeouts } from './context.ts';
import { confirmOldPrimaryFenced } from './fence-old-primary.ts';
import { assertClaim, type StepOutcome, step } from './step-runner.ts';

/** PromoteCandidate: resets replication, enables semi-sync per policy, makes it writable. */
export async function promoteCandidate(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  await step(rt, ctx, 'PromoteCandidate', async (c, logins) => {
    const n = node(c, candidate);
    const clock = instClock(rt);
    // Never two writable nodes: the old primary is fenced (again) before this one can take writes.
    const lastFenceCheck = await confirmOldPrimaryFenced(rt, ctx, c, logins);
    const promote = async (inst: Inst): Promise<StepOutcome> => {
      const repl = await inst.readReplicaStatus();
      if (!repl && !(await inst.isReadOnly())) return { result: 'skipped', detail: { alreadyPrimary: true } };
      // Semi-sync only where a replica can acknowledge: with none to attach (a 2-node cluster,
      // or every other replica down or awaiting rejoin) each commit would wait the whole
      // rpl_semi_sync_master_timeout before falling back to async. Rejoin turns it on again.
      const attachable = c.failover.semiSync ? await replicasToAttach(rt, c, ctx, candidate) : [];
      const semiSync = c.failover.semiSync && attachable.length > 0;
      // Irreversible: re-check the claim right before it (a cleanup may have revoked it meanwhile).
      await assertClaim(rt, ctx, 'PromoteCandidate:promote');
      // The other replicas attach to the candidate while it waits for its own IO thread to stop
      // (against a hung source the freeze's stops end 2 s after they began, all at about the same
      // time): with semi-sync the first commit is acknowledged only once one of them is attached,
      // and one after the other the two waits made the hang RTO. Its GTIDs are final (caught up,
      // receiving nothing), and semi-sync is on before they connect, so each registers as a
      // semi-sync replica. RepointReplicas then finds them pointed here and verifies them.
      const attach =
        attachable.length > 0 ? await preAttach(inst, c, n, attachable, semiSync, logins, clock) : undefined;
      await inst.promoteToPrimary({
        semiSync,
        semiSyncTimeoutMs: c.failover.semiSyncTimeoutMs,
        disableSemiSync: c.failover.semiSync && !semiSync,
      });
      const attached = attach ? await attach.done : [];
      if (await inst.isReadOnly())
        throw new PromotionFailedError(`${candidate} is still read_only after promotion.`);
      const semi = await inst.readSemiSync();
      if (semiSync && (!semi.masterEnabled || semi.waitPoint !== 'AFTER_SYNC')) {
        throw new PromotionFailedError(
          `${candidate} promoted but semi-sync is not as the policy says: enabled=${semi.masterEnabled}, wait point ${semi.waitPoint} (want AFTER_SYNC).`,
        );
      }
      if (c.failover.semiSync && !semiSync && semi.masterEnabled) {
        throw new PromotionFailedError(
          `${candidate} promoted with semi-sync master still ON although no replica can acknowledge: every commit would wait ${c.failover.semiSyncTimeoutMs} ms.`,
        );
      }
      const gtid = await inst.readGtidPosition();
      return {
        detail: {
          gtidBinlogPos: gtid.binlog ?? gtid.executed,
          ...(attached.length > 0 ? { attached } : {}),
          semiSync: {
            policy: c.failover.semiSync,
            enabled: semi.masterEnabled,
            waitPoint: semi.waitPoint,
            ...(c.failover.semiSync ? { replicasToAttach: attachable } : {}),
            ...(c.failover.semiSync && !semiSync
              ? {
                  deferred:
                    'no replica can acknowledge: semi-sync master left OFF until a replica rejoins (commits are not protected meanwhile)',
                }
              : {}),
          },
        },
      };
    };
    return onInst(n.id, n, logins.admin, timeouts(c), 'PromoteCandidate', promote, clock).then((o) => ({
      ...o,
      detail: { ...o.detail, lastFenceCheck },
    }));
  });
  return ctx;
}

/**
 * Starts attaching `ids` to the candidate behind `inst` (semi-sync on it first when `semiSync`)
 * and hands back the pending outcome, one per replica; a failure is reported, never thrown
 * (RepointReplicas tries again and reports).
 */
async function preAttach(
  inst: Inst,
  c: ClusterConfig,
  candidate: NodeConfig,
  ids: readonly string[],
  semiSync: boolean,
  logins: { admin: Login; replication: Login },
  clock: OpsClock,
): Promise<{ done: Promise<Array<{ nodeId: string; error?: string }>> }> {
  if (semiSync) await inst.enableSemiSyncPrimary({ timeoutMs: c.failover.semiSyncTimeoutMs });
  const gtid = await inst.readGtidPosition();
  // Wrapped: an async function returning the promise itself would wait for it.
  const done = Promise.all(
    ids.map((id) =>
      pointReplicaAt(c, node(c, id), candidate, gtid.executed, logins, 'PromoteCandidate', clock).then(
        () => ({ nodeId: id }),
        (err: unknown) => ({ nodeId: id, error: describeError(err, [logins.replication.password]).message }),
      ),
    ),
  );
  return { done };
}

/**
 * The replicas RepointReplicas will attach to the new primary: every node but the candidate and
 * the failed primary, minus old primaries awaiting rejoin and nodes the election found
 * unreachable.
 */
async function replicasToAttach(
  rt: Runtime,
  c: ClusterConfig,
  ctx: FailoverContext,
  candidate: string,
): Promise<string[]> {
  const state = await rt.store.getClusterState(c.name);
  const rejoin = new Set(state?.needsRejoin ?? []);
  const unreachable = new Set(
    (ctx.verdicts ?? [])
      .filter((v) => v.reasons.some((r) => r.startsWith('not eligible: unreachable')))
      .map((v) => v.nodeId),
  );
  return c.nodes
    .map((n) => n.id)
    .filter((id) => id !== candidate && id !== ctx.failedPrimary && !rejoin.has(id) && !unreachable.has(id));
}

/**
 * Makes replica `n` replicate from `primary` (idempotent: one already pointed there is only
 * started if needed), read-only, and waits until both threads run. A replica not pointed there
 * yet holding transactions the new primary lacks (`primaryGtid`) is refused: it would fail with 1236 or,
 * later, 1950 (errant GTID, out of order), so it is reported for rejoin instead. A stop of its
 * IO thread that a freeze left pending is waited for by the first STOP SLAVE.
 */
async function pointReplicaAt(
  c: ClusterConfig,
  n: NodeConfig,
  primary: NodeConfig,
  primaryGtid: string,
  logins: { admin: Login; replication: Login },
  operation: string,
  clock: OpsClock,
): Promise<void> {
  await onInst(
    n.id,
    n,
    logins.admin,
    timeouts(c),
    operation,
    async (inst) => {
      const r = await inst.readReplicaStatus();
      const already = r && r.sourceHost === primary.host && r.sourcePort === primary.port;
      // One attached already (PromoteCandidate) may be ahead of `primaryGtid` with the new
      // primary's own writes; an errant one among those stops with 1236/1950 below.
      const mine = already ? undefined : await inst.readGtidPosition();
      const gtidOps = inst.dialect.gtid;
      if (mine && gtidOps.countMissing(primaryGtid, mine.executed) > 0) {
        throw new Error(
          `has transactions the new primary ${primary.id} lacks (${gtidOps.describeMissing(primaryGtid, mine.executed)}): needs rejoin`,
        );
      }
      if (!already)
        await inst.followPrimary(sourceOf(primary, logins.replication), {
          semiSync: c.failover.semiSync,
        });
      else if (r.ioState !== 'Yes' || !r.sqlRunning) await inst.startReplication();
      await inst.setReadOnly(true);
      await inst.waitReplicationRunning(5000, 100);
    },
    clock,
  );
}

/** RepointReplicas: every other reachable replica replicates from the new primary. */
export async function repointReplicas(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  const detail = await step(rt, ctx, 'RepointReplicas', async (c, logins) => {
    const primary = node(c, candidate);
    const state = await rt.store.getClusterState(c.name);
    const rejoin = new Set((state?.needsRejoin ?? []).filter((id) => id !== ctx.failedPrimary));
    const others = c.nodes.filter((n) => n.id !== candidate && n.id !== ctx.failedPrimary);
    const t = timeouts(c);
    const clock = instClock(rt);
    const primaryGtid = await onInst(
      primary.id,
      primary,
      logins.admin,
      t,
      'RepointReplicas',
      (inst) => inst.readGtidPosition(),
      clock,
    );
    const results = await Promise.all(
      others.map(async (n) => {
        if (rejoin.has(n.id)) {
          return { nodeId: n.id, ok: false as const, error: 'old primary that needs rejoin: left alone' };
        }
        try {
          await pointReplicaAt(c, n, primary, primaryGtid.executed, logins, 'RepointReplicas', clock);
          return { nodeId: n.id, ok: true as const };
        } catch (err) {
          return { nodeId: n.id, ok: false as const, error: describeError(err).message };
        }
      }),
    );
    const notRepointed = results
      .filter((r) => !r.ok)
      .map((r) => ({ nodeId: r.nodeId, error: r.error ?? '' }));
    const semi = c.failover.semiSync
      ? await onInst(
          primary.id,
          primary,
          logins.admin,
          t,
          'RepointReplicas',
          (inst) => inst.readSemiSync(),
          clock,
        ).catch(() => undefined)
      : undefined;
    return {
      detail: {
        repointed: results.filter((r) => r.ok).map((r) => r.nodeId),
        notRepointed,
        ...(semi ? { semiSyncClients: semi.masterClients, semiSyncActive: semi.masterActive } : {}),
      },
    };
  });
  return { ...ctx, repointed: detail.repointed, notRepointed: detail.notRepointed };
}

/** MoveVip: moves the endpoint to the new primary through the provider API and verifies it. */
export async function moveVip(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  const detail = await step<NonNullable<FailoverContext['vip']>>(rt, ctx, 'MoveVip', async (c) => {
    // Also when FenceOldPrimary moved it already: the move is a verified no-op then.
    const mover = await rt.vipMover(c);
    if (!mover) return { result: 'skipped', detail: { skipped: 'vip.provider is none' } };
    await assertClaim(rt, ctx, 'MoveVip:move');
    const t0 = rt.now();
    const verifyMs = c.vip.provider === 'none' ? 0 : c.vip.verifyTimeoutMs;
    const r = await mover.moveTo(candidate, {
      fromNodeId: ctx.failedPrimary,
      oldHolderDead: ctx.kind === 'failover',
      deadline: t0 + verifyMs,
      clientToken: ctx.executionName.slice(0, 64),
    });
    return {
      detail: {
        holder: r.holder,
        address: r.address,
        ms: r.ms,
        alreadyThere: r.alreadyThere,
        apiCalls: r.apiCalls,
      },
    };
  });
  return { ...ctx, vip: detail };
}
