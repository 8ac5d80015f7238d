/**
 * Monthly cost of one deployment at on-demand prices, from an invocation profile (what the health
 * check does per cluster and per shard each second), so the README's figures come from measured
 * rates instead of guesses. Pure: no clock, no I/O; the scale bench feeds it what it counted.
 *
 * Prices are assumptions, stated with where they come from: AWS us-east-1 list prices as published
 * on the service pricing pages (Lambda arm64, DynamoDB on-demand after the November 2024 cut,
 * CloudWatch standard tier, Step Functions Standard), last read 2025-06 and not re-checked since.
 */

/** us-east-1 list prices (USD). */
export const PRICES = {
  source: 'AWS us-east-1 list price on 2025-06 (pricing pages), not re-checked since',
  /** Lambda arm64, per GB-second (first 7.5 B GB-s tier). */
  lambdaGbSecond: 0.0000133334,
  /** Lambda, per request. */
  lambdaRequest: 0.2 / 1e6,
  /** DynamoDB on-demand, per write request unit (1 KB). */
  dynamoWriteUnit: 0.625 / 1e6,
  /** DynamoDB on-demand, per read request unit (4 KB strongly consistent). */
  dynamoReadUnit: 0.125 / 1e6,
  /** CloudWatch custom metric, per metric-month (first 10,000). */
  customMetric: 0.3,
  /** CloudWatch standard-resolution alarm, per alarm-month. */
  alarm: 0.1,
  /** CloudWatch dashboard, per month beyond the free three of an account ({@link FREE_DASHBOARDS}). */
  dashboard: 3.0,
  /** CloudWatch Logs ingestion, per GB. */
  logsIngestGb: 0.5,
  /** Step Functions Standard, per state transition. */
  sfnTransition: 0.025 / 1000,
  /** Secrets Manager, per secret-month. */
  secret: 0.4,
} as const;

export const SECONDS_PER_MONTH = 30 * 24 * 3600;

/** Dashboards an account has free each month (CloudWatch free tier), whoever created them. */
export const FREE_DASHBOARDS = 3;

/** What one deployment does, per second unless named otherwise. */
export interface InvocationProfile {
  clusters: number;
  /** Concurrent health-check invocations (each runs continuously). */
  shards: number;
  /** healthCheck MemorySize. */
  memoryMb: number;
  /** Invocations per shard per month (a rate(1 minute) schedule: 43,200). */
  invocationsPerShardMonth: number;
  /** Billed seconds per wall second per shard (the hand-over overlap makes it > 1). */
  billedSecondsPerSecond: number;
  /** DynamoDB write units per cluster per second (leases, state heartbeats, events). */
  writeUnitsPerClusterSecond: number;
  /** DynamoDB read units per cluster per second (state re-reads, lease reads). */
  readUnitsPerClusterSecond: number;
  /** DynamoDB write units per shard per second (a shard's own lease, when it has one). */
  writeUnitsPerShardSecond: number;
  /** Log bytes ingested per cluster per second (EMF metric lines, state-change logs). */
  logBytesPerClusterSecond: number;
  /** Custom metrics with a Cluster (or Cluster, Node) dimension, per cluster. */
  customMetricsPerCluster: number;
  /** Dimensionless custom metrics (the alarms watch these), per deployment. */
  deploymentMetrics: number;
  alarms: number;
  /**
   * Dashboards priced as paid: those the deployment has (deploy setting `dashboard`, 0 or 1). The
   * model cannot know the account's other dashboards, so it never counts one as free.
   */
  paidDashboards: number;
  /** Secrets Manager secrets the deployment reads (one secret may hold every login, by key). */
  secrets: number;
  failoversPerMonth: number;
  /** Step Functions state transitions per failover execution. */
  transitionsPerFailover: number;
}

export interface MonthlyCost {
  totalUsd: number;
  lines: Record<string, number>;
}

const round2 = (v: number) => Math.round(v * 100) / 100;

/** The monthly bill of one deployment for `p`, by line. */
export function monthlyCost(p: InvocationProfile): MonthlyCost {
  const s = SECONDS_PER_MONTH;
  const gbSeconds = p.shards * (p.memoryMb / 1024) * p.billedSecondsPerSecond * s;
  const lines: Record<string, number> = {
    lambdaCompute: gbSeconds * PRICES.lambdaGbSecond,
    lambdaRequests: p.shards * p.invocationsPerShardMonth * PRICES.lambdaRequest,
    dynamoWrites:
      (p.clusters * p.writeUnitsPerClusterSecond + p.shards * p.writeUnitsPerShardSecond) *
      s *
      PRICES.dynamoWriteUnit,
    dynamoReads: p.clusters * p.readUnitsPerClusterSecond * s * PRICES.dynamoReadUnit,
    logs: ((p.clusters * p.logBytesPerClusterSecond * s) / 1e9) * PRICES.logsIngestGb,
    customMetrics: (p.clusters * p.customMetricsPerCluster + p.deploymentMetrics) * PRICES.customMetric,
    alarms: p.alarms * PRICES.alarm,
    dashboards: p.paidDashboards * PRICES.dashboard,
    secrets: p.secrets * PRICES.secret,
    stepFunctions: p.failoversPerMonth * p.transitionsPerFailover * PRICES.sfnTransition,
  };
  const totalUsd = Object.values(lines).reduce((a, b) => a + b, 0);
  return {
    totalUsd: round2(totalUsd),
    lines: Object.fromEntries(Object.entries(lines).map(([k, v]) => [k, round2(v)])),
  };
}

/** A line fitted through measured (clusters, round ms) points: ms = fixedMs + perClusterMs * n. */
export interface RoundFit {
  fixedMs: number;
  perClusterMs: number;
}

/** Least-squares fit of round time against cluster count (one point gives a zero slope). */
export function fitRounds(points: ReadonlyArray<{ clusters: number; ms: number }>): RoundFit {
  if (points.length === 0) throw new Error('fitRounds needs at least one measured point');
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.clusters, 0) / n;
  const my = points.reduce((a, p) => a + p.ms, 0) / n;
  const sxx = points.reduce((a, p) => a + (p.clusters - mx) ** 2, 0);
  const sxy = points.reduce((a, p) => a + (p.clusters - mx) * (p.ms - my), 0);
  const perClusterMs = sxx === 0 ? 0 : Math.max(0, sxy / sxx);
  return { fixedMs: my - perClusterMs * mx, perClusterMs };
}

/**
 * Shards needed so each shard's modelled load (round ms, or CPU share: any fitted quantity) stays
 * within `budget` (and holds at most `maxPerShard` clusters, e.g. a connection or memory bound).
 */
export function shardsNeeded(clusters: number, fit: RoundFit, budget: number, maxPerShard = 1000): number {
  if (clusters <= 0) return 0;
  const room = budget - fit.fixedMs;
  if (room <= 0) throw new Error(`the fixed part (${fit.fixedMs}) exceeds the budget ${budget}`);
  const perShard =
    fit.perClusterMs === 0 ? maxPerShard : Math.min(maxPerShard, Math.floor(room / fit.perClusterMs));
  if (perShard < 1) throw new Error(`one cluster alone exceeds the budget ${budget}`);
  return Math.ceil(clusters / perShard);
}

/**
 * The first cluster-month (a deployment with one cluster) and what each further cluster adds,
 * averaged over `clusters` (shards added as the fit requires).
 */
export function firstAndAdditional(
  base: Omit<InvocationProfile, 'clusters' | 'shards'>,
  clusters: number,
  shardsFor: (clusters: number) => number,
  memoryFor?: (clustersPerShard: number) => number,
): {
  firstClusterUsd: number;
  perAdditionalClusterUsd: number;
  atClustersUsd: number;
  shards: number;
  memoryMb: number;
} {
  // The size the deployment would get (deploy-settings.ts defaultHealthCheckMemoryMb), else the base's.
  const sized = (c: number, k: number) => ({
    ...base,
    clusters: c,
    shards: k,
    memoryMb: memoryFor ? memoryFor(Math.ceil(c / k)) : base.memoryMb,
  });
  const first = monthlyCost(sized(1, shardsFor(1))).totalUsd;
  const shards = shardsFor(clusters);
  const atProfile = sized(clusters, shards);
  const at = monthlyCost(atProfile).totalUsd;
  return {
    firstClusterUsd: first,
    perAdditionalClusterUsd: clusters > 1 ? round2((at - first) / (clusters - 1)) : 0,
    atClustersUsd: at,
    shards,
    memoryMb: atProfile.memoryMb,
  };
}

/**
 * The priced resources a packaged CloudFormation template declares (serverless package's
 * .serverless/cloudformation-template-update-stack.json), so the model charges the alarms and
 * dashboards that are deployed, not a count written down once.
 */
export function pricedResources(template: { Resources?: Record<string, { Type?: string }> }): {
  alarms: number;
  dashboards: number;
} {
  const types = Object.values(template.Resources ?? {}).map((r) => r.Type);
  return {
    alarms: types.filter((t) => t === 'AWS::CloudWatch::Alarm').length,
    dashboards: types.filter((t) => t === 'AWS::CloudWatch::Dashboard').length,
  };
}

/**
 * What the deploy setting `dashboard` costs, for the bench's output: the dashboards the template
 * has, what they add to each month at list price, and the free tier that may make them $0.
 */
export function dashboardCost(dashboards: number): { dashboards: number; monthlyUsd: number; note: string } {
  return {
    dashboards,
    monthlyUsd: round2(dashboards * PRICES.dashboard),
    note:
      dashboards === 0
        ? `no dashboard (deploy setting "dashboard": false); "dashboard": true adds $${PRICES.dashboard.toFixed(2)} a month, $0 while the account has at most ${FREE_DASHBOARDS} dashboards`
        : `priced as paid; $0 while the account has at most ${FREE_DASHBOARDS} dashboards (CloudWatch free tier)`,
  };
}
