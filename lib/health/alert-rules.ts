/**
 * The alert rules operators of two-node HA run, evaluated on one probe round:
 *
 *   ReplicaIoStopped      a replica's IO thread is not running (while its primary is up)
 *   ReplicaSqlStopped     a replica's SQL thread is stopped or failed
 *   SemiSyncInactive      semi-sync is enabled on the primary but not active / no semi-sync replica,
 *                         or the policy wants it and it is off because no replica can acknowledge
 *   ReplicaLagging        a replica lags more than detection.replicaLagAlertSeconds
 *   LongTransaction       the primary has a transaction open longer than detection.longTransactionAlertSeconds
 *   (role / health-state change: the monitor notifies on every analysis or primary change)
 *
 * Each active alert has a stable key (`rule:node`), so the monitor notifies when one is raised
 * or cleared, not on every round. Pure: a snapshot in, alerts and metric values out.
 */
import type { Analysis, ClusterSnapshot, NodeProbe } from '../core/types.ts';

export type AlertRule =
  | 'ReplicaIoStopped'
  | 'ReplicaSqlStopped'
  | 'SemiSyncInactive'
  | 'ReplicaLagging'
  | 'LongTransaction';

export interface ActiveAlert {
  rule: AlertRule;
  nodeId: string;
  /** `rule:node`, stable across rounds. */
  key: string;
  description: string;
}

export interface AlertThresholds {
  replicaLagAlertSeconds: number;
  longTransactionAlertSeconds: number;
  /** failover.semiSync: the primary should protect commits with semi-sync. */
  semiSyncPolicy?: boolean;
}

/** Per-cluster indicator values, one per rule (the CloudWatch alarms watch these). */
export interface RuleIndicators {
  ReplicasIoStopped: number;
  ReplicasSqlStopped: number;
  SemiSyncInactive: number;
  ReplicasLagging: number;
  LongTransactionOpen: number;
}

/**
 * Evaluates the rules on one round. Like the analysis, IO-thread and lag rules are silent
 * while the primary itself is unreachable: they are consequences, reported as DeadPrimary etc.
 */
export function evaluateAlertRules(
  snapshot: ClusterSnapshot,
  _analysis: Analysis,
  t: AlertThresholds,
): ActiveAlert[] {
  const out: ActiveAlert[] = [];
  const add = (rule: AlertRule, nodeId: string, description: string) =>
    out.push({ rule, nodeId, key: `${rule}:${nodeId}`, description });
  const primary = snapshot.nodes.find((n) => n.nodeId === snapshot.primaryId);
  const primaryUp = primary?.reachable === true;
  for (const n of snapshot.nodes) {
    if (n.nodeId === snapshot.primaryId || !n.reachable) continue;
    const rep = n.replication;
    if (primaryUp && (rep === undefined || rep.ioState !== 'Yes')) {
      const why =
        rep === undefined
          ? 'not configured as a replica'
          : `${rep.ioState}${rep.lastIoErrno ? ` (${rep.lastIoErrno}: ${rep.lastIoError.slice(0, 120)})` : ''}`;
      add('ReplicaIoStopped', n.nodeId, `Replica ${n.nodeId}: IO thread ${why}`);
    }
    if (rep !== undefined && (!rep.sqlRunning || rep.lastSqlErrno !== 0)) {
      const why = rep.lastSqlErrno
        ? `error ${rep.lastSqlErrno}: ${rep.lastSqlError.slice(0, 120)}`
        : 'stopped';
      add('ReplicaSqlStopped', n.nodeId, `Replica ${n.nodeId}: SQL thread ${why}`);
    }
    const lag = lagSeconds(n);
    if (primaryUp && lag !== undefined && lag > t.replicaLagAlertSeconds) {
      add(
        'ReplicaLagging',
        n.nodeId,
        `Replica ${n.nodeId} is ${lag.toFixed(1)} s behind (alert above ${t.replicaLagAlertSeconds} s)`,
      );
    }
  }
  if (primary?.reachable) {
    const ss = primary.semiSync;
    if (ss?.masterEnabled && (!ss.masterActive || ss.masterClients === 0)) {
      add(
        'SemiSyncInactive',
        primary.nodeId,
        `Semi-sync is enabled on primary ${primary.nodeId} but not active (status ${ss.masterActive ? 'ON' : 'OFF'}, ${ss.masterClients} semi-sync replica(s))`,
      );
    } else if (t.semiSyncPolicy && ss && !ss.masterEnabled) {
      // A failover to a node with no replica left to acknowledge (a 2-node cluster) leaves it
      // off on purpose; until a replica is attached (rejoin) commits are not protected.
      const replicating = snapshot.nodes.filter(
        (n) => n.nodeId !== primary.nodeId && n.reachable && n.replication?.ioState === 'Yes',
      ).length;
      add(
        'SemiSyncInactive',
        primary.nodeId,
        `Semi-sync is OFF on primary ${primary.nodeId} although failover.semiSync is on: ${replicating === 0 ? 'no replica can acknowledge' : `${replicating} replica(s) replicate but none acknowledges`}; acknowledged commits are not protected until a replica is attached (rejoin)`,
      );
    }
    const trx = primary.longestTrxSeconds;
    if (trx !== undefined && trx > t.longTransactionAlertSeconds) {
      add(
        'LongTransaction',
        primary.nodeId,
        `Primary ${primary.nodeId} has a transaction open for ${trx} s (alert above ${t.longTransactionAlertSeconds} s)`,
      );
    }
  }
  return out;
}

/** The indicator metrics of a set of active alerts. */
export function countIndicators(alerts: readonly ActiveAlert[]): RuleIndicators {
  const count = (r: AlertRule) => alerts.filter((a) => a.rule === r).length;
  return {
    ReplicasIoStopped: count('ReplicaIoStopped'),
    ReplicasSqlStopped: count('ReplicaSqlStopped'),
    SemiSyncInactive: count('SemiSyncInactive'),
    ReplicasLagging: count('ReplicaLagging'),
    LongTransactionOpen: count('LongTransaction'),
  };
}

/** Seconds behind, as the analysis reads it: Seconds_Behind_Master or the heartbeat-table lag, the larger. */
export function lagSeconds(n: NodeProbe): number | undefined {
  const sbm = n.replication?.secondsBehindMaster;
  const hb = n.heartbeatLagMs;
  const values = [
    ...(sbm !== null && sbm !== undefined ? [sbm] : []),
    ...(hb !== null && hb !== undefined ? [hb / 1000] : []),
  ];
  return values.length ? Math.max(...values) : undefined;
}
