import type { ClusterConfig } from '../config/schema.ts';
import { analyzeTopology } from '../core/analyze-topology.ts';
import type { NodeProbe } from '../core/types.ts';
import { probeCluster } from '../health/monitor.ts';
import type { ClusterState } from '../ports.ts';
import type { Runtime } from '../runtime.ts';

export interface NodeStatus {
  nodeId: string;
  endpoint: string;
  role: 'primary' | 'replica' | 'needs-rejoin' | 'unknown';
  reachable: boolean;
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
}

/** The health report: stored state plus a fresh probe of every node and the VIP holder. */
export async function clusterStatus(rt: Runtime, c: ClusterConfig): Promise<ClusterStatus> {
  const state = await rt.store.getClusterState(c.name);
  const primary = state?.primaryId ?? c.primary;
  const logins = await rt.logins(c);
  const snapshot = await probeCluster(c, primary, logins.admin, rt.now());
  const analysis = analyzeTopology(snapshot, [], {
    replicaLagAlertSeconds: c.detection.replicaLagAlertSeconds,
    longTransactionAlertSeconds: c.detection.longTransactionAlertSeconds,
    progressWindowMs: 1200,
  });
  const mover = await rt.vipMover(c).catch(() => undefined);
  const holder = await mover?.currentHolder().catch(() => undefined);
  const needsRejoin = state?.needsRejoin ?? [];
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
    ...(state?.blockedUntil && state.blockedUntil > rt.now()
      ? { blockedUntil: new Date(state.blockedUntil).toISOString() }
      : {}),
    needsRejoin,
    semiSync: semiSyncStatus(c, snapshot.nodes, primary),
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
  return {
    nodeId: n.nodeId,
    endpoint: `${cfg?.host}:${cfg?.port}`,
    role,
    reachable: n.reachable,
    ...(n.readOnly !== undefined ? { readOnly: n.readOnly } : {}),
    ...(n.gtidCurrentPos !== undefined
      ? { gtid: role === 'primary' ? n.gtidBinlogPos : n.gtidCurrentPos }
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
              ? `master ${n.semiSync.masterActive ? 'ON' : 'OFF'} (${n.semiSync.masterClients} clients)`
              : `slave ${n.semiSync.slaveActive ? 'ON' : 'OFF'}`,
        }
      : {}),
    ...(n.error ? { error: `${n.error.kind}: ${n.error.code}` } : {}),
  };
}

/** A fixed-width table for people (the JSON is the machine-readable form). */
export function formatStatus(s: ClusterStatus): string {
  const lines = [
    `cluster ${s.cluster}  state ${s.analysis} — ${s.description}`,
    `primary ${s.primary}  epoch ${s.epoch}  VIP ${s.vip.address ?? '-'} (${s.vip.provider}) on ${s.vip.holder ?? '?'}${s.vip.client ? `  clients use ${s.vip.client}` : ''}`,
  ];
  const head = ['node', 'role', 'endpoint', 'up', 'ro', 'gtid', 'io', 'sql', 'lag', 'semi-sync'];
  const rows = s.nodes.map((n) => [
    n.nodeId,
    n.role,
    n.endpoint,
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
  return lines.join('\n');
}
