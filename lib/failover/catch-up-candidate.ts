import { onInst } from '../adapters/mysql/admin.ts';
import type { Login } from '../adapters/mysql/connection.ts';
import { probeNode } from '../adapters/mysql/probe.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { replicasAheadOf } from '../core/elect-candidate.ts';
import type { ClusterSnapshot, NodeProbe } from '../core/types.ts';
import { CatchUpFailedError, describeError, RelayLogTimeoutError } from '../errors.ts';
import type { ClusterState } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import { type FailoverContext, instClock, node, requireCandidate, sourceOf, timeouts } from './context.ts';
import { step } from './step-runner.ts';
/**
 * CatchUpCandidate (runs after FenceOldPrimary): stops the candidate's IO thread (its source is
 * gone; a stop the freeze left pending is in effect already and not waited for) and waits until
 * the SQL thread has applied everything received, so nothing acknowledged is left in a relay log.
 * Then, when another surviving replica received transactions the candidate lacks (the rules
 * chose a less advanced node), the candidate replicates from that replica up to its received
 * position first: after promotion no replica is ahead of the new primary (no 1236 on repoint)
 * and, with semi-sync AFTER_SYNC, every acknowledged transaction is on the new primary.
 */
export async function catchUpCandidate(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  const detail = await step<CatchUpDetail>(rt, ctx, 'CatchUpCandidate', async (c, logins) => {
    const n = node(c, candidate);
    const t = timeouts(c);
    const timeoutS = c.failover.relayLogTimeoutSeconds;
    // FenceOldPrimary froze the survivors already (concurrently with its VIP move); again here
    // for a retried or hand-driven step: a stopped IO thread stops again at once.
    const { state: state0 } = await freezeSurvivors(rt, c, logins.admin, ctx.failedPrimary);
    const clock = instClock(rt);
    const own = await onInst(
      n.id,
      n,
      logins.admin,
      t,
      'CatchUpCandidate',
      async (inst) => {
        const after = await inst.freezeAndDrain();
        if (!after) return undefined;
        const target = after.receivedGtid;
        const t0 = rt.now();
        if ((await inst.applyRelayLog(target, timeoutS)) === 'timeout') {
          throw new RelayLogTimeoutError(
            `Candidate ${candidate} did not apply its relay log up to ${target} within ${timeoutS} s.`,
            { candidate, target },
          );
        }
        const gtid = await inst.readGtidPosition();
        return {
          appliedUpTo: target,
          waitMs: rt.now() - t0,
          gtid,
          algebra: inst.dialect.gtid,
          applier: after.applier,
        };
      },
      clock,
    );
    if (!own)
      return { result: 'skipped', detail: { reason: 'no replication configured (already promoted)' } };

    const skip = new Set([candidate, ctx.failedPrimary, ...(state0?.needsRejoin ?? [])]);
    const others = c.nodes.filter((x) => !skip.has(x.id));
    const probes = await Promise.all(
      others.map((x) =>
        probeNode({ nodeId: x.id, host: x.host, port: x.port, isPrimary: false }, logins.admin, t),
      ),
    );
    const candidateProbe: NodeProbe = {
      nodeId: candidate,
      reachable: true,
      probeMs: 0,
      gtidCurrentPos: own.gtid.executed,
      // Everything received is applied now: what it has is gtid_current_pos.
      replication: { gtidIoPos: own.gtid.executed } as NodeProbe['replication'] & object,
    };
    const snapshot: ClusterSnapshot = {
      cluster: c.name,
      takenAt: rt.now(),
      primaryId: ctx.failedPrimary,
      nodes: [candidateProbe, ...probes],
    };
    const ahead = replicasAheadOf(snapshot, candidate);
    const unreachable = probes.filter((p) => !p.reachable).map((p) => p.nodeId);
    const collected: Array<{ from: string; upTo: string; missing: string; ms: number }> = [];
    const gtidOps = own.algebra;
    let have = own.gtid.executed;
    for (const a of ahead) {
      // An earlier source may have brought this one's transactions already.
      if (gtidOps.contains(have, a.receivedGtid)) continue;
      const src = node(c, a.nodeId);
      const t0 = rt.now();
      // The source applies what it received first: only its binlog can serve it.
      await onInst(
        src.id,
        src,
        logins.admin,
        t,
        'CatchUpCandidate',
        async (inst) => {
          const drained = await inst.freezeAndDrain();
          if ((await inst.applyRelayLog(a.receivedGtid, timeoutS)) === 'timeout') {
            throw new CatchUpFailedError(
              `Replica ${src.id} did not apply its own relay log up to ${a.receivedGtid} within ${timeoutS} s, so ${candidate} cannot collect it.`,
              { candidate, source: src.id },
            );
          }
          // It stays a replica: its delay is the operator's, put it back (nothing left to delay).
          const lifted = drained?.applier.liftedDelaySeconds ?? 0;
          if (lifted > 0) await inst.restartApplier(lifted);
        },
        clock,
      );
      const missing = gtidOps.describeMissing(have, a.receivedGtid);
      const outcome = await onInst(
        n.id,
        n,
        logins.admin,
        t,
        'CatchUpCandidate',
        (inst) => inst.collectFrom(sourceOf(src, logins.replication), a.receivedGtid, timeoutS),
        clock,
      );
      if (outcome === 'timeout') {
        throw new CatchUpFailedError(
          `Candidate ${candidate} did not collect ${missing} from ${src.id} within ${timeoutS} s.`,
          { candidate, source: src.id },
        );
      }
      have = gtidOps.union(have, a.receivedGtid);
      collected.push({ from: src.id, upTo: a.receivedGtid, missing, ms: rt.now() - t0 });
    }
    const gtid =
      collected.length > 0
        ? await onInst(n.id, n, logins.admin, t, 'CatchUpCandidate', (inst) => inst.readGtidPosition(), clock)
        : own.gtid;
    return {
      detail: {
        appliedUpTo: own.appliedUpTo,
        waitMs: own.waitMs,
        applierResumed: own.applier,
        gtidCurrentPos: gtid.executed,
        caughtUpFrom: collected,
        ...(unreachable.length > 0
          ? {
              unreachableReplicas: unreachable,
              warning: 'unreachable replicas may hold transactions the candidate lacks',
            }
          : {}),
      },
    };
  });
  if (!('caughtUpFrom' in detail))
    return { ...ctx, candidateGtid: ctx.candidateGtid ?? '', caughtUpFrom: [] };
  return {
    ...ctx,
    candidateGtid: detail.gtidCurrentPos,
    caughtUpFrom: detail.caughtUpFrom.map((x) => x.from),
  };
}

/** CatchUpCandidate's audit detail: skipped (already promoted), or what it applied and collected. */
type CatchUpDetail =
  | { reason: string }
  | {
      appliedUpTo: string;
      waitMs: number;
      gtidCurrentPos: string;
      caughtUpFrom: Array<{ from: string; upTo: string; missing: string; ms: number }>;
      unreachableReplicas?: string[];
      warning?: string;
    };

/**
 * How long a freeze waits for STOP SLAVE IO_THREAD to return before it confirms from another
 * session that the stop is in effect (see Inst.freezeReplicationIo). A live source lets it
 * return in milliseconds; a hung one holds it for 2 s.
 */
const FREEZE_RETURN_WITHIN_MS = 150;

/**
 * Freezes what every survivor (not the old primary, not a node awaiting rejoin) has received,
 * all at once: STOP SLAVE IO_THREAD. A source that comes back mid-failover can then no longer
 * feed anyone, and no replica acknowledges its commits. Only ever after the old primary took the
 * SQL fence or proved it does not answer (FenceOldPrimary): had it been alive and unfenced, its
 * commits would wait for ACKs the frozen replicas never send, fall back to async at
 * rpl_semi_sync_master_timeout and be acknowledged, lost to the new primary (T7). Idempotent;
 * unreachable nodes are skipped (reported).
 *
 * Against a hung or cut-off source each stop takes 2 s to return (MariaDB waits for the
 * receiver in 2 s rounds), yet it is in effect from its first instant: the receiver checks the
 * stop flag before it queues or acknowledges anything. So a stop that has not returned within
 * {@link FREEZE_RETURN_WITHIN_MS} is confirmed from a second session and left to finish on the
 * server ('stopping'); what needs the thread gone (promotion, repointing, CHANGE MASTER) waits
 * for it there, in parallel with the steps between. In sequence, that 2 s made the hang RTO.
 *
 * @returns the state it read, the nodes it froze (stopped or stopping), those still stopping.
 */
export async function freezeSurvivors(
  rt: Runtime,
  c: ClusterConfig,
  admin: Login,
  failedPrimary: string,
): Promise<{ state: ClusterState | undefined; frozen: string[]; stopping: string[]; unreachable: string[] }> {
  const state = await rt.store.getClusterState(c.name);
  const t = timeouts(c);
  const clock = instClock(rt);
  const survivors = c.nodes.filter(
    (x) => x.id !== failedPrimary && !(state?.needsRejoin ?? []).includes(x.id),
  );
  const freezeOne = async (x: (typeof survivors)[number]) => {
    const r = await onInst(
      x.id,
      x,
      admin,
      t,
      'FreezeSurvivors',
      (inst) => inst.freezeReplicationIo({ returnWithinMs: FREEZE_RETURN_WITHIN_MS }),
      clock,
    );
    if (r !== 'pending') return r;
    return onInst(x.id, x, admin, t, 'FreezeSurvivors', (inst) => inst.awaitIoFreeze(), clock);
  };
  const done = await Promise.all(
    survivors.map((x) =>
      freezeOne(x).then(
        (r) => ({ nodeId: x.id, r }),
        () => ({ nodeId: x.id, r: 'unreachable' as const }),
      ),
    ),
  );
  // 'stopping' here is also a stop an earlier freeze of this execution issued (a retried step).
  return {
    state,
    frozen: done.filter((d) => d.r === 'stopped' || d.r === 'stopping').map((d) => d.nodeId),
    stopping: done.filter((d) => d.r === 'stopping').map((d) => d.nodeId),
    unreachable: done.filter((d) => d.r === 'unreachable').map((d) => d.nodeId),
  };
}

/**
 * Undoes CatchUpCandidate's freeze when a failover ends without a promotion: every survivor
 * (not the old primary, not a node awaiting rejoin) replicates from the old primary again with
 * its IO thread running, so the cluster is as before the attempt (the old primary stays fenced:
 * that is for an operator). Idempotent and safe to call however an execution ends: it does
 * nothing when the candidate was promoted (writable, or no replication left), and reports per
 * node instead of throwing.
 *
 * @returns what was done on each node, or `skipped` with the reason.
 */
export async function restartFrozenReplicas(
  rt: Runtime,
  ctx: Pick<FailoverContext, 'cluster' | 'failedPrimary' | 'candidate'>,
  /** Only these nodes (the ones the freeze stopped); every survivor when absent. */
  only?: readonly string[],
): Promise<{ skipped: string } | { nodes: Array<{ nodeId: string; action?: string; error?: string }> }> {
  const c = rt.cluster(ctx.cluster);
  const logins = await rt.logins(c);
  const t = timeouts(c);
  const old = node(c, ctx.failedPrimary);
  if (ctx.candidate) {
    const cand = node(c, ctx.candidate);
    const promoted = await onInst(
      cand.id,
      cand,
      logins.admin,
      t,
      'RestartFrozenReplicas',
      async (inst) => (await inst.readReplicaStatus()) === undefined || !(await inst.isReadOnly()),
      instClock(rt),
    ).catch(() => undefined);
    if (promoted !== false) {
      return {
        skipped:
          promoted === true
            ? `${ctx.candidate} was promoted: its replicas follow it, not ${ctx.failedPrimary}`
            : `${ctx.candidate} did not answer: cannot tell whether it was promoted`,
      };
    }
  }
  const state = await rt.store.getClusterState(c.name);
  const rejoin = new Set(state?.needsRejoin ?? []);
  const survivors = c.nodes.filter(
    (x) => x.id !== ctx.failedPrimary && !rejoin.has(x.id) && (!only || only.includes(x.id)),
  );
  const nodes = await Promise.all(
    survivors.map(async (x) => {
      try {
        const action = await onInst(
          x.id,
          x,
          logins.admin,
          t,
          'RestartFrozenReplicas',
          (inst) => inst.restartReplicationIo(sourceOf(old, logins.replication)),
          instClock(rt),
        );
        return { nodeId: x.id, action };
      } catch (err) {
        return { nodeId: x.id, error: describeError(err, [logins.replication.password]).message };
      }
    }),
  );
  return { nodes };
}
