import { operationWords } from '../adapters/mysql/dialect/vocabulary.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { analyzeTopology } from '../core/analyze-topology.ts';
import { clusterGtidAlgebra } from '../core/elect-candidate.ts';
import type { ClusterSnapshot, NodeProbe } from '../core/types.ts';
import { probeCluster } from '../health/monitor.ts';
import type { ClusterState } from '../ports.ts';
import type { Runtime } from '../runtime.ts';

export interface NodeStatus {
  nodeId: string;
  endpoint: string;
  role: 'primary' | 'replica' | 'needs-rejoin' | 'unknown';
  reachable: boolean;
  /** "MariaDB 10.11.6" / "MySQL 8.4.3", from @@version; undefined when the node did not answer. */
  server?: string;
  readOnly?: boolean;
  gtid?: string;
  io?: string;
  sql?: string;
  lagSeconds?: number | null;
  semiSync?: string;
  error?: string;
}

export interface ClusterStatus {
  cluster: string;
  analysis: string;
  description: string;
  primary: string;
  epoch: number;
  vip: { provider: string; address?: string; holder?: string | undefined; client?: string };
  nodes: NodeStatus[];
  failoverInProgress?: ClusterState['failoverInProgress'];
  lastFailover?: ClusterState['lastFailover'];
  blockedUntil?: string;
  needsRejoin: string[];
  /** Whether commits on the primary are protected by semi-sync (policy failover.semiSync), and why not. */
  semiSync: { policy: boolean; protecting: boolean; note?: string };
  /** Set when the nodes mix MariaDB and MySQL: no failover can compare their GTIDs. */
  mixedFlavors?: string;
}

/** What {@link describeClusterStatus} reports on: the stored state, one probe round, the VIP holder. */
export interface StatusInput {
  state: ClusterState | undefined;
  snapshot: ClusterSnapshot;
  holder: string | undefined;
  now: number;
}

/** The health report: stored state plus a fresh probe of every node and the VIP holder. */
export async function clusterStatus(rt: Runtime, c: ClusterConfig): Promise<ClusterStatus> {
  const state = await rt.store.getClusterState(c.name);
  const primary = state?.primaryId ?? c.primary;
  const logins = await rt.logins(c);
  const snapshot = await probeCluster(c, primary, logins.admin, rt.now());
  const mover = await rt.vipMover(c).catch(() => undefined);
  const holder = await mover?.currentHolder().catch(() => undefined);
  return describeClusterStatus(c, { state, snapshot, holder, now: rt.now() });
}

/**
 * The health report from facts already read (pure): the same for MariaDB and MySQL nodes, whose
 * probes carry their flavor's GTID text (gtid_binlog_pos / gtid_executed) in the same fields.
 */
export function describeClusterStatus(c: ClusterConfig, input: StatusInput): ClusterStatus {
  const { state, snapshot, holder } = input;
  const primary = snapshot.primaryId;
  const analysis = analyzeTopology(snapshot, [], {
    replicaLagAlertSeconds: c.detection.replicaLagAlertSeconds,
    longTransactionAlertSeconds: c.detection.longTransactionAlertSeconds,
    progressWindowMs: 1200,
  });
  const needsRejoin = state?.needsRejoin ?? [];
  const gtid = clusterGtidAlgebra(snapshot.nodes);
  return {
    cluster: c.name,
    analysis: analysis.code,
    description: analysis.description,
    primary,
    epoch: state?.epoch ?? 0,
    vip: {
      provider: c.vip.provider,
      ...(c.vip.provider !== 'none' ? { address: c.vip.address } : {}),
      holder,
      ...(c.clientEndpoint ? { client: `${c.clientEndpoint.host}:${c.clientEndpoint.port}` } : {}),
    },
    nodes: snapshot.nodes.map((n) => nodeStatus(c, n, primary, needsRejoin)),
    ...(state?.failoverInProgress ? { failoverInProgress: state.failoverInProgress } : {}),
    ...(state?.lastFailover ? { lastFailover: state.lastFailover } : {}),
    ...(state?.blockedUntil && state.blockedUntil > input.now
      ? { blockedUntil: new Date(state.blockedUntil).toISOString() }
      : {}),
    needsRejoin,
    semiSync: semiSyncStatus(c, snapshot.nodes, primary),
    ...('mixed' in gtid ? { mixedFlavors: gtid.mixed } : {}),
  };
}

function semiSyncStatus(c: ClusterConfig, nodes: NodeProbe[], primary: string): ClusterStatus['semiSync'] {
  const policy = c.failover.semiSync;
  const p = nodes.find((n) => n.nodeId === primary);
  const ss = p?.semiSync;
  const protecting = ss?.masterEnabled === true && ss.masterActive && ss.masterClients > 0;
  if (!policy || protecting || !p?.reachable) return { policy, protecting };
  const attached = nodes.filter(
    (n) => n.nodeId !== primary && n.reachable && n.replication?.ioState === 'Yes',
  ).length;
  const note =
    attached === 0
      ? `no replica can acknowledge: commits on ${primary} are NOT protected by semi-sync until a replica is attached (rejoin one)`
      : `semi-sync on ${primary} is ${ss?.masterEnabled ? 'enabled but not active' : 'OFF'} with ${attached} replica(s) attached: commits are NOT protected`;
  return { policy, protecting, note };
}

function nodeStatus(c: ClusterConfig, n: NodeProbe, primary: string, needsRejoin: string[]): NodeStatus {
  const cfg = c.nodes.find((x) => x.id === n.nodeId);
  const role = n.nodeId === primary ? 'primary' : needsRejoin.includes(n.nodeId) ? 'needs-rejoin' : 'replica';
  const words = operationWords(n.version);
  return {
    nodeId: n.nodeId,
    endpoint: `${cfg?.host}:${cfg?.port}`,
    role,
    reachable: n.reachable,
    ...(words !== undefined ? { server: words.server } : n.version ? { server: n.version } : {}),
    ...(n.readOnly !== undefined ? { readOnly: n.readOnly } : {}),
    // The primary's binlog position (MySQL: gtid_executed, one line), a replica's executed set.
    ...(n.gtidCurrentPos !== undefined
      ? { gtid: oneLine((role === 'primary' ? n.gtidBinlogPos : n.gtidCurrentPos) ?? '') }
      : {}),
    ...(n.replication
      ? {
          io: n.replication.ioState,
          sql: n.replication.sqlRunning ? 'Yes' : 'No',
          lagSeconds: n.replication.secondsBehindMaster,
        }
      : {}),
    ...(n.semiSync
      ? {
          semiSync:
            role === 'primary'
              ? `${words?.semiSyncSource ?? 'master'} ${n.semiSync.masterActive ? 'ON' : 'OFF'} (${n.semiSync.masterClients} clients)`
              : `${words?.semiSyncReplica ?? 'slave'} ${n.semiSync.slaveActive ? 'ON' : 'OFF'}`,
        }
      : {}),
    ...(n.error ? { error: `${n.error.kind}: ${n.error.code}` } : {}),
  };
}

/** GTID text as one line: MySQL prints sets with ",\n" between source UUIDs. */
function oneLine(gtid: string): string {
  return gtid.replace(/,\s+/g, ',').trim();
}

/** A fixed-width table for people (the JSON is the machine-readable form). */
export function formatStatus(s: ClusterStatus): string {
  const lines = [
    `cluster ${s.cluster}  state ${s.analysis} — ${s.description}`,
    `primary ${s.primary}  epoch ${s.epoch}  VIP ${s.vip.address ?? '-'} (${s.vip.provider}) on ${s.vip.holder ?? '?'}${s.vip.client ? `  clients use ${s.vip.client}` : ''}`,
  ];
  const head = ['node', 'role', 'endpoint', 'server', 'up', 'ro', 'gtid', 'io', 'sql', 'lag', 'semi-sync'];
  const rows = s.nodes.map((n) => [
    n.nodeId,
    n.role,
    n.endpoint,
    n.server ?? '-',
    n.reachable ? 'yes' : `NO (${n.error ?? ''})`,
    n.readOnly === undefined ? '-' : n.readOnly ? 'ON' : 'OFF',
    n.gtid ?? '-',
    n.io ?? '-',
    n.sql ?? '-',
    n.lagSeconds === undefined || n.lagSeconds === null ? '-' : String(n.lagSeconds),
    n.semiSync ?? '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) =>
    r
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  lines.push(fmt(head), ...rows.map(fmt));
  if (s.failoverInProgress) lines.push(`failover in progress: ${s.failoverInProgress.executionName}`);
  if (s.lastFailover)
    lines.push(
      `last failover: epoch ${s.lastFailover.epoch} ${s.lastFailover.status} ${s.lastFailover.from} -> ${s.lastFailover.to ?? '-'} in ${s.lastFailover.endedAt - s.lastFailover.startedAt} ms${s.lastFailover.error ? ` (${s.lastFailover.error.name})` : ''}`,
    );
  if (s.blockedUntil) lines.push(`automatic failover blocked until ${s.blockedUntil} (acknowledge to clear)`);
  if (s.needsRejoin.length) lines.push(`needs rejoin: ${s.needsRejoin.join(', ')}`);
  if (s.semiSync.note) lines.push(`semi-sync: ${s.semiSync.note}`);
  if (s.mixedFlavors) lines.push(`flavors: ${s.mixedFlavors}; check refuses such a cluster`);
  return lines.join('\n');
}
