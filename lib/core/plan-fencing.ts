/**
 * What to do about old primaries that come back. Pure: a probe snapshot and the state table's
 * view of the cluster in, fence actions and findings out.
 *
 * A crashed primary restarts with read_only=OFF (its my.cnf), a hung one resumes after
 * SIGCONT with read_only=OFF and accepts writes again after ~2 s. The VIP has moved away from
 * it, but a client that connects to it directly, or a VIP that never moved (a failed MoveVip),
 * would write to a second primary. Re-fencing is safe exactly for nodes the state table marks
 * needsRejoin (the election excludes them and they are never the recorded primary) and for the
 * old primary of a failover in progress (the failover fences it before anything else, and its
 * candidate is another node), so setting read_only on them can never hit the node that should
 * take writes. A failover's old primary that resumes (SIGSTOP, then SIGCONT) or restarts
 * (mysqld_safe) mid-failover is exactly the one that must be fenced at once (T1, T2): its commits
 * waiting for a semi-sync ACK are acknowledged at rpl_semi_sync_master_timeout otherwise.
 */
import type { ClusterSnapshot } from './types.ts';

export interface FencingView {
  /** The recorded primary (state table). */
  primaryId: string;
  /** Old primaries not rejoined yet. */
  needsRejoin: readonly string[];
  /**
   * While a failover or switchover runs, roles are in flux: only `failingPrimary` and
   * needs-rejoin nodes are fenced then.
   */
  failoverInProgress: boolean;
  /**
   * The old primary of a FAILOVER in progress (not of a switchover, whose old primary is
   * fenced by the switchover itself and given its writes back if it aborts).
   */
  failingPrimary?: string | undefined;
}

export interface FenceAction {
  nodeId: string;
  /** One line for people and the event log. */
  reason: string;
}

export interface ReturnedPrimaryFinding {
  code: 'OldPrimaryWritable' | 'OldPrimaryNeedsRejoin';
  nodeId: string;
  description: string;
}

export interface FencingPlan {
  actions: FenceAction[];
  findings: ReturnedPrimaryFinding[];
}

/**
 * Decides which returned old primaries must be fenced (read_only=ON, sessions killed) now.
 * A needs-rejoin node that answers and is writable gets an action and an OldPrimaryWritable
 * finding; one that answers read-only only an OldPrimaryNeedsRejoin finding.
 */
export function planFencing(snapshot: ClusterSnapshot, view: FencingView): FencingPlan {
  const plan: FencingPlan = { actions: [], findings: [] };
  const failing = view.failoverInProgress ? view.failingPrimary : undefined;
  if (view.failoverInProgress && failing === undefined) return plan;
  for (const n of snapshot.nodes) {
    const isFailing = n.nodeId === failing;
    if (!isFailing && (n.nodeId === view.primaryId || n.nodeId === snapshot.primaryId)) continue;
    if (!(isFailing || view.needsRejoin.includes(n.nodeId)) || !n.reachable) continue;
    if (n.readOnly === false) {
      const reason = isFailing
        ? `old primary ${n.nodeId} answers writable (read_only=OFF) while a failover replaces it: fencing it; it needs rejoin`
        : `old primary ${n.nodeId} is back and writable (read_only=OFF) while ${view.primaryId} is the primary: fencing it; it needs rejoin`;
      plan.actions.push({ nodeId: n.nodeId, reason });
      plan.findings.push({ code: 'OldPrimaryWritable', nodeId: n.nodeId, description: reason });
    } else {
      plan.findings.push({
        code: 'OldPrimaryNeedsRejoin',
        nodeId: n.nodeId,
        description: `old primary ${n.nodeId} is back (read-only) and needs rejoin before it serves again`,
      });
    }
  }
  return plan;
}
