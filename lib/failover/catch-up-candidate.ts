import {
  catchUpFrom,
  freezeReplicationIo,
  isReadOnly,
  onNode,
  readGtid,
  readReplication,
  restartApplier,
  restartReplicationIo,
  resumeApplier,
  stopReplicationIo,
  waitForGtid,
} from '../adapters/mysql/admin.ts';
import type { Login } from '../adapters/mysql/connection.ts';
import { probeNode } from '../adapters/mysql/probe.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { replicasAheadOf } from '../core/elect-candidate.ts';
import { describeGtidRanges, gtidContains, maxGtid } from '../core/gtid.ts';
import type { ClusterSnapshot, NodeProbe } from '../core/types.ts';
import { CatchUpFailedError, describeError, RelayLogTimeoutError } from '../errors.ts';
import type { ClusterState } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import { type FailoverContext, node, requireCandidate, timeouts } from './context.ts';
import { step } from './step-runner.ts';
/**
 * CatchUpCandidate (runs after FenceOldPrimary): stops the candidate's IO thread (its source is gone) and waits until the
 * SQL thread has applied everything received, so nothing acknowledged is left in a relay log.
 * Then, when another surviving replica received transactions the candidate lacks (the rules
 * chose a less advanced node), the candidate replicates from that replica up to its received
 * position first: after promotion no replica is ahead of the new primary (no 1236 on repoint)
 * and, with semi-sync AFTER_SYNC, every acknowledged transaction is on the new primary.
 */
export async function catchUpCandidate(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  const detail = await step(rt, ctx, 'CatchUpCandidate', async (c, logins) => {
    const n = node(c, candidate);
    const t = timeouts(c);
    const timeoutS = c.failover.relayLogTimeoutSeconds;
    // FenceOldPrimary froze the survivors already (concurrently with its VIP move); again here
    // for a retried or hand-driven step: a stopped IO thread stops again at once.
    const { state: state0 } = await freezeSurvivors(rt, c, logins.admin, ctx.failedPrimary);
    const own = await onNode(n.id, n, logins.admin, t, 'CatchUpCandidate', async (s) => {
      if (!(await stopReplicationIo(s))) return undefined;
      const after = await readReplication(s);
      if (!after) return undefined;
      // A stopped or delayed applier resumes with its relay log kept (a plain START SLAVE
      // SQL_THREAD would discard it) and no delay: the source is gone, what it holds is final.
      const applier = await resumeApplier(s);
      const target = after.gtidIoPos;
      const t0 = rt.now();
      if (!(await waitForGtid(s, target, timeoutS))) {
        throw new RelayLogTimeoutError(
          `Candidate ${candidate} did not apply its relay log up to ${target} within ${timeoutS} s.`,
          { candidate, target },
        );
      }
      const gtid = await readGtid(s);
      return { appliedUpTo: target, waitMs: rt.now() - t0, gtid, applier };
    });
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
      gtidCurrentPos: own.gtid.current,
      // Everything received is applied now: what it has is gtid_current_pos.
      replication: { gtidIoPos: own.gtid.current } as NodeProbe['replication'] & object,
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
    let have = own.gtid.current;
    for (const a of ahead) {
      // An earlier source may have brought this one's transactions already.
      if (gtidContains(have, a.receivedGtid)) continue;
      const src = node(c, a.nodeId);
      const t0 = rt.now();
      // The source applies what it received first: only its binlog can serve it.
      await onNode(src.id, src, logins.admin, t, 'CatchUpCandidate', async (s) => {
        await stopReplicationIo(s);
        const resumed = await resumeApplier(s);
        if (!(await waitForGtid(s, a.receivedGtid, timeoutS))) {
          throw new CatchUpFailedError(
            `Replica ${src.id} did not apply its own relay log up to ${a.receivedGtid} within ${timeoutS} s, so ${candidate} cannot collect it.`,
            { candidate, source: src.id },
          );
        }
        // It stays a replica: its delay is the operator's, put it back (nothing left to delay).
        if (resumed && resumed.liftedDelaySeconds > 0) await restartApplier(s, resumed.liftedDelaySeconds);
      });
      const ok = await onNode(n.id, n, logins.admin, t, 'CatchUpCandidate', (s) =>
        catchUpFrom(s, src, logins.replication, a.receivedGtid, timeoutS),
      );
      if (!ok) {
        throw new CatchUpFailedError(
          `Candidate ${candidate} did not collect ${describeGtidRanges(a.missing)} from ${src.id} within ${timeoutS} s.`,
          { candidate, source: src.id },
        );
      }
      have = maxGtid(have, a.receivedGtid);
      collected.push({
        from: src.id,
        upTo: a.receivedGtid,
        missing: describeGtidRanges(a.missing),
        ms: rt.now() - t0,
      });
    }
    const gtid =
      collected.length > 0 ? await onNode(n.id, n, logins.admin, t, 'CatchUpCandidate', readGtid) : own.gtid;
    return {
      detail: {
        appliedUpTo: own.appliedUpTo,
        waitMs: own.waitMs,
        applierResumed: own.applier ?? { restarted: false, liftedDelaySeconds: 0 },
        gtidCurrentPos: gtid.current,
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
  return {
    ...ctx,
    candidateGtid: String(detail.gtidCurrentPos ?? ctx.candidateGtid ?? ''),
    caughtUpFrom: ((detail.caughtUpFrom as Array<{ from: string }> | undefined) ?? []).map((x) => x.from),
  };
}

/**
 * Freezes what every survivor (not the old primary, not a node awaiting rejoin) has received,
 * all at once: STOP SLAVE IO_THREAD. Against a hung or cut-off source that takes up to ~2 s (the
 * thread sits in a socket read), so one at a time would cost 2 s per replica. A source that
 * comes back mid-failover can then no longer feed anyone, and no replica acknowledges its
 * commits. Only ever after the old primary took the SQL fence or proved it does not answer
 * (FenceOldPrimary): had it been alive and unfenced, its commits would wait for ACKs the frozen
 * replicas never send, fall back to async at rpl_semi_sync_master_timeout and be acknowledged,
 * lost to the new primary (T7). Idempotent; unreachable nodes are skipped (reported).
 *
 * @returns the state it read, and the nodes it froze.
 */
export async function freezeSurvivors(
  rt: Runtime,
  c: ClusterConfig,
  admin: Login,
  failedPrimary: string,
): Promise<{ state: ClusterState | undefined; frozen: string[]; unreachable: string[] }> {
  const state = await rt.store.getClusterState(c.name);
  const t = timeouts(c);
  const survivors = c.nodes.filter(
    (x) => x.id !== failedPrimary && !(state?.needsRejoin ?? []).includes(x.id),
  );
  const done = await Promise.all(
    survivors.map((x) =>
      onNode(x.id, x, admin, t, 'FreezeSurvivors', freezeReplicationIo).then(
        (r) => (r === 'stopped' ? x.id : undefined),
        () => ({ unreachable: x.id }),
      ),
    ),
  );
  return {
    state,
    frozen: done.filter((d): d is string => typeof d === 'string'),
    unreachable: done.flatMap((d) => (typeof d === 'object' ? [d.unreachable] : [])),
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
    const promoted = await onNode(cand.id, cand, logins.admin, t, 'RestartFrozenReplicas', async (s) => {
      const repl = await readReplication(s);
      return !repl || !(await isReadOnly(s));
    }).catch(() => undefined);
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
        const action = await onNode(x.id, x, logins.admin, t, 'RestartFrozenReplicas', (s) =>
          restartReplicationIo(s, old, logins.replication),
        );
        return { nodeId: x.id, action };
      } catch (err) {
        return { nodeId: x.id, error: describeError(err, [logins.replication.password]).message };
      }
    }),
  );
  return { nodes };
}
