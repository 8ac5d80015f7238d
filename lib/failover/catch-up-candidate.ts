import { catchUpFrom, onNode, readGtid, readReplication, waitForGtid } from '../adapters/mysql/admin.ts';
import { probeNode } from '../adapters/mysql/probe.ts';
import { replicasAheadOf } from '../core/elect-candidate.ts';
import { describeGtidRanges, gtidContains, maxGtid } from '../core/gtid.ts';
import type { ClusterSnapshot, NodeProbe } from '../core/types.ts';
import { CatchUpFailedError, RelayLogTimeoutError } from '../errors.ts';
import type { Runtime } from '../runtime.ts';
import { type FailoverContext, node, requireCandidate, timeouts } from './context.ts';
import { step } from './step-runner.ts';
/**
 * CatchUpCandidate: stops the candidate's IO thread (its source is gone) and waits until the
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
    // Freeze what every survivor has received, all at once: STOP SLAVE IO_THREAD against a
    // hung or cut-off source takes ~2 s (the thread sits in a socket read), so one at a time
    // would cost 2 s per replica here and again in RepointReplicas. A source that comes back
    // mid-failover can then no longer feed anyone.
    const state0 = await rt.store.getClusterState(c.name);
    const freeze = c.nodes.filter(
      (x) => x.id !== ctx.failedPrimary && !(state0?.needsRejoin ?? []).includes(x.id),
    );
    await Promise.all(
      freeze.map((x) =>
        onNode(x.id, x, logins.admin, t, 'CatchUpCandidate', async (s) => {
          if (await readReplication(s)) await s.execute('STOP SLAVE IO_THREAD', [], 10_000);
        }).catch(() => undefined),
      ),
    );
    const own = await onNode(n.id, n, logins.admin, t, 'CatchUpCandidate', async (s) => {
      const repl = await readReplication(s);
      if (!repl) return undefined;
      await s.execute('STOP SLAVE IO_THREAD', [], 10_000);
      const after = (await readReplication(s)) ?? repl;
      if (!after.sqlRunning && after.lastSqlErrno === 0) await s.execute('START SLAVE SQL_THREAD');
      const target = after.gtidIoPos;
      const t0 = rt.now();
      if (!(await waitForGtid(s, target, timeoutS))) {
        throw new RelayLogTimeoutError(
          `Candidate ${candidate} did not apply its relay log up to ${target} within ${timeoutS} s.`,
          { candidate, target },
        );
      }
      const gtid = await readGtid(s);
      return { appliedUpTo: target, waitMs: rt.now() - t0, gtid };
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
        await s.execute('STOP SLAVE IO_THREAD', [], 10_000);
        const r = await readReplication(s);
        if (r && !r.sqlRunning && r.lastSqlErrno === 0) await s.execute('START SLAVE SQL_THREAD');
        if (!(await waitForGtid(s, a.receivedGtid, timeoutS))) {
          throw new CatchUpFailedError(
            `Replica ${src.id} did not apply its own relay log up to ${a.receivedGtid} within ${timeoutS} s, so ${candidate} cannot collect it.`,
            { candidate, source: src.id },
          );
        }
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
