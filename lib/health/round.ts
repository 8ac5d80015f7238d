/**
 * One round's reading of a cluster: the probes, and the pure helpers that turn them into what the
 * state table keeps. No state writes here (act.ts), no lease (lease.ts).
 */
import type { Login } from '../adapters/mysql/connection.ts';
import { probeNode } from '../adapters/mysql/probe.ts';
import type { ProbeConnections } from '../adapters/mysql/probe-connections.ts';
import type { ClusterConfig } from '../config/schema.ts';
import type { ClusterSnapshot } from '../core/types.ts';
import type { ClusterState } from '../ports.ts';

/**
 * One probe round: every node (or only `nodeIds`) concurrently, bounded by the connect/query
 * timeouts. The prober uses a node's probeHost/probePort when configured (its own network path).
 * `via` keeps each node's connection across rounds (same evidence: probe-connections.ts).
 */
export async function probeCluster(
  c: ClusterConfig,
  primaryId: string,
  admin: Login,
  takenAt: number,
  nodeIds?: readonly string[],
  beforeHeartbeat?: () => Promise<boolean>,
  via?: ProbeConnections,
): Promise<ClusterSnapshot> {
  const t = { connectTimeoutMs: c.detection.connectTimeoutMs, queryTimeoutMs: c.detection.queryTimeoutMs };
  const nodes = await Promise.all(
    c.nodes
      .filter((n) => nodeIds === undefined || nodeIds.includes(n.id))
      .map((n) => {
        const target = {
          nodeId: n.id,
          host: n.probeHost ?? n.host,
          port: n.probePort ?? n.port,
          isPrimary: n.id === primaryId,
          ...(beforeHeartbeat ? { beforeHeartbeat } : {}),
        };
        return via ? via.probe(target, admin, t) : probeNode(target, admin, t);
      }),
  );
  return { cluster: c.name, takenAt, primaryId, nodes };
}

/** The state item of a cluster never probed before. */
export function initialState(c: ClusterConfig, now: number): ClusterState {
  return {
    cluster: c.name,
    primaryId: c.primary,
    epoch: 0,
    analysis: 'Unknown',
    description: 'not probed yet',
    topology: [],
    counters: { probes: 0, stateChanges: 0, failovers: 0, blockedFailovers: 0 },
    updatedAt: now,
  };
}

/** Position and time of each node as last reached, for the state table (see summarize). */
export type LastSeen = Map<string, { gtid: string; seenAt: number; asPrimary: boolean }>;

/** Records where and when each reachable node was last seen. */
export function rememberSeen(lastSeen: LastSeen, s: ClusterSnapshot): void {
  for (const n of s.nodes) {
    if (!n.reachable || n.gtidCurrentPos === undefined) continue;
    const asPrimary = n.nodeId === s.primaryId;
    lastSeen.set(n.nodeId, {
      gtid: asPrimary ? (n.gtidBinlogPos ?? '') : n.gtidCurrentPos,
      seenAt: s.takenAt,
      asPrimary,
    });
  }
}

/**
 * The per-node summary stored with the health. An unreachable node keeps the position and time
 * it was last reached: the failover measures a candidate's lag against the dead primary's last
 * known position and when it was seen (issue 11, T4), which the round that found it dead lacks.
 */
export function summarize(s: ClusterSnapshot, lastSeen: LastSeen): ClusterState['topology'] {
  return s.nodes.map((n) => {
    const seen = lastSeen.get(n.nodeId);
    const primary = n.nodeId === s.primaryId;
    return {
      nodeId: n.nodeId,
      role: primary ? 'primary' : 'replica',
      reachable: n.reachable,
      ...(seen && seen.asPrimary === primary ? { gtid: seen.gtid, seenAt: seen.seenAt } : {}),
      ...(n.replication ? { lagSeconds: n.replication.secondsBehindMaster } : {}),
    };
  });
}
