/**
 * Chooses the replica to promote after the primary died. Pure: a snapshot and a policy in,
 * an Election (candidate or veto, with a verdict for every node) out.
 *
 * Ranking follows what was measured on MariaDB: the replica with the most RECEIVED
 * transactions (Gtid_IO_Pos) wins, not the one that applied most, because promotion first
 * lets the candidate apply its relay log (MASTER_GTID_WAIT) and so keeps everything it received.
 *
 * Every GTID comparison goes through the flavor-neutral GtidAlgebra (gtid-set.ts), so the same
 * rules run on MariaDB positions and MySQL GTID sets: "most received" is the candidate missing
 * the fewest transactions of the union of all received sets; errant is what a node executed
 * that neither its receiver fetched nor the primary (as last seen) had.
 */
import type { ElectionFacts, ReplicaAhead } from './decision-types.ts';
import { type ErrantContext, type GtidAlgebra, gtidAlgebraFor, type NodeGtidFacts } from './gtid-set.ts';
import type {
  CandidateVerdict,
  ClusterSnapshot,
  Election,
  ElectionPolicy,
  NodeProbe,
  PromotionRule,
} from './types.ts';

/** The server family: decides the GTID notation (MariaDB positions, MySQL sets). */
type ServerFlavor = NonNullable<NodeProbe['flavor']>;

/** Nodes the election must skip whatever their data says, with the reason for the report. */
export interface ExclusionFacts {
  /** Node id -> reason, e.g. an old primary that needs rejoin and may hold errant transactions. */
  excluded?: Readonly<Record<string, string>>;
}

/** Major version of a server, e.g. "10.11.6-MariaDB-0+deb12u1" -> { major: 10, minor: 11 }. */
export interface MajorVersion {
  major: number;
  minor: number;
}

/** Parses the major version (first two numbers) of @@version; undefined when it has none. */
export function parseMajorVersion(version: string): MajorVersion | undefined {
  const m = /^\s*(\d+)\.(\d+)/.exec(version);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]) };
}

function compareVersions(a: MajorVersion, b: MajorVersion): number {
  return a.major - b.major || a.minor - b.minor;
}

interface Assessment {
  node: NodeProbe;
  rule: PromotionRule;
  /** Failed checks; empty when the node passed them all. */
  blockers: string[];
  /** Facts worth showing even when they do not block. */
  notes: string[];
  /** What it received, canonical in the cluster's GTID notation (errant transactions left out). */
  received?: string;
}

/**
 * The flavor of a node: what the prober said, else the notation of its GTID text (MySQL sets
 * have `uuid:`, MariaDB positions do not: the most direct evidence of how to read them), else
 * its @@version (MariaDB names itself there). Undefined when nothing tells.
 */
export function flavorOfNode(node: NodeProbe): ServerFlavor | undefined {
  if (node.flavor !== undefined) return node.flavor;
  if (node.replication?.flavor !== undefined) return node.replication.flavor;
  const text = [node.gtidCurrentPos, node.gtidBinlogPos, node.replication?.gtidIoPos].find(
    (t) => t !== undefined && t.trim() !== '',
  );
  if (text !== undefined) return text.includes(':') ? 'mysql' : 'mariadb';
  if (node.version !== undefined && node.version.trim() !== '')
    return /mariadb/i.test(node.version) ? 'mariadb' : 'mysql';
  return undefined;
}

/**
 * The GTID algebra for the snapshot's reachable nodes, or the reason there is none: one cluster,
 * one notation (a MariaDB replica of a MySQL primary has GTIDs that cannot be compared; `check`
 * refuses such a cluster). Nodes that tell nothing count as MariaDB, the historic default.
 */
export function clusterGtidAlgebra(
  nodes: readonly NodeProbe[],
): { algebra: GtidAlgebra } | { mixed: string } {
  const byFlavor = new Map<ServerFlavor, string[]>();
  for (const n of nodes) {
    if (!n.reachable) continue;
    const f = flavorOfNode(n);
    if (f === undefined) continue;
    byFlavor.set(f, [...(byFlavor.get(f) ?? []), n.nodeId]);
  }
  if (byFlavor.size > 1) {
    const list = [...byFlavor].map(([f, ids]) => `${f === 'mysql' ? 'MySQL' : 'MariaDB'} ${ids.join(', ')}`);
    return {
      mixed: `mixed cluster (${list.join('; ')}): MariaDB and MySQL GTIDs cannot be compared`,
    };
  }
  return { algebra: gtidAlgebraFor([...byFlavor.keys()][0] ?? 'mariadb') };
}

/** A node's GTID facts as the algebra reads them (see NodeGtidFacts for each field). */
function gtidFactsOf(node: NodeProbe, algebra: GtidAlgebra): NodeGtidFacts {
  const rep = node.replication;
  if (algebra.flavor === 'mysql') {
    return {
      executed: node.gtidCurrentPos ?? '',
      // Without Retrieved_Gtid_Set, Retrieved ∪ Executed: nothing can be told errant (the
      // election says so in its notes) rather than legitimate late arrivals vetoed as errant.
      retrieved: rep?.retrievedGtid ?? rep?.gtidIoPos ?? '',
      replicated: '',
    };
  }
  return {
    executed: node.gtidCurrentPos ?? '',
    ...(node.gtidBinlogPos === undefined ? {} : { binlog: node.gtidBinlogPos }),
    retrieved: rep?.gtidIoPos.trim() ?? '',
    replicated: node.gtidSlavePos ?? '',
    ...(node.serverId === undefined ? {} : { serverId: node.serverId }),
  };
}

/** The errant check's references for `node`: the primary as last seen, the other replicas. */
function errantContext(node: NodeProbe, snapshot: ClusterSnapshot, facts: ElectionFacts): ErrantContext {
  const peers = snapshot.nodes
    .filter((n) => n !== node && n.nodeId !== snapshot.primaryId && n.reachable)
    .map((n) => n.gtidCurrentPos ?? '')
    .filter((t) => t.trim() !== '');
  return { primary: facts.primaryGtid, peers };
}

/**
 * Elects the replica to promote in place of the snapshot's (dead) primary.
 *
 * Eligible: reachable, configured as a replica, promotion rule not must_not, log_bin and
 * log_slave_updates ON, no SQL thread error, lag within policy.maxLagSeconds, not an older
 * major version than another reachable replica, no errant transactions. Eligible nodes are
 * ranked by received transactions, then promotion rule (prefer before neutral), then
 * policy.order. Mode 'fail' vetoes; 'elect' only accepts nodes whose rule is prefer.
 *
 * @param facts what earlier rounds knew: the dead primary's last gtid_binlog_pos (sharpens
 *   the errant-transaction check) and versions of nodes whose probe lacks one.
 */
export function electCandidate(
  snapshot: ClusterSnapshot,
  policy: ElectionPolicy,
  facts: ElectionFacts & ExclusionFacts = {},
): Election {
  const primaryId = snapshot.primaryId;
  const replicas = snapshot.nodes.filter((n) => n.nodeId !== primaryId);
  const reachable = replicas.filter((n) => n.reachable);
  const gtid = clusterGtidAlgebra(snapshot.nodes);
  const algebra = 'algebra' in gtid ? gtid.algebra : gtidAlgebraFor('mariadb');
  const context = buildContext(reachable, facts, snapshot, algebra);
  const assessments = replicas.map((n) => assessReplica(n, policy, facts, context));
  if ('mixed' in gtid) for (const a of assessments) if (a.node.reachable) a.blockers.unshift(gtid.mixed);
  for (const a of assessments) {
    const why = facts.excluded?.[a.node.nodeId];
    if (why !== undefined) a.blockers.unshift(why);
  }

  const eligible = assessments.filter((a) => a.blockers.length === 0 && a.received !== undefined);
  const union = algebra.union(...eligible.map((a) => a.received!));
  const behind = new Map(eligible.map((a) => [a.node.nodeId, algebra.countMissing(a.received!, union)]));
  const orderIndex = (id: string): number => {
    const i = policy.order.indexOf(id);
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  const ranked = [...eligible].sort(
    (a, b) =>
      behind.get(a.node.nodeId)! - behind.get(b.node.nodeId)! ||
      ruleRank(a.rule) - ruleRank(b.rule) ||
      orderIndex(a.node.nodeId) - orderIndex(b.node.nodeId) ||
      a.node.nodeId.localeCompare(b.node.nodeId),
  );

  const pool = policy.mode === 'elect' ? ranked.filter((a) => a.rule === 'prefer') : ranked;
  const chosen = policy.mode === 'fail' ? undefined : pool[0];

  const verdicts: CandidateVerdict[] = [];
  for (const n of snapshot.nodes) {
    if (n.nodeId === primaryId) {
      verdicts.push({ nodeId: n.nodeId, eligible: false, reasons: ['current primary: not a candidate'] });
      continue;
    }
    const a = assessments.find((x) => x.node === n)!;
    verdicts.push(explain(a, chosen, policy, behind, orderIndex));
  }

  if (chosen === undefined) {
    return { kind: 'veto', reason: vetoReason(policy, assessments, eligible.length), verdicts };
  }
  return {
    kind: 'candidate',
    nodeId: chosen.node.nodeId,
    receivedGtid: chosen.received!,
    verdicts,
  };
}

function ruleRank(rule: PromotionRule): number {
  return rule === 'prefer' ? 0 : rule === 'neutral' ? 1 : 2;
}

interface Context {
  topVersion: MajorVersion | undefined;
  topVersionNode: string | undefined;
  /** Smallest heartbeat lag among reachable replicas: the freshest applied heartbeat. */
  freshestHeartbeatMs: number | undefined;
  /** When the snapshot was taken (heartbeat lags are measured at that time). */
  takenAt: number;
  snapshot: ClusterSnapshot;
  algebra: GtidAlgebra;
}

function versionOf(node: NodeProbe, facts: ElectionFacts): MajorVersion | undefined {
  const text = node.version ?? facts.majorVersions?.[node.nodeId];
  return text === undefined ? undefined : parseMajorVersion(text);
}

function buildContext(
  reachable: readonly NodeProbe[],
  facts: ElectionFacts,
  snapshot: ClusterSnapshot,
  algebra: GtidAlgebra,
): Context {
  let topVersion: MajorVersion | undefined;
  let topVersionNode: string | undefined;
  let freshestHeartbeatMs: number | undefined;
  for (const n of reachable) {
    const v = versionOf(n, facts);
    if (v !== undefined && (topVersion === undefined || compareVersions(v, topVersion) > 0)) {
      topVersion = v;
      topVersionNode = n.nodeId;
    }
    const hb = n.heartbeatLagMs;
    if (typeof hb === 'number' && (freshestHeartbeatMs === undefined || hb < freshestHeartbeatMs)) {
      freshestHeartbeatMs = hb;
    }
  }
  return { topVersion, topVersionNode, freshestHeartbeatMs, takenAt: snapshot.takenAt, snapshot, algebra };
}

function assessReplica(
  node: NodeProbe,
  policy: ElectionPolicy,
  facts: ElectionFacts,
  context: Context,
): Assessment {
  const rule = policy.rules[node.nodeId] ?? 'neutral';
  const a: Assessment = { node, rule, blockers: [], notes: [] };
  if (!node.reachable) {
    const err = node.error ? ` (${node.error.kind} ${node.error.code})` : '';
    a.blockers.push(`unreachable${err}`);
    return a;
  }
  const rep = node.replication;
  if (rep === undefined) {
    a.blockers.push('not configured as a replica');
    return a;
  }
  if (rule === 'must_not') a.blockers.push('promotion rule must_not');
  // Unknown counts as OFF: a promoted node without binlogs cannot be replicated from.
  if (node.logBin !== true)
    a.blockers.push(node.logBin === false ? 'log_bin is OFF' : 'log_bin not reported');
  if (node.logSlaveUpdates !== true) {
    a.blockers.push(
      node.logSlaveUpdates === false ? 'log_slave_updates is OFF' : 'log_slave_updates not reported',
    );
  }
  if (rep.lastSqlErrno !== 0)
    a.blockers.push(`SQL thread error ${rep.lastSqlErrno}: ${clip(rep.lastSqlError)}`);
  else if (!rep.sqlRunning) a.notes.push('SQL thread stopped (no error)');

  const lagBlockers: string[] = [];
  const lag = estimateLagSeconds(node, context);
  if (lag === undefined) a.notes.push('lag unknown');
  else if (lag > policy.maxLagSeconds)
    lagBlockers.push(`lag ${lag.toFixed(1)} s over the limit of ${policy.maxLagSeconds} s`);

  const version = versionOf(node, facts);
  if (version === undefined) a.notes.push('version unknown');
  else if (context.topVersion !== undefined && compareVersions(version, context.topVersion) < 0) {
    a.blockers.push(
      `older major version ${version.major}.${version.minor} than ${context.topVersionNode} (${context.topVersion.major}.${context.topVersion.minor})`,
    );
  }

  const algebra = context.algebra;
  try {
    if (algebra.flavor === 'mariadb' && rep.gtidIoPos.trim() === '')
      a.notes.push('Gtid_IO_Pos empty: ranked by gtid_current_pos');
    if (algebra.flavor === 'mysql' && rep.retrievedGtid === undefined)
      a.notes.push('errant transactions not checked: the probe carries no Retrieved_Gtid_Set');
    const g = gtidFactsOf(node, algebra);
    const errantCtx = errantContext(node, context.snapshot, facts);
    a.received = algebra.receivedOnNode(g, errantCtx);
    // Errant checks use the raw received set: the fallback above includes local writes.
    const errant = algebra.errantOnNode(g, errantCtx);
    if (errant.count > 0) a.blockers.push(`errant transactions: ${errant.description}`);
    if (node.gtidCurrentPos !== undefined) {
      const backlog = algebra.countMissing(node.gtidCurrentPos, a.received);
      if (backlog > 0) a.notes.push(`relay log backlog ${backlog} transaction(s)`);
    }
  } catch (err) {
    delete a.received;
    a.blockers.push(`GTID position unreadable: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (a.received !== undefined) {
    const behind = lagBehindLastSeenPrimary(node, a.received, facts, context);
    if (behind.note !== undefined) a.notes.push(behind.note);
    if (behind.seconds !== undefined && behind.seconds > policy.maxLagSeconds) {
      lagBlockers.push(`${behind.describe} over the limit of ${policy.maxLagSeconds} s`);
    }
  }
  if (policy.ignoreLag) {
    for (const b of lagBlockers) a.notes.push(`${b}: ignored, the operator forced it (ignoreLag)`);
  } else a.blockers.push(...lagBlockers);
  return a;
}

/**
 * How far the replica trails the primary as the prober last saw it (facts.primaryGtid at
 * facts.primaryLastSeenAt). Nothing missing: not behind, whatever the clock says. Missing
 * transactions: the replica's data is as old as the newest heartbeat row it applied (written by
 * the primary at its commit time, so `takenAt - heartbeatLagMs`), and it trails the last seen
 * primary by the difference. Applied, not received: a replica with an unapplied relay log reads
 * as further behind than it is, the safe side. Seconds_Behind_Master cannot help here: it is
 * NULL once the IO thread lost its source.
 */
function lagBehindLastSeenPrimary(
  node: NodeProbe,
  received: string,
  facts: ElectionFacts,
  context: Context,
): { seconds?: number; describe?: string; note?: string } {
  const seenAt = facts.primaryLastSeenAt;
  if (facts.primaryGtid === undefined || facts.primaryGtid === '' || seenAt === undefined) return {};
  let missing: number;
  try {
    missing = context.algebra.countMissing(received, facts.primaryGtid);
  } catch {
    return { note: 'primary position last seen unreadable: lag behind it unknown' };
  }
  const ago = (ms: number) => `${((context.takenAt - ms) / 1000).toFixed(1)} s before this election`;
  const seen = ago(seenAt);
  if (missing === 0) return { seconds: 0 };
  const hb = node.heartbeatLagMs;
  if (typeof hb !== 'number') {
    return {
      note: `${missing} transaction(s) behind the primary as last seen ${seen} (${facts.primaryGtid}); how long behind unknown (no heartbeat)`,
    };
  }
  const dataAt = context.takenAt - hb;
  const seconds = Math.max(0, (seenAt - dataAt) / 1000);
  return {
    seconds,
    describe: `${seconds.toFixed(1)} s behind the primary as last seen ${seen} (${facts.primaryGtid}; missing ${missing} transaction(s), newest applied heartbeat written ${ago(dataAt)})`,
  };
}

/**
 * Lag in seconds, the worse of two measures: Seconds_Behind_Master (NULL once the IO thread
 * lost its source, as after a crash), and the heartbeat lag relative to the freshest
 * reachable replica. The raw heartbeat lag keeps growing after the primary died, on every
 * replica alike; the difference to the freshest one is how far this replica's applied data
 * trails the best one.
 */
function estimateLagSeconds(node: NodeProbe, context: Context): number | undefined {
  const measures: number[] = [];
  const sbm = node.replication?.secondsBehindMaster;
  if (typeof sbm === 'number') measures.push(sbm);
  const hb = node.heartbeatLagMs;
  if (typeof hb === 'number' && context.freshestHeartbeatMs !== undefined) {
    measures.push((hb - context.freshestHeartbeatMs) / 1000);
  }
  return measures.length === 0 ? undefined : Math.max(...measures);
}

function explain(
  a: Assessment,
  chosen: Assessment | undefined,
  policy: ElectionPolicy,
  behind: ReadonlyMap<string, number>,
  orderIndex: (id: string) => number,
): CandidateVerdict {
  const id = a.node.nodeId;
  const received = a.received;
  const facts = [
    ...(received === undefined ? [] : [`received ${received || '(empty)'}`]),
    `rule ${a.rule}`,
    ...a.notes,
  ];
  if (a.blockers.length > 0) {
    return {
      nodeId: id,
      eligible: false,
      reasons: [...a.blockers.map((b) => `not eligible: ${b}`), ...facts],
    };
  }
  if (policy.mode === 'fail') {
    return {
      nodeId: id,
      eligible: false,
      reasons: ['passes all checks, but mode fail: never promote', ...facts],
    };
  }
  if (policy.mode === 'elect' && a.rule !== 'prefer') {
    return {
      nodeId: id,
      eligible: false,
      reasons: [
        `passes all checks, but mode elect only promotes rule prefer (this node: ${a.rule})`,
        ...facts,
      ],
    };
  }
  if (chosen === a) {
    const lead =
      behind.get(id) === 0
        ? 'most received transactions'
        : `${behind.get(id)} transaction(s) behind the most received`;
    return { nodeId: id, eligible: true, reasons: [`chosen: ${lead}`, ...facts] };
  }
  const mine = behind.get(id) ?? 0;
  const theirs = chosen === undefined ? 0 : (behind.get(chosen.node.nodeId) ?? 0);
  let why: string;
  if (chosen === undefined) why = 'eligible, but no candidate was chosen';
  else if (mine > theirs)
    why = `eligible, not chosen: ${mine - theirs} transaction(s) fewer received than ${chosen.node.nodeId}`;
  else if (ruleRank(a.rule) > ruleRank(chosen.rule)) {
    why = `eligible, not chosen: received as much as ${chosen.node.nodeId}, which has promotion rule ${chosen.rule}`;
  } else if (orderIndex(id) > orderIndex(chosen.node.nodeId)) {
    why = `eligible, not chosen: received as much as ${chosen.node.nodeId}, which comes first in the configured order`;
  } else why = `eligible, not chosen: tie with ${chosen.node.nodeId}, broken by node id`;
  return { nodeId: id, eligible: true, reasons: [why, ...facts] };
}

function vetoReason(
  policy: ElectionPolicy,
  assessments: readonly Assessment[],
  eligibleCount: number,
): string {
  if (policy.mode === 'fail') return 'mode fail: never promote';
  if (policy.mode === 'elect' && eligibleCount > 0) {
    return 'mode elect: no eligible replica has promotion rule prefer';
  }
  const why = assessments.map((a) => `${a.node.nodeId}: ${a.blockers.join(', ')}`).join('; ');
  return `no eligible candidate${why === '' ? ' (no replicas)' : ` (${why})`}`;
}

/**
 * Reachable replicas that received transactions the candidate lacks, most ahead first: the
 * sources for the catch-up step before promotion. Compares received sets only (MariaDB
 * Gtid_IO_Pos, else gtid_current_pos; MySQL Retrieved ∪ Executed minus the node's errant
 * transactions), so errant local writes are never offered as catch-up.
 *
 * @param facts the primary as last seen: sharpens which of a source's transactions are errant.
 * @throws Error when candidateId is not a node of the snapshot, the cluster mixes flavors, or a
 *   position is unreadable.
 */
export function replicasAheadOf(
  snapshot: ClusterSnapshot,
  candidateId: string,
  facts: ElectionFacts = {},
): ReplicaAhead[] {
  const candidate = snapshot.nodes.find((n) => n.nodeId === candidateId);
  if (candidate === undefined) {
    throw new Error(
      `Failed to find replicas ahead of ${candidateId}: not a node of cluster ${snapshot.cluster}`,
    );
  }
  const algebra = requireAlgebra(snapshot, `Failed to find replicas ahead of ${candidateId}`);
  // What the candidate has, it keeps: no errant filter on its own side.
  const mine = algebra.union(
    candidate.replication?.gtidIoPos.trim() || (candidate.gtidCurrentPos ?? ''),
    algebra.flavor === 'mysql' ? (candidate.gtidCurrentPos ?? '') : '',
  );
  const out: ReplicaAhead[] = [];
  for (const n of snapshot.nodes) {
    if (n.nodeId === candidateId || n.nodeId === snapshot.primaryId || !n.reachable || !n.replication)
      continue;
    const theirs = algebra.receivedOnNode(gtidFactsOf(n, algebra), errantContext(n, snapshot, facts));
    const missingCount = algebra.countMissing(mine, theirs);
    if (missingCount === 0) continue;
    out.push({
      nodeId: n.nodeId,
      receivedGtid: theirs,
      missing: algebra.describeMissing(mine, theirs),
      missingCount,
    });
  }
  return out.sort((x, y) => y.missingCount - x.missingCount || x.nodeId.localeCompare(y.nodeId));
}

function requireAlgebra(snapshot: ClusterSnapshot, what: string): GtidAlgebra {
  const gtid = clusterGtidAlgebra(snapshot.nodes);
  if ('mixed' in gtid) throw new Error(`${what} in cluster ${snapshot.cluster}: ${gtid.mixed}`);
  return gtid.algebra;
}

function clip(text: string, max = 160): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 3)}...` : flat;
}

/** A reachable replica holding transactions that did not come from the primary. */
export interface ErrantReplica {
  nodeId: string;
  /** For people: "domain 0: seq 101 (last 0-3-101)" or "2 transactions: 2174b383-…:1-2". */
  errant: string;
}

/**
 * Reachable replicas of the snapshot's primary with errant transactions (the same check as
 * the election's veto). Pedantic failovers abort when this is not empty, as mysqlfailover
 * does without --force: such a replica breaks replication (1950) once repointed. A cluster
 * that mixes flavors is reported as such for every reachable replica.
 */
export function findErrantReplicas(snapshot: ClusterSnapshot, facts: ElectionFacts = {}): ErrantReplica[] {
  const out: ErrantReplica[] = [];
  const gtid = clusterGtidAlgebra(snapshot.nodes);
  for (const n of snapshot.nodes) {
    if (n.nodeId === snapshot.primaryId || !n.reachable || !n.replication) continue;
    if ('mixed' in gtid) {
      out.push({ nodeId: n.nodeId, errant: `not comparable: ${gtid.mixed}` });
      continue;
    }
    try {
      const errant = gtid.algebra.errantOnNode(
        gtidFactsOf(n, gtid.algebra),
        errantContext(n, snapshot, facts),
      );
      if (errant.count > 0) out.push({ nodeId: n.nodeId, errant: errant.description });
    } catch (err) {
      out.push({ nodeId: n.nodeId, errant: `GTID position unreadable: ${(err as Error).message}` });
    }
  }
  return out;
}
