import { type OperationWords, operationWords } from '../adapters/mysql/dialect/vocabulary.ts';
import { probeNode } from '../adapters/mysql/probe.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { analyzeTopology } from '../core/analyze-topology.ts';
import { clusterGtidAlgebra, electCandidate } from '../core/elect-candidate.ts';
import type { CandidateVerdict, ClusterSnapshot, ElectionPolicy, NodeProbe } from '../core/types.ts';
import type { ClusterState } from '../ports.ts';
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
  const takenAt = rt.now();
  return describeFailoverPlan(c, { state, nodes, takenAt, now: rt.now() }, opts);
}

/** What {@link describeFailoverPlan} plans from: the stored state and one probe of every node. */
export interface PlanInput {
  state: ClusterState | undefined;
  nodes: NodeProbe[];
  /** When the probes were taken (epoch ms). */
  takenAt: number;
  now: number;
}

/**
 * The dry run from facts already read (pure): election and steps, each step in the words of the
 * node it acts on (MariaDB: STOP SLAVE IO_THREAD, MASTER_GTID_WAIT; MySQL 8.4: STOP REPLICA
 * IO_THREAD, WAIT_FOR_EXECUTED_GTID_SET), the statements the failover's named operations send.
 */
export function describeFailoverPlan(
  c: ClusterConfig,
  input: PlanInput,
  opts: { ignoreLag?: boolean } = {},
): PlanResult {
  const { state, nodes } = input;
  const primary = state?.primaryId ?? c.primary;
  const snapshot: ClusterSnapshot = { cluster: c.name, takenAt: input.takenAt, primaryId: primary, nodes };
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

  const now = input.now;
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
    const gtid = clusterGtidAlgebra(nodes);
    const backlog =
      cp?.gtidCurrentPos !== undefined && 'algebra' in gtid
        ? gtid.algebra.countMissing(cp.gtidCurrentPos, election.receivedGtid)
        : 0;
    const others = c.nodes.filter((n) => n.id !== cand && n.id !== primary).map((n) => n.id);
    // Each step in the words of the node it acts on; a node that never answered speaks like the candidate.
    const w = wordsFor(cp);
    const pw = primaryProbe?.reachable ? wordsFor(primaryProbe, cp) : w;
    steps.push(
      {
        state: 'BeginFailover',
        action: `claim epoch ${(state?.epoch ?? 0) + 1} (conditional write; refused if another failover holds it${blocked ? ' or while blocked' : ''})`,
      },
      { state: 'ElectCandidate', action: `re-probe the survivors; today: ${cand}` },
      {
        state: 'FenceOldPrimary',
        action: primaryProbe?.reachable
          ? `${primary} answers: ${pw.fenceOn} (new writes held back while the sessions in flight are killed, the semi-sync ACK waiters last); then the survivors' IO threads stop`
          : `${primary} does not answer: the VIP moves to ${cand} before anything is promoted, the survivors' IO threads stop meanwhile`,
      },
      {
        state: 'CatchUpCandidate',
        action: `${w.stopIo} on ${cand}, ${w.waitFunction} up to ${election.receivedGtid || '(empty)'} (${backlog} transaction(s) to apply, at most ${c.failover.relayLogTimeoutSeconds} s)`,
      },
      {
        state: 'PromoteCandidate',
        action: `${primary} fenced again if it answers writable; ${cand}: ${w.stop}, ${w.resetAll}${c.failover.semiSync ? `, semi-sync ${w.semiSyncSource} AFTER_SYNC (${w.semiSyncSourceEnabled}=ON)` : ''}, ${w.writesOn}`,
      },
      {
        state: 'RepointReplicas',
        action: others.length
          ? `${others.join(', ')} -> replicate from ${cand} (${w.follow})`
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

/** Words when no dialect can be told from the node: MariaDB's, the flavor this project ran live. */
const MARIADB_WORDS = operationWords('10.11.0-MariaDB') as OperationWords;

/** The operation words for `node`'s server, else `fallback`'s, else MariaDB's. */
function wordsFor(node: NodeProbe | undefined, fallback?: NodeProbe): OperationWords {
  return operationWords(node?.version) ?? operationWords(fallback?.version) ?? MARIADB_WORDS;
}
