import { probeNode } from '../adapters/mysql/probe.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { analyzeTopology } from '../core/analyze-topology.ts';
import { electCandidate } from '../core/elect-candidate.ts';
import { countMissingTransactions } from '../core/gtid.ts';
import type { CandidateVerdict, ClusterSnapshot, ElectionPolicy, NodeProbe } from '../core/types.ts';
import type { Runtime } from '../runtime.ts';

export interface PlannedStep {
  state: string;
  action: string;
}

export interface PlanResult {
  report: string;
  cluster: string;
  primary: string;
  epoch: number;
  analysis: { code: string; description: string; actionable: boolean };
  /** Whether the health check would start a failover if this analysis were confirmed now. */
  wouldFailover: boolean;
  /** Why not, when wouldFailover is false (or what would still have to be confirmed). */
  why: string;
  candidate?: string;
  veto?: string;
  verdicts: CandidateVerdict[];
  steps: PlannedStep[];
}

/**
 * The dry run: what a failover of `cluster` would do right now — the candidate and why (the
 * election's verdict for every node), and each state machine step with its concrete targets.
 * Reads only: every node is probed WITHOUT the primary's heartbeat write, nothing is claimed.
 */
export async function planFailover(
  rt: Runtime,
  c: ClusterConfig,
  opts: { ignoreLag?: boolean } = {},
): Promise<PlanResult> {
  const state = await rt.store.getClusterState(c.name);
  const primary = state?.primaryId ?? c.primary;
  const logins = await rt.logins(c);
  const t = { connectTimeoutMs: c.detection.connectTimeoutMs, queryTimeoutMs: c.detection.queryTimeoutMs };
  const nodes: NodeProbe[] = await Promise.all(
    c.nodes.map((n) =>
      probeNode(
        { nodeId: n.id, host: n.probeHost ?? n.host, port: n.probePort ?? n.port, isPrimary: false },
        logins.admin,
        t,
      ),
    ),
  );
  const snapshot: ClusterSnapshot = { cluster: c.name, takenAt: rt.now(), primaryId: primary, nodes };
  const analysis = analyzeTopology(snapshot, [], {
    replicaLagAlertSeconds: c.detection.replicaLagAlertSeconds,
    longTransactionAlertSeconds: c.detection.longTransactionAlertSeconds,
    progressWindowMs: 1200,
  });
  const primaryProbe = nodes.find((n) => n.nodeId === primary);
  const stored = state?.topology.find((x) => x.nodeId === primary);
  // The primary's position now when it answers, else as the health check last saw it, and when.
  const primaryGtid = primaryProbe?.gtidBinlogPos ?? stored?.gtid ?? undefined;
  const primarySeenAt = primaryProbe?.reachable ? snapshot.takenAt : stored?.seenAt;
  const policy: ElectionPolicy = {
    mode: c.failover.mode,
    order: c.nodes.map((n) => n.id),
    rules: Object.fromEntries(c.nodes.map((n) => [n.id, n.promotionRule])),
    maxLagSeconds: c.failover.maxLagSeconds,
    ...(opts.ignoreLag === true ? { ignoreLag: true } : {}),
  };
  const election = electCandidate(snapshot, policy, {
    ...(primaryGtid ? { primaryGtid } : {}),
    ...(primaryGtid && primarySeenAt !== undefined ? { primaryLastSeenAt: primarySeenAt } : {}),
  });

  const now = rt.now();
  const blocked = state?.blockedUntil !== undefined && state.blockedUntil > now;
  let why: string;
  if (state?.failoverInProgress) why = `${state.failoverInProgress.executionName} is already in progress`;
  else if (election.kind === 'veto') why = `no candidate: ${election.reason}`;
  else if (!analysis.actionable)
    why = `${analysis.code} is not a state that fails over (${analysis.description})`;
  else if (blocked)
    why = `${analysis.code}, but automatic failover is blocked until ${new Date(state!.blockedUntil!).toISOString()} (acknowledge to clear)`;
  else
    why = `${analysis.code}: a failover starts once it is confirmed (${analysis.evidence === 'unambiguous' ? 'one quick re-probe' : `${c.detection.confirmWindowMs} ms window`})`;
  const wouldFailover =
    !state?.failoverInProgress && election.kind === 'candidate' && analysis.actionable && !blocked;

  const steps: PlannedStep[] = [];
  if (election.kind === 'candidate') {
    const cand = election.nodeId;
    const cp = nodes.find((n) => n.nodeId === cand);
    const backlog =
      cp?.gtidCurrentPos !== undefined
        ? countMissingTransactions(cp.gtidCurrentPos, election.receivedGtid)
        : 0;
    const others = c.nodes.filter((n) => n.id !== cand && n.id !== primary).map((n) => n.id);
    steps.push(
      {
        state: 'BeginFailover',
        action: `claim epoch ${(state?.epoch ?? 0) + 1} (conditional write; refused if another failover holds it${blocked ? ' or while blocked' : ''})`,
      },
      { state: 'ElectCandidate', action: `re-probe the survivors; today: ${cand}` },
      {
        state: 'FenceOldPrimary',
        action: primaryProbe?.reachable
          ? `${primary} answers: read_only=ON (never waiting: client sessions killed while it cannot apply), client sessions ended; then the survivors' IO threads stop`
          : `${primary} does not answer: the VIP moves to ${cand} before anything is promoted, the survivors' IO threads stop meanwhile`,
      },
      {
        state: 'CatchUpCandidate',
        action: `STOP SLAVE IO_THREAD on ${cand}, MASTER_GTID_WAIT up to ${election.receivedGtid || '(empty)'} (${backlog} transaction(s) to apply, at most ${c.failover.relayLogTimeoutSeconds} s)`,
      },
      {
        state: 'PromoteCandidate',
        action: `${primary} fenced again if it answers writable; ${cand}: STOP SLAVE, RESET SLAVE ALL${c.failover.semiSync ? ', semi-sync master AFTER_SYNC' : ''}, read_only=OFF`,
      },
      {
        state: 'RepointReplicas',
        action: others.length
          ? `${others.join(', ')} -> replicate from ${cand} (GTID slave_pos)`
          : 'no other replica',
      },
      {
        state: 'MoveVip',
        action:
          c.vip.provider === 'none'
            ? 'skipped (vip.provider none)'
            : `${c.vip.address} (${c.vip.provider}) from ${primary} to ${cand}, verified through the provider API`,
      },
      {
        state: 'CompleteFailover',
        action: `record ${cand} as primary, mark ${primary} needs-rejoin, block automatic failover for ${c.failover.blockPeriodSeconds} s`,
      },
    );
  }
  const lines = [
    `cluster ${c.name}  primary ${primary}  epoch ${state?.epoch ?? 0}  analysis ${analysis.code} — ${analysis.description}`,
    `failover now: ${wouldFailover ? 'YES' : 'no'} — ${why}`,
    election.kind === 'candidate'
      ? `candidate: ${election.nodeId} (received ${election.receivedGtid || '(empty)'})`
      : `candidate: none — ${election.reason}`,
    'verdicts:',
    ...election.verdicts.map(
      (v) => `  ${v.nodeId.padEnd(8)} ${v.eligible ? 'eligible' : 'not eligible'}: ${v.reasons.join('; ')}`,
    ),
  ];
  if (steps.length)
    lines.push(
      'steps a failover would take (nothing was changed):',
      ...steps.map((s, i) => `  ${i + 1}. ${s.state.padEnd(17)} ${s.action}`),
    );
  return {
    report: lines.join('\n'),
    cluster: c.name,
    primary,
    epoch: state?.epoch ?? 0,
    analysis: { code: analysis.code, description: analysis.description, actionable: analysis.actionable },
    wouldFailover,
    why,
    ...(election.kind === 'candidate' ? { candidate: election.nodeId } : { veto: election.reason }),
    verdicts: election.verdicts,
    steps,
  };
}
