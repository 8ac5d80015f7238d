import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  dashboardCost,
  FREE_DASHBOARDS,
  firstAndAdditional,
  fitRounds,
  type InvocationProfile,
  monthlyCost,
  pricedResources,
  shardsNeeded,
} from '../../infra/bench/cost-model.ts';
import { ensurePackagedTemplate, PROJECT_ROOT } from '../../infra/local-cloud/packaged-functions.ts';
import { defaultHealthCheckMemoryMb } from '../../lib/config/deploy-settings.ts';

const base: Omit<InvocationProfile, 'clusters' | 'shards'> = {
  memoryMb: 256,
  invocationsPerShardMonth: 43_200,
  billedSecondsPerSecond: 66 / 60,
  writeUnitsPerClusterSecond: 0.2,
  readUnitsPerClusterSecond: 1,
  writeUnitsPerShardSecond: 0,
  logBytesPerClusterSecond: 200,
  customMetricsPerCluster: 2,
  deploymentMetrics: 6,
  alarms: 7,
  paidDashboards: 1,
  secrets: 0,
  failoversPerMonth: 1,
  transitionsPerFailover: 20,
};

describe('cost model', () => {
  it('prices each line from the profile (hand-computed figures)', () => {
    const c = monthlyCost({ ...base, clusters: 1, shards: 1 });
    // 0.25 GB x 2,592,000 s x 1.1 x $0.0000133334
    expect(c.lines.lambdaCompute).toBe(9.5);
    // 0.2 WU/s x 2,592,000 s x $0.625 per million
    expect(c.lines.dynamoWrites).toBe(0.32);
    // 1 RU/s x 2,592,000 s x $0.125 per million
    expect(c.lines.dynamoReads).toBe(0.32);
    // (2 + 6) metrics x $0.30
    expect(c.lines.customMetrics).toBe(2.4);
    expect(c.lines.alarms).toBe(0.7);
    expect(c.lines.dashboards).toBe(3);
    expect(c.totalUsd).toBeCloseTo(
      Object.values(c.lines).reduce((a, b) => a + b, 0),
      1,
    );
  });

  it('fits round time or CPU against clusters and sizes shards to a budget', () => {
    const fit = fitRounds([
      { clusters: 1, ms: 0.018 },
      { clusters: 10, ms: 0.069 },
    ]);
    expect(fit.perClusterMs).toBeCloseTo(0.00567, 4);
    // Half of 0.145 vCPU per shard: (0.0725 - 0.0123) / 0.00567 = 10 clusters a shard.
    expect(shardsNeeded(500, fit, 0.0725)).toBe(50);
    expect(shardsNeeded(1, fit, 0.0725)).toBe(1);
    expect(() => shardsNeeded(5, fit, 0.01)).toThrow(/exceeds the budget/);
  });

  it('prices the lease heartbeat per shard, so it does not grow with the clusters of a shard', () => {
    // One heartbeat write per 5 s per invocation (lease.ts ShardHeartbeat) instead of per cluster.
    const perShard = { ...base, writeUnitsPerClusterSecond: 0.01, writeUnitsPerShardSecond: 0.2 };
    const one = monthlyCost({ ...perShard, clusters: 1, shards: 1 }).lines.dynamoWrites ?? 0;
    const ten = monthlyCost({ ...perShard, clusters: 10, shards: 1 }).lines.dynamoWrites ?? 0;
    // 0.2 x 2,592,000 x $0.625/M = $0.32 a shard; 0.01 x 2,592,000 x $0.625/M = $0.016 a cluster.
    expect(one).toBe(0.34);
    expect(ten).toBe(0.49);
    const perCluster = monthlyCost({ ...base, clusters: 10, shards: 1 }).lines.dynamoWrites ?? 0;
    expect(perCluster).toBe(3.24);
  });

  it('splits the bill into the first cluster and what each further one adds', () => {
    const r = firstAndAdditional(base, 30, (c) => Math.ceil(c / 10));
    const first = monthlyCost({ ...base, clusters: 1, shards: 1 }).totalUsd;
    expect(r.firstClusterUsd).toBe(first);
    expect(r.shards).toBe(3);
    expect(r.perAdditionalClusterUsd).toBeCloseTo((r.atClustersUsd - first) / 29, 2);
  });

  it('prices healthCheck at the size the deployment gets when healthCheckMemoryMb is unset', () => {
    const r = firstAndAdditional({ ...base, memoryMb: 1 }, 30, () => 1, defaultHealthCheckMemoryMb);
    // One cluster: 128 MB; 30 clusters on one shard: 384 MB (6 + 12 + 12).
    expect(r.memoryMb).toBe(384);
    const first = monthlyCost({ ...base, memoryMb: 128, clusters: 1, shards: 1 });
    // 0.125 GB x 2,592,000 s x 1.1 x $0.0000133334
    expect(first.lines.lambdaCompute).toBe(4.75);
    expect(r.firstClusterUsd).toBe(first.totalUsd);
    const at = monthlyCost({ ...base, memoryMb: 384, clusters: 30, shards: 1 });
    expect(at.lines.lambdaCompute).toBe(14.26);
    expect(r.atClustersUsd).toBe(at.totalUsd);
  });

  it('charges every alarm and dashboard the packaged template declares', { timeout: 240_000 }, async () => {
    const template = JSON.parse(readFileSync(await ensurePackagedTemplate(), 'utf8'));
    const yml = readFileSync(join(PROJECT_ROOT, 'serverless.yml'), 'utf8');
    const count = (type: string) => yml.split('\n').filter((l) => l.trim() === `Type: ${type}`).length;
    const priced = pricedResources(template);
    expect(priced.alarms).toBe(count('AWS::CloudWatch::Alarm'));
    expect(priced.alarms).toBeGreaterThan(0);
    // The example's deploy settings leave "dashboard" unset (false): none deployed, none priced.
    // (The "dashboard": true template has one: test/deploy/packaged-templates.test.ts.)
    expect(priced.dashboards).toBe(0);
    expect(
      monthlyCost({ ...base, paidDashboards: priced.dashboards, clusters: 1, shards: 1 }).lines.dashboards,
    ).toBe(0);
  });

  it('prices the dashboard only when deployed, and says the first 3 of an account are free', () => {
    expect(dashboardCost(0).monthlyUsd).toBe(0);
    expect(dashboardCost(0).note).toContain('"dashboard": true adds $3.00 a month');
    expect(dashboardCost(1).monthlyUsd).toBe(3);
    for (const n of [0, 1]) expect(dashboardCost(n).note).toContain(`at most ${FREE_DASHBOARDS} dashboards`);
    expect(FREE_DASHBOARDS).toBe(3);
  });

  it('prices the measured 30-cluster profile at the deployed size (scale bench, 30 clusters, one shard)', () => {
    // Measured 2026-12-01 (npm run bench -- --scenario scale --clusters 30, packaged runtime, 384 MB
    // chosen by defaultHealthCheckMemoryMb): per cluster-second 1.092 read units (the epoch check's
    // GetItem each round), 0.004 write units, 58 log bytes; the lease heartbeat 0.2 write units a
    // shard-second; 6 alarm metrics; 11 alarms and 1 dashboard in the packaged template (before the
    // deploy setting "dashboard" made it opt-in).
    const measured = {
      ...base,
      memoryMb: 128,
      readUnitsPerClusterSecond: 1.092,
      writeUnitsPerClusterSecond: 0.004,
      writeUnitsPerShardSecond: 0.2,
      logBytesPerClusterSecond: 58,
      customMetricsPerCluster: 0,
      alarms: 11,
    };
    const r = firstAndAdditional(measured, 30, () => 1, defaultHealthCheckMemoryMb);
    // What the bench printed for that run: first $11.42, each additional $0.76.
    expect(r.firstClusterUsd).toBe(11.42);
    expect(r.perAdditionalClusterUsd).toBe(0.76);
    expect(r.memoryMb).toBe(384);
    // The same profile without the dashboard (deploy setting "dashboard" false, the default): the
    // first cluster-month is $3.00 less, under the $10 target; each additional is unchanged.
    const lean = firstAndAdditional(
      { ...measured, paidDashboards: 0 },
      30,
      () => 1,
      defaultHealthCheckMemoryMb,
    );
    expect(lean.firstClusterUsd).toBe(8.42);
    expect(lean.perAdditionalClusterUsd).toBe(0.76);
  });
});
