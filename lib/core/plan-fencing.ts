/**
 * What to do about old primaries that come back. Pure: a probe snapshot and the state table's
 * view of the cluster in, fence actions and findings out.
 *
 * A crashed primary restarts with read_only=OFF (its my.cnf), a hung one resumes after
 * SIGCONT with read_only=OFF and accepts writes again after ~2 s. The VIP has moved away from
 * it, but a client that connects to it directly, or a VIP that never moved (a failed MoveVip),
 * would write to a second primary. Re-fencing is safe exactly for nodes the state table marks
 * needsRejoin: the election excludes them and they are never the recorded primary, so setting
 * read_only on them can never hit the node that should take writes.
 */
import type { ClusterSnapshot } from './types.ts';

export interface FencingView {
  /** The recorded primary (state table). */
  primaryId: string;
  /** Old primaries not rejoined yet. */
  needsRejoin: readonly string[];
  /** While a failover or switchover runs, roles are in flux: never fence then. */
  failoverInProgress: boolean;
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
  if (view.failoverInProgress) return plan;
  for (const n of snapshot.nodes) {
    if (n.nodeId === view.primaryId || n.nodeId === snapshot.primaryId) continue;
    if (!view.needsRejoin.includes(n.nodeId) || !n.reachable) continue;
    if (n.readOnly === false) {
      const reason = `old primary ${n.nodeId} is back and writable (read_only=OFF) while ${view.primaryId} is the primary: fencing it; it needs rejoin`;
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
