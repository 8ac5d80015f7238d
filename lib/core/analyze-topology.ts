/**
 * Classifies one probe round of a cluster into named states (after orchestrator's analysis
 * codes), holistically: the primary is only "dead" when the prober cannot reach it AND no
 * reachable replica still receives from it. Pure: snapshots in, an Analysis out.
 */
import type { AnalyzeOptions } from './decision-types.ts';
import { mariadbGtidAlgebra, mysqlGtidAlgebra } from './gtid-set.ts';
import type { Analysis, AnalysisCode, ClusterSnapshot, Evidence, Finding, NodeProbe } from './types.ts';

/** Defaults matching the detection section of the config schema. */
export const DEFAULT_ANALYZE_OPTIONS: Readonly<AnalyzeOptions> = Object.freeze({
  replicaLagAlertSeconds: 5,
  longTransactionAlertSeconds: 60,
  progressWindowMs: 1200,
});

/**
 * The dispatch table: what each code means, whether it may lead to an automatic failover,
 * and its severity (the highest one present becomes the analysis code; dead states first).
 */
export const ANALYSIS_CODES: Readonly<
  Record<AnalysisCode, { description: string; actionable: boolean; severity: number }>
> = Object.freeze({
  DeadPrimaryAndSomeReplicas: {
    description: 'Primary and some replicas are down; no reachable replica receives from the primary',
    actionable: true,
    severity: 100,
  },
  DeadPrimary: {
    description: 'Primary is unreachable and no replica receives from it',
    actionable: true,
    severity: 90,
  },
  AllUnreachable: {
    description: 'No node is reachable: the prober is cut off, nothing can be decided',
    actionable: false,
    severity: 80,
  },
  UnreachablePrimary: {
    description: 'The prober cannot reach the primary, but replicas still receive from it',
    actionable: false,
    severity: 70,
  },
  PrimaryNotWritable: {
    description: 'Primary is reachable but read-only or its heartbeat write did not commit',
    actionable: false,
    severity: 60,
  },
  ReplicaDown: { description: 'A replica is unreachable', actionable: false, severity: 50 },
  ReplicationStopped: {
    description: 'A replica does not replicate (thread stopped, SQL error or not configured)',
    actionable: false,
    severity: 45,
  },
  SemiSyncDegraded: {
    description: 'Semi-sync is enabled on the primary but not active: commits are not protected',
    actionable: false,
    severity: 40,
  },
  ReplicaLagging: { description: 'A replica lags behind the primary', actionable: false, severity: 30 },
  LongRunningTransaction: {
    description: 'The primary has a long-running open transaction',
    actionable: false,
    severity: 20,
  },
  NoProblem: { description: 'No problem found', actionable: false, severity: 0 },
});

// MariaDB reports a refused reconnect as errno 2003 with `(111 "Connection refused")`, but a
// partitioned source also ends up as 2003, with `(110 "Connection timed out")`: errno 2003
// alone is not proof of a crash, so a timeout text vetoes it, and so does "no route to host"
// (113) or "network is unreachable" (101): a partition, not a dead process.
const REFUSED_TEXT = /connection refused|\(111\b/i;
const TIMEOUT_TEXT = /timed out|\(110\b|no route to host|\(113\b|network is unreachable|\(101\b/i;

/**
 * Analyses one probe round.
 *
 * @param snapshot the round to classify.
 * @param history earlier rounds of the same cluster, oldest first (may be empty); used to
 *   tell whether replicas still receive from the primary (heartbeat counter or Gtid_IO_Pos moved).
 * @param opts alert thresholds and the progress window; see DEFAULT_ANALYZE_OPTIONS.
 */
export function analyzeTopology(
  snapshot: ClusterSnapshot,
  history: readonly ClusterSnapshot[],
  opts: AnalyzeOptions = DEFAULT_ANALYZE_OPTIONS,
): Analysis {
  const primary = snapshot.nodes.find((n) => n.nodeId === snapshot.primaryId);
  const replicas = snapshot.nodes.filter((n) => n.nodeId !== snapshot.primaryId);
  const findings: Finding[] = [];
  let evidence: Evidence | undefined;

  if (primary?.reachable) {
    findings.push(...inspectPrimary(primary, opts));
    for (const r of replicas) findings.push(...inspectReplica(r, opts, false));
  } else {
    const reachable = replicas.filter((r) => r.reachable);
    const primaryId = snapshot.primaryId;
    if (reachable.length === 0) {
      findings.push({
        code: 'AllUnreachable',
        description: `No node of cluster ${snapshot.cluster} is reachable (primary ${primaryId}: ${describeProbeError(primary)})`,
      });
    } else {
      findings.push(...inspectDeadPrimary(snapshot, primary, reachable, history, opts));
      if (findings[0]?.code === 'DeadPrimary' || findings[0]?.code === 'DeadPrimaryAndSomeReplicas') {
        evidence = isCrashSeenByAll(primary, reachable) ? 'unambiguous' : 'ambiguous';
      }
      for (const r of replicas) findings.push(...inspectReplica(r, opts, true));
    }
  }

  findings.sort((a, b) => ANALYSIS_CODES[b.code].severity - ANALYSIS_CODES[a.code].severity);
  const top = findings[0];
  const code: AnalysisCode = top?.code ?? 'NoProblem';
  const analysis: Analysis = {
    cluster: snapshot.cluster,
    takenAt: snapshot.takenAt,
    code,
    description: top?.description ?? ANALYSIS_CODES.NoProblem.description,
    actionable: ANALYSIS_CODES[code].actionable,
    findings,
    primaryId: snapshot.primaryId,
  };
  if (evidence !== undefined && analysis.actionable) analysis.evidence = evidence;
  return analysis;
}

function inspectDeadPrimary(
  snapshot: ClusterSnapshot,
  primary: NodeProbe | undefined,
  reachable: readonly NodeProbe[],
  history: readonly ClusterSnapshot[],
  opts: AnalyzeOptions,
): Finding[] {
  const primaryId = snapshot.primaryId;
  const why = describeProbeError(primary);
  // An auth error means a server answered the handshake: it is alive, only our account is wrong.
  if (primary?.error?.kind === 'auth') {
    return [
      {
        code: 'UnreachablePrimary',
        description: `Primary ${primaryId} answers but refuses the monitor account (${why})`,
        nodeId: primaryId,
      },
    ];
  }
  // Each replica's silence counts only once it is longer than its source may legitimately stay
  // silent: with MariaDB's default heartbeat period (slave_net_timeout/2 = 30 s) a quiet primary
  // sends nothing for 30 s, so 2 s of silence says nothing about it.
  const receiving = reachable
    .map((r) => ({ r, baseline: findBaseline(snapshot, history, silenceWindowMs(r, opts)) }))
    .filter(({ r, baseline }) => isReceiving(r, baseline));
  if (receiving.length > 0) {
    const names = receiving.map(({ r }) => r.nodeId).join(', ');
    const slow = receiving.map(({ r }) => r).filter((r) => silenceWindowMs(r, opts) > opts.progressWindowMs);
    const period = slow[0]?.replication?.heartbeatPeriodSeconds;
    const detail =
      slow.length > 0
        ? ` (or may: heartbeat period ${period} s on ${slow.map((r) => r.nodeId).join(', ')}, longer than the silence seen, so a quiet primary is indistinguishable from a dead one; set MASTER_HEARTBEAT_PERIOD=1)`
        : '';
    return [
      {
        code: 'UnreachablePrimary',
        description: `Primary ${primaryId} is unreachable from the prober (${why}) but ${names} still receive from it${detail}`,
        nodeId: primaryId,
      },
    ];
  }
  const down = snapshot.nodes.filter((n) => n.nodeId !== primaryId && !n.reachable).map((n) => n.nodeId);
  const notReceiving = `no reachable replica (${reachable.map((r) => r.nodeId).join(', ')}) receives from it`;
  if (down.length > 0) {
    return [
      {
        code: 'DeadPrimaryAndSomeReplicas',
        description: `Primary ${primaryId} is unreachable (${why}), ${notReceiving}, and ${down.join(', ')} ${down.length === 1 ? 'is' : 'are'} down too`,
        nodeId: primaryId,
      },
    ];
  }
  return [
    {
      code: 'DeadPrimary',
      description: `Primary ${primaryId} is unreachable (${why}) and ${notReceiving}`,
      nodeId: primaryId,
    },
  ];
}

/**
 * How long a replica must have received nothing before that silence counts as evidence: the
 * progress window, or 1.2 heartbeat periods when its period is longer (a quiet source sends a
 * heartbeat once per period, nothing in between).
 */
export function silenceWindowMs(replica: NodeProbe, opts: AnalyzeOptions): number {
  const period = replica.replication?.heartbeatPeriodSeconds;
  const byPeriod = typeof period === 'number' && period > 0 ? Math.ceil(period * 1200) : 0;
  return Math.max(opts.progressWindowMs, byPeriod);
}

/** The newest earlier round of the same cluster and primary that is at least `windowMs` old. */
function findBaseline(
  snapshot: ClusterSnapshot,
  history: readonly ClusterSnapshot[],
  windowMs: number,
): ClusterSnapshot | undefined {
  let best: ClusterSnapshot | undefined;
  for (const h of history) {
    if (h.cluster !== snapshot.cluster || h.primaryId !== snapshot.primaryId) continue;
    if (h.takenAt > snapshot.takenAt - windowMs) continue;
    if (best === undefined || h.takenAt > best.takenAt) best = h;
  }
  return best;
}

/**
 * A replica receives from the primary when its IO thread is 'Yes' and something arrived since
 * the baseline. Without a baseline a 'Yes' gets the benefit of the doubt: that cannot delay a
 * crash (a crashed source turns IO threads to Connecting within ~0.1 s), it only makes the
 * first round of a hang read as UnreachablePrimary, the safe side.
 */
function isReceiving(replica: NodeProbe, baseline: ClusterSnapshot | undefined): boolean {
  const rep = replica.replication;
  if (rep === undefined || rep.ioState !== 'Yes') return false;
  const before = baseline?.nodes.find((n) => n.nodeId === replica.nodeId);
  const old = before?.reachable ? before.replication : undefined;
  if (old === undefined) return true;
  // "Changed", not only "grew": the counter restarts at 0 when the IO thread reconnects,
  // which itself proves the source answered.
  const heartbeatsMoved =
    rep.heartbeatsReceived !== null &&
    old.heartbeatsReceived !== null &&
    rep.heartbeatsReceived !== old.heartbeatsReceived;
  return heartbeatsMoved || normalizeGtid(rep.gtidIoPos) !== normalizeGtid(old.gtidIoPos);
}

/**
 * Since when no replica has received anything from the primary: the `takenAt` of the oldest
 * round of the unbroken run of rounds (ending with `snapshot`, same cluster and primary) in
 * which every replica reachable now was reachable and showed either no running IO thread or
 * exactly the received positions (heartbeat counter, Gtid_IO_Pos) it shows now. The last
 * received event is older than the returned time, so a window counted from it never starts
 * before the replicas really went quiet.
 *
 * @returns undefined when no replica is reachable (nothing can be said).
 */
export function findQuietSince(
  snapshot: ClusterSnapshot,
  history: readonly ClusterSnapshot[],
): number | undefined {
  const current = snapshot.nodes.filter((n) => n.nodeId !== snapshot.primaryId && n.reachable);
  if (current.length === 0) return undefined;
  const earlier = history
    .filter(
      (h) =>
        h.cluster === snapshot.cluster && h.primaryId === snapshot.primaryId && h.takenAt < snapshot.takenAt,
    )
    .sort((a, b) => b.takenAt - a.takenAt);
  let since = snapshot.takenAt;
  for (const h of earlier) {
    const quiet = current.every((now) => {
      const then = h.nodes.find((n) => n.nodeId === now.nodeId);
      if (!then?.reachable || then.replication === undefined) return false;
      if (then.replication.ioState !== 'Yes') return true;
      const rep = now.replication;
      return (
        rep !== undefined &&
        rep.heartbeatsReceived === then.replication.heartbeatsReceived &&
        normalizeGtid(rep.gtidIoPos) === normalizeGtid(then.replication.gtidIoPos)
      );
    });
    if (!quiet) break;
    since = h.takenAt;
  }
  return since;
}

/** Canonical text of a MariaDB position or a MySQL set (the server's multi-line form included). */
function normalizeGtid(text: string): string {
  for (const algebra of [mariadbGtidAlgebra, mysqlGtidAlgebra]) {
    try {
      return algebra.normalize(text);
    } catch {
      // not this notation
    }
  }
  return text.trim();
}

/**
 * A crash, seen by everyone: the prober's connection was REFUSED (an RST from a live host with
 * no listener: the process is gone; a partition or a hang gives timeouts, never a refusal) AND
 * every reachable replica's IO thread has lost its source at the same time without a timeout.
 * Right after a kill -9 a replica reports 2013 "Lost connection" or errno 0 while reconnecting,
 * and 2003 (111 refused) only after its first retry (MASTER_CONNECT_RETRY, ~1 s): waiting for
 * 2003 would cost a second for nothing. A timeout text (110, "timed out") still vetoes.
 */
function isCrashSeenByAll(primary: NodeProbe | undefined, reachable: readonly NodeProbe[]): boolean {
  if (primary?.error?.kind !== 'refused') return false;
  if (reachable.length === 0) return false;
  return reachable.every((r) => {
    const rep = r.replication;
    if (rep === undefined || rep.ioState === 'Yes') return false;
    if (REFUSED_TEXT.test(rep.lastIoError)) return true;
    return !TIMEOUT_TEXT.test(rep.lastIoError);
  });
}

function inspectPrimary(primary: NodeProbe, opts: AnalyzeOptions): Finding[] {
  const out: Finding[] = [];
  const id = primary.nodeId;
  if (primary.readOnly === true) {
    out.push({ code: 'PrimaryNotWritable', description: `Primary ${id} has read_only=ON`, nodeId: id });
  } else if (primary.writable === false) {
    out.push({
      code: 'PrimaryNotWritable',
      description: `The heartbeat write on primary ${id} did not commit`,
      nodeId: id,
    });
  }
  const ss = primary.semiSync;
  if (ss?.masterEnabled && (!ss.masterActive || ss.masterClients === 0)) {
    const state = ss.masterActive ? 'active' : 'OFF (fell back to async)';
    out.push({
      code: 'SemiSyncDegraded',
      description: `Semi-sync is enabled on primary ${id} but its status is ${state} with ${ss.masterClients} semi-sync replica(s)`,
      nodeId: id,
    });
  }
  if (
    primary.longestTrxSeconds !== undefined &&
    primary.longestTrxSeconds > opts.longTransactionAlertSeconds
  ) {
    out.push({
      code: 'LongRunningTransaction',
      description: `Primary ${id} has a transaction open for ${primary.longestTrxSeconds} s (alert above ${opts.longTransactionAlertSeconds} s)`,
      nodeId: id,
    });
  }
  return out;
}

/**
 * Per-replica findings. With the primary down, IO-thread states and heartbeat lag are
 * consequences of that, not separate problems, so only SQL-side trouble is reported.
 */
function inspectReplica(replica: NodeProbe, opts: AnalyzeOptions, primaryDown: boolean): Finding[] {
  const id = replica.nodeId;
  if (!replica.reachable) {
    return [
      {
        code: 'ReplicaDown',
        description: `Replica ${id} is unreachable (${describeProbeError(replica)})`,
        nodeId: id,
      },
    ];
  }
  const rep = replica.replication;
  if (rep === undefined) {
    return [
      { code: 'ReplicationStopped', description: `Node ${id} is not configured as a replica`, nodeId: id },
    ];
  }
  const out: Finding[] = [];
  const problems: string[] = [];
  if (!primaryDown && rep.ioState !== 'Yes') {
    const err = rep.lastIoErrno !== 0 ? ` (${rep.lastIoErrno}: ${clip(rep.lastIoError)})` : '';
    problems.push(`IO thread ${rep.ioState}${err}`);
  }
  if (rep.lastSqlErrno !== 0)
    problems.push(`SQL thread error ${rep.lastSqlErrno}: ${clip(rep.lastSqlError)}`);
  else if (!rep.sqlRunning) problems.push('SQL thread stopped');
  if (problems.length > 0) {
    out.push({
      code: 'ReplicationStopped',
      description: `Replica ${id}: ${problems.join('; ')}`,
      nodeId: id,
    });
  }
  if (!primaryDown) {
    const limit = opts.replicaLagAlertSeconds;
    const sbm = rep.secondsBehindMaster;
    const hb = replica.heartbeatLagMs;
    if (sbm !== null && sbm > limit) {
      out.push({
        code: 'ReplicaLagging',
        description: `Replica ${id} is ${sbm} s behind (Seconds_Behind_Master, alert above ${limit} s)`,
        nodeId: id,
      });
    } else if (hb !== undefined && hb !== null && hb > limit * 1000) {
      out.push({
        code: 'ReplicaLagging',
        description: `Replica ${id} is ${(hb / 1000).toFixed(1)} s behind (heartbeat, alert above ${limit} s)`,
        nodeId: id,
      });
    }
  }
  return out;
}

function describeProbeError(node: NodeProbe | undefined): string {
  if (node === undefined) return 'not probed';
  if (node.error === undefined) return 'no answer';
  return `${node.error.kind} ${node.error.code}: ${clip(node.error.message)}`;
}

function clip(text: string, max = 160): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 3)}...` : flat;
}
