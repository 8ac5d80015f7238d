/**
 * CloudWatch metrics in Embedded Metric Format: log lines that CloudWatch turns into metrics,
 * no API call. Rounds are folded into a window (worst value per metric) and flushed every
 * METRICS_WINDOW_MS or at once on a change, so a transient state between two flushes still
 * shows (Minimum of a 0/1 gauge, Maximum of a lag) and a 1-minute alarm never misses it.
 *
 * Per cluster and node (dimensions Cluster, Node): NodeReachable, ReplicaIoRunning,
 * ReplicaSqlRunning, ReplicaLagSeconds.
 * Per cluster (dimensions Cluster) and across clusters (no dimension; the alarms in
 * serverless.yml watch these): ClusterHealthy, StateChanges, LongestTransactionSeconds, ProbeRoundMs
 * (the longest probe round, for the dashboard), and one
 * indicator per alert rule: ReplicasIoStopped, ReplicasSqlStopped, SemiSyncInactive,
 * ReplicasLagging, LongTransactionOpen.
 */
import type { Analysis, ClusterSnapshot } from '../core/types.ts';
import { type ActiveAlert, countIndicators, lagSeconds, type RuleIndicators } from './alert-rules.ts';

export const METRICS_NAMESPACE = 'ServerlessMysqlFailover';

/**
 * How many metrics a cluster costs (each custom metric is billed per month, per dimension value):
 * - 'node': every metric per cluster and per node (about 18 for 3 nodes, $5.40 a cluster-month);
 * - 'cluster': ClusterHealthy and ProbeRoundMs per cluster ($0.60);
 * - 'deployment' (the default): none per cluster; the dashboard reads them from the log lines.
 * Every level emits the dimensionless alarm metrics, and every value stays in the EMF log line
 * with its Cluster (and Node) property: CloudWatch Logs Insights or a metric filter reads them
 * when a cluster needs a closer look.
 */
export type MetricDetail = 'node' | 'cluster' | 'deployment';
export const METRIC_DETAILS: readonly MetricDetail[] = ['node', 'cluster', 'deployment'];
/**
 * Under the alarms' 60 s period, so every minute has a datapoint (TreatMissingData notBreaching
 * would otherwise clear a standing alarm); a change flushes at once. 30 s instead of 10 s cuts
 * the EMF log bytes, which scale with clusters, by three.
 */
export const METRICS_WINDOW_MS = 30_000;

/** The per-rule indicator metrics and the state-change counter, as the alarms name them. */
export const ALARM_METRICS = [
  'ReplicasIoStopped',
  'ReplicasSqlStopped',
  'SemiSyncInactive',
  'ReplicasLagging',
  'LongTransactionOpen',
  'StateChanges',
] as const;

interface NodeWindow {
  reachable: number;
  ioRunning?: number;
  sqlRunning?: number;
  lagSeconds?: number;
}

/** Folds rounds of one cluster and renders them as EMF log entries. */
export class MetricsWindow {
  private nodes = new Map<string, NodeWindow>();
  private indicators: RuleIndicators | undefined;
  private healthy = 1;
  private stateChanges = 0;
  private longestTrx = 0;
  private openedAt: number | undefined;
  private roundMs = 0;

  constructor(
    private readonly cluster: string,
    private readonly detail: MetricDetail = 'node',
  ) {}

  /** Adds one round. `changed` counts role / health-state changes seen in this round. */
  add(
    snapshot: ClusterSnapshot,
    analysis: Analysis,
    alerts: readonly ActiveAlert[],
    changed: number,
    roundMs = 0,
  ): void {
    this.openedAt ??= snapshot.takenAt;
    this.roundMs = Math.max(this.roundMs, roundMs);
    for (const n of snapshot.nodes) {
      const w = this.nodes.get(n.nodeId) ?? { reachable: 1 };
      w.reachable = Math.min(w.reachable, n.reachable ? 1 : 0);
      if (n.nodeId !== snapshot.primaryId && n.replication) {
        w.ioRunning = Math.min(w.ioRunning ?? 1, n.replication.ioState === 'Yes' ? 1 : 0);
        w.sqlRunning = Math.min(w.sqlRunning ?? 1, n.replication.sqlRunning ? 1 : 0);
        const lag = lagSeconds(n);
        if (lag !== undefined) w.lagSeconds = Math.max(w.lagSeconds ?? 0, lag);
      }
      this.nodes.set(n.nodeId, w);
    }
    const primary = snapshot.nodes.find((n) => n.nodeId === snapshot.primaryId);
    this.longestTrx = Math.max(this.longestTrx, primary?.longestTrxSeconds ?? 0);
    const ind = countIndicators(alerts);
    this.indicators = this.indicators
      ? (Object.fromEntries(
          Object.entries(ind).map(([k, v]) => [
            k,
            Math.max(v, this.indicators?.[k as keyof RuleIndicators] ?? 0),
          ]),
        ) as unknown as RuleIndicators)
      : ind;
    this.healthy = Math.min(this.healthy, analysis.code === 'NoProblem' ? 1 : 0);
    this.stateChanges += changed;
  }

  /** Whether the window is due (or `force`, on a change). */
  due(now: number, force = false): boolean {
    return this.openedAt !== undefined && (force || now - this.openedAt >= METRICS_WINDOW_MS);
  }

  /** Renders the window as EMF entries (one per node, one for the cluster) and starts a new one. */
  flush(now: number): Record<string, unknown>[] {
    if (this.openedAt === undefined || this.indicators === undefined) return [];
    const out: Record<string, unknown>[] = [];
    for (const [node, w] of this.nodes) {
      const metrics = [
        { Name: 'NodeReachable', Unit: 'Count' },
        ...(w.ioRunning !== undefined
          ? [
              { Name: 'ReplicaIoRunning', Unit: 'Count' },
              { Name: 'ReplicaSqlRunning', Unit: 'Count' },
            ]
          : []),
        ...(w.lagSeconds !== undefined ? [{ Name: 'ReplicaLagSeconds', Unit: 'Seconds' }] : []),
      ];
      out.push({
        _aws: {
          Timestamp: now,
          CloudWatchMetrics:
            this.detail === 'node'
              ? [{ Namespace: METRICS_NAMESPACE, Dimensions: [['Cluster', 'Node']], Metrics: metrics }]
              : [],
        },
        Cluster: this.cluster,
        Node: node,
        NodeReachable: w.reachable,
        ...(w.ioRunning !== undefined
          ? { ReplicaIoRunning: w.ioRunning, ReplicaSqlRunning: w.sqlRunning }
          : {}),
        ...(w.lagSeconds !== undefined ? { ReplicaLagSeconds: w.lagSeconds } : {}),
      });
    }
    const ruleMetrics = [...ALARM_METRICS].map((Name) => ({ Name, Unit: 'Count' }));
    out.push({
      _aws: {
        Timestamp: now,
        CloudWatchMetrics: [
          ...(this.detail === 'deployment'
            ? []
            : [
                {
                  Namespace: METRICS_NAMESPACE,
                  Dimensions: [['Cluster']],
                  Metrics:
                    this.detail === 'node'
                      ? [
                          ...ruleMetrics,
                          { Name: 'ClusterHealthy', Unit: 'Count' },
                          { Name: 'LongestTransactionSeconds', Unit: 'Seconds' },
                          { Name: 'ProbeRoundMs', Unit: 'Milliseconds' },
                        ]
                      : [
                          { Name: 'ClusterHealthy', Unit: 'Count' },
                          { Name: 'ProbeRoundMs', Unit: 'Milliseconds' },
                        ],
                },
              ]),
          // Without dimensions: one alarm per rule covers every cluster of the deployment; the
          // SNS notification of the same change names the cluster and the node.
          { Namespace: METRICS_NAMESPACE, Dimensions: [[]], Metrics: ruleMetrics },
        ],
      },
      Cluster: this.cluster,
      ...this.indicators,
      StateChanges: this.stateChanges,
      ClusterHealthy: this.healthy,
      LongestTransactionSeconds: this.longestTrx,
      ProbeRoundMs: this.roundMs,
    });
    this.nodes = new Map();
    this.indicators = undefined;
    this.healthy = 1;
    this.stateChanges = 0;
    this.longestTrx = 0;
    this.roundMs = 0;
    this.openedAt = undefined;
    return out;
  }
}
