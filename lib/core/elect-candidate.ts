/**
 * Chooses the replica to promote after the primary died. Pure: a snapshot and a policy in,
 * an Election (candidate or veto, with a verdict for every node) out.
 *
 * Ranking follows what was measured on MariaDB: the replica with the most RECEIVED
 * transactions (Gtid_IO_Pos) wins, not the one that applied most, because promotion first
 * lets the candidate apply its relay log (MASTER_GTID_WAIT) and so keeps everything it received.
 */
import type { ElectionFacts, ReplicaAhead } from './decision-types.ts';
import {
  countMissingTransactions,
  describeGtidRanges,
  findErrantGtids,
  formatGtidPos,
  type GtidEntry,
  type GtidPos,
  type GtidRange,
  gtidMissing,
  maxGtid,
  parseGtidPos,
} from './gtid.ts';
import type {
  CandidateVerdict,
  ClusterSnapshot,
  Election,
  ElectionPolicy,
  NodeProbe,
  PromotionRule,
} from './types.ts';

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
  received?: GtidPos;
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
  const context = buildContext(reachable, facts, snapshot.takenAt);
  const assessments = replicas.map((n) => assessReplica(n, policy, facts, context));
  for (const a of assessments) {
    const why = facts.excluded?.[a.node.nodeId];
    if (why !== undefined) a.blockers.unshift(why);
  }

  const eligible = assessments.filter((a) => a.blockers.length === 0 && a.received !== undefined);
  const union = maxGtid(...eligible.map((a) => a.received!));
  const behind = new Map(eligible.map((a) => [a.node.nodeId, countMissingTransactions(a.received!, union)]));
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
    receivedGtid: formatGtidPos(chosen.received!),
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
}

function versionOf(node: NodeProbe, facts: ElectionFacts): MajorVersion | undefined {
  const text = node.version ?? facts.majorVersions?.[node.nodeId];
  return text === undefined ? undefined : parseMajorVersion(text);
}

function buildContext(reachable: readonly NodeProbe[], facts: ElectionFacts, takenAt: number): Context {
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
  return { topVersion, topVersionNode, freshestHeartbeatMs, takenAt };
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

  try {
    const ioText = rep.gtidIoPos.trim();
    if (ioText === '') a.notes.push('Gtid_IO_Pos empty: ranked by gtid_current_pos');
    a.received = parseGtidPos(ioText !== '' ? ioText : (node.gtidCurrentPos ?? ''));
    // Errant checks use the raw Gtid_IO_Pos: the fallback above includes local writes.
    const errant = findNodeErrant(node, parseGtidPos(ioText), facts);
    if (errant.length > 0) a.blockers.push(`errant transactions: ${describeGtidRanges(errant)}`);
    const applied = node.gtidCurrentPos === undefined ? undefined : parseGtidPos(node.gtidCurrentPos);
    if (applied !== undefined) {
      const backlog = countMissingTransactions(applied, a.received);
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
  received: GtidPos,
  facts: ElectionFacts,
  context: Context,
): { seconds?: number; describe?: string; note?: string } {
  const seenAt = facts.primaryLastSeenAt;
  if (facts.primaryGtid === undefined || facts.primaryGtid === '' || seenAt === undefined) return {};
  let missing: number;
  try {
    missing = countMissingTransactions(received, parseGtidPos(facts.primaryGtid));
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

/**
 * Errant transactions: GTIDs a replica executed that did not come from the primary.
 *
 * What the node has executed is gtid_binlog_pos (every binlogged transaction, local writes
 * included, with log_slave_updates) and gtid_current_pos. What it may legitimately have:
 *  - what its IO thread received from the primary (Gtid_IO_Pos),
 *  - what replication applied (gtid_slave_pos; local writes never enter it),
 *  - the dead primary's last known gtid_binlog_pos (facts.primaryGtid), which covers older
 *    domains the primary had even when this replica's received position was reset.
 * A domain entry covered by none of these is errant: the node alone has it.
 *
 * Entries carrying the node's OWN server_id are held to a stricter rule. A position keeps
 * only the last GTID per domain, so the primary at 0-1-105 "covers" seq 101 whatever server
 * wrote it; a local write 0-3-101 on a replica whose IO thread stopped at 0-1-100 would
 * slip through. For those entries the primary only counts when it holds the very same GTID
 * (this node was primary once and its writes replicated out).
 */
function findNodeErrant(node: NodeProbe, received: GtidPos, facts: ElectionFacts): GtidRange[] {
  const slave = parseGtidPos(node.gtidSlavePos ?? '');
  const primary = parseGtidPos(facts.primaryGtid ?? '');
  const found = new Map<number, GtidRange>();
  for (const text of [node.gtidBinlogPos, node.gtidCurrentPos]) {
    if (text === undefined) continue;
    const executed = parseGtidPos(text);
    const own: GtidPos = new Map();
    const foreign: GtidPos = new Map();
    for (const [d, e] of executed) (e.serverId === node.serverId ? own : foreign).set(d, e);
    const primaryIdentical: GtidPos = new Map();
    for (const [d, e] of own) if (sameEntry(primary.get(d), e)) primaryIdentical.set(d, e);
    const ranges = [
      ...findErrantGtids(foreign, [received, slave, primary]),
      ...findErrantGtids(own, [received, slave, primaryIdentical]),
    ];
    for (const r of ranges) if (!found.has(r.domain)) found.set(r.domain, r);
  }
  return [...found.values()].sort((x, y) => x.domain - y.domain);
}

function sameEntry(a: GtidEntry | undefined, b: GtidEntry): boolean {
  return a !== undefined && a.seq === b.seq && a.serverId === b.serverId;
}

function explain(
  a: Assessment,
  chosen: Assessment | undefined,
  policy: ElectionPolicy,
  behind: ReadonlyMap<string, number>,
  orderIndex: (id: string) => number,
): CandidateVerdict {
  const id = a.node.nodeId;
  const received = a.received === undefined ? undefined : formatGtidPos(a.received);
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
 * sources for the catch-up step before promotion. Compares received positions only
 * (Gtid_IO_Pos, else gtid_current_pos), so errant local writes are never offered as catch-up.
 *
 * @throws Error when candidateId is not a node of the snapshot or a position is unreadable.
 */
export function replicasAheadOf(snapshot: ClusterSnapshot, candidateId: string): ReplicaAhead[] {
  const candidate = snapshot.nodes.find((n) => n.nodeId === candidateId);
  if (candidate === undefined) {
    throw new Error(
      `Failed to find replicas ahead of ${candidateId}: not a node of cluster ${snapshot.cluster}`,
    );
  }
  const mine = receivedText(candidate);
  const out: ReplicaAhead[] = [];
  for (const n of snapshot.nodes) {
    if (n.nodeId === candidateId || n.nodeId === snapshot.primaryId || !n.reachable || !n.replication)
      continue;
    const theirs = receivedText(n);
    const missing = gtidMissing(mine, theirs);
    if (missing.length === 0) continue;
    out.push({
      nodeId: n.nodeId,
      receivedGtid: formatGtidPos(theirs),
      missing,
      missingCount: countMissingTransactions(mine, theirs),
    });
  }
  return out.sort((x, y) => y.missingCount - x.missingCount || x.nodeId.localeCompare(y.nodeId));
}

function receivedText(node: NodeProbe): string {
  const io = node.replication?.gtidIoPos.trim() ?? '';
  return io !== '' ? io : (node.gtidCurrentPos ?? '');
}

function clip(text: string, max = 160): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 3)}...` : flat;
}

/** A reachable replica holding transactions that did not come from the primary. */
export interface ErrantReplica {
  nodeId: string;
  /** For people: "domain 0: seq 101 (last 0-3-101)". */
  errant: string;
}

/**
 * Reachable replicas of the snapshot's primary with errant transactions (the same check as
 * the election's veto). Pedantic failovers abort when this is not empty, as mysqlfailover
 * does without --force: such a replica breaks replication (1950) once repointed.
 */
export function findErrantReplicas(snapshot: ClusterSnapshot, facts: ElectionFacts = {}): ErrantReplica[] {
  const out: ErrantReplica[] = [];
  for (const n of snapshot.nodes) {
    if (n.nodeId === snapshot.primaryId || !n.reachable || !n.replication) continue;
    try {
      const ranges = findNodeErrant(n, parseGtidPos(n.replication.gtidIoPos.trim()), facts);
      if (ranges.length > 0) out.push({ nodeId: n.nodeId, errant: describeGtidRanges(ranges) });
    } catch (err) {
      out.push({ nodeId: n.nodeId, errant: `GTID position unreadable: ${(err as Error).message}` });
    }
  }
  return out;
}
