import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoStateStore } from '../../../lib/adapters/dynamodb-state-store.ts';
import {
  busiestShard,
  clustersHeldBy,
  defaultHealthCheckMemoryMb,
} from '../../../lib/config/deploy-settings.ts';
import { type MariaDbCluster, startCluster } from '../../cluster/mariadb-cluster.ts';
import { MB_PER_VCPU } from '../../local-cloud/lambda-runtime/runtime.ts';
import { type LocalCloud, startLocalCloud } from '../../local-cloud/local-cloud.ts';
import { ensurePackagedTemplate } from '../../local-cloud/packaged-functions.ts';
import {
  dashboardCost,
  firstAndAdditional,
  fitRounds,
  type InvocationProfile,
  monthlyCost,
  PRICES,
  pricedResources,
  shardsNeeded,
} from '../cost-model.ts';
import {
  type BenchScenario,
  percentile,
  sleep,
  type Trial,
  trialCloudDefaults,
  waitUntil,
} from '../trial-env.ts';

const OBSERVE_MS = 30_000;
/** Clusters started at once: each start runs mariadb-install-db three times on the shared cores. */
const START_BATCH = 3;
/**
 * Smaller than the harness's 32 MB pool: 90 idle mariadbd must stay well inside the machine's
 * memory next to other work. The probe reads variables and status only, never table data.
 */
const SMALL_MY_CNF = `innodb_buffer_pool_size=8M
innodb_log_buffer_size=1M
aria_pagecache_buffer_size=1M
max_connections=40
table_open_cache=64
`;
const HEALTH_ID = 'HealthCheckLambdaFunction';
/** Where each run's measured point is kept, so the 500-cluster model fits every count measured. */
/** The share of its CPU limit a shard is planned to use (the model's shards-needed rule). */
const CPU_UTILISATION = 0.5;
/** One file per health-check size: points measured at another CPU share would skew the fit. */
const pointsFile = (memoryMb: number) => join(tmpdir(), `smf-scale-points-${memoryMb}mb.json`);

const clusterName = (i: number) => `c${String(i + 1).padStart(3, '0')}`;

/** utime + stime of a process, in clock ticks (100 Hz on Linux). */
function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

function rssMb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function healthPids(cloud: LocalCloud): number[] {
  return (cloud.lambdaRuntime?.instances() ?? []).flatMap((i) =>
    i.functionId === HEALTH_ID && i.pid !== undefined && i.state !== 'dead' ? [i.pid] : [],
  );
}

/** Starts `n` 3-node clusters, START_BATCH at a time; on failure the started ones are destroyed. */
async function startClusters(n: number, log: (line: string) => void): Promise<MariaDbCluster[]> {
  const out: MariaDbCluster[] = [];
  try {
    for (let i = 0; i < n; i += START_BATCH) {
      const batch = await Promise.allSettled(
        Array.from({ length: Math.min(START_BATCH, n - i) }, () =>
          startCluster({ nodes: 3, extraMyCnf: SMALL_MY_CNF, semiSync: true }),
        ),
      );
      for (const b of batch) if (b.status === 'fulfilled') out.push(b.value);
      const failed = batch.find((b) => b.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      log(`scale: ${out.length}/${n} clusters started`);
    }
    return out;
  } catch (err) {
    await Promise.allSettled(out.map((c) => c.destroy()));
    throw err;
  }
}

/** Every cluster in one configuration, each like the local cloud's own first entry. */
function writeConfig(cloud: LocalCloud, clusters: MariaDbCluster[]): void {
  const config = JSON.parse(readFileSync(cloud.configFile, 'utf8')) as {
    clusters: Array<Record<string, unknown> & { nodes: Array<Record<string, unknown>> }>;
  };
  const first = config.clusters[0]!;
  config.clusters = clusters.map((cl, i) => {
    if (i === 0) return first;
    // The VIP set-up (ENI ids per node id) is the first cluster's: only that cluster fails over
    // in this scenario; the others must never start one (falseFailovers).
    return {
      ...first,
      name: clusterName(i),
      nodes: cl.nodes.map((n) => ({
        ...first.nodes.find((f) => f.id === n.id),
        id: n.id,
        host: n.host,
        port: n.port,
      })),
      credentials: {
        admin: { user: cl.credentials.admin.user, password: { file: cl.credentials.admin.passwordFile } },
        replication: {
          user: cl.credentials.replication.user,
          password: { file: cl.credentials.replication.passwordFile },
        },
      },
    };
  });
  writeFileSync(cloud.configFile, `${JSON.stringify(config, null, 2)}\n`);
}

interface DynamoCount {
  writeUnits: number;
  /** Of writeUnits, the invocations' heartbeats (one per shard, whatever its clusters). */
  shardWriteUnits: number;
  readUnits: number;
  requests: Record<string, number>;
}

const WRITE_OPS = new Set(['PutItem', 'UpdateItem', 'DeleteItem']);
const READ_OPS = new Set(['GetItem', 'Query']);

/**
 * Counts the state table's requests through the fault proxy (a matcher that never injects):
 * write units from the request size (1 KB each, rounded up), one read unit per read (items < 4 KB).
 */
function countDynamo(cloud: LocalCloud): DynamoCount {
  const count: DynamoCount = { writeUnits: 0, shardWriteUnits: 0, readUnits: 0, requests: {} };
  cloud.dynamoFaults.failAll((op, body) => {
    count.requests[op] = (count.requests[op] ?? 0) + 1;
    if (WRITE_OPS.has(op)) {
      const units = Math.max(1, Math.ceil(JSON.stringify(body).length / 1024));
      count.writeUnits += units;
      const key = (body as { Key?: { pk?: { S?: string } } } | undefined)?.Key?.pk?.S;
      if (key?.startsWith('HEARTBEAT#')) count.shardWriteUnits += units;
    } else if (READ_OPS.has(op)) count.readUnits += 1;
    return false;
  });
  return count;
}

/** Distinct EMF metrics (name + dimension values) in log entries: per cluster and dimensionless. */
function countMetrics(entries: Array<Record<string, unknown>>): {
  withCluster: number;
  dimensionless: number;
} {
  const withCluster = new Set<string>();
  const dimensionless = new Set<string>();
  for (const e of entries) {
    const aws = e._aws as
      | { CloudWatchMetrics?: Array<{ Dimensions?: string[][]; Metrics?: Array<{ Name: string }> }> }
      | undefined;
    for (const d of aws?.CloudWatchMetrics ?? []) {
      for (const dims of d.Dimensions ?? [[]]) {
        for (const m of d.Metrics ?? []) {
          const key = `${m.Name}|${dims.map((k) => `${k}=${String(e[k])}`).join(',')}`;
          (dims.length === 0 ? dimensionless : withCluster).add(key);
        }
      }
    }
  }
  return { withCluster: withCluster.size, dimensionless: dimensionless.size };
}

interface ScalePoint {
  clusters: number;
  roundP50Ms: number;
  roundP99Ms: number;
  cpuUsedShare: number;
}

function loadPoints(memoryMb: number): ScalePoint[] {
  try {
    return JSON.parse(readFileSync(pointsFile(memoryMb), 'utf8')) as ScalePoint[];
  } catch {
    return [];
  }
}

/**
 * N real 3-node clusters watched by one deployment: the packaged health check under its CPU limit
 * (one invocation probes all of them, as the schedule runs it today). Phase 1: 30 s without a
 * fault (round time, CPU, DynamoDB requests, logs, metrics). Phase 2: kill -9 of one cluster's
 * primary at a random phase of the round (detection, and the other clusters' rounds meanwhile).
 */
async function runScale(n: number, shards: number, log: (line: string) => void): Promise<Trial> {
  // SCALE_HEALTH_MB=128 npm run bench -- --scenario scale ...: the health check at another size;
  // by default the size a deployment of these n clusters on these shards gets with
  // healthCheckMemoryMb unset (deploy-settings.ts defaultHealthCheckMemoryMb), as deployed.
  const template = await ensurePackagedTemplate(log);
  const priced = pricedResources(JSON.parse(readFileSync(template, 'utf8')));
  const fixedMb = Number(process.env.SCALE_HEALTH_MB) || undefined;
  const memoryFor = fixedMb ? undefined : defaultHealthCheckMemoryMb;
  const busiest = busiestShard(
    Array.from({ length: n }, (_, i) => ({ name: clusterName(i) })),
    shards,
  );
  const healthMb = fixedMb ?? defaultHealthCheckMemoryMb(busiest);
  const startedAt = Date.now();
  const clusters = await startClusters(n, log);
  const startSeconds = Math.round((Date.now() - startedAt) / 1000);
  const entries: Array<Record<string, unknown>> = [];
  let cloud: LocalCloud | undefined;
  let fanOut: NodeJS.Timeout | undefined;
  try {
    const defaults = trialCloudDefaults();
    cloud = await startLocalCloud({
      clusterName: clusterName(0),
      ...defaults,
      lambda: {
        ...defaults.lambda,
        memoryMb: { ...defaults.lambda?.memoryMb, [HEALTH_ID]: healthMb },
        env: {
          HEALTH_ROUND_LOG: '1',
          // The comparison run: HEALTH_PERSISTENT_PROBES=0 npm run bench -- --scenario scale ...
          ...(process.env.HEALTH_PERSISTENT_PROBES === '0' ? { HEALTH_PERSISTENT_PROBES: '0' } : {}),
          // SCALE_NODE_OPTIONS='--max-old-space-size=115': the heap cap Lambda's Node runtime
          // derives from the memory size, so healthCheckRssMb shows what would fit.
          ...(process.env.SCALE_NODE_OPTIONS ? { NODE_OPTIONS: process.env.SCALE_NODE_OPTIONS } : {}),
        },
      },
      cluster: clusters[0]!,
      schedule: false,
      onLog: (e) => entries.push(e),
    });
    writeConfig(cloud, clusters);
    const lc = cloud;
    if (shards === 1) lc.startScheduler();
    else {
      // The fan-out schedule: K events a minute, each with its shard (serverless.yml's
      // healthCheck events), each a concurrent invocation in its own CPU-limited instance.
      const fire = () => {
        for (let shard = 0; shard < shards; shard++)
          void lc
            .invoke(HEALTH_ID, { shard, of: shards })
            .catch((err: Error) => log(`shard ${shard}: ${err.message}`));
      };
      fire();
      fanOut = setInterval(fire, 60_000);
    }
    const store = new DynamoStateStore(cloud.tableName);
    const names = clusters.map((_, i) => clusterName(i));
    const healthy = await waitUntil(
      async () => {
        const states = await Promise.all(names.map((c) => store.getClusterState(c)));
        return states.every((s) => s?.analysis === 'NoProblem');
      },
      60_000 + n * 1000,
      500,
    );
    if (!healthy) {
      const states = await Promise.all(names.map((c) => store.getClusterState(c)));
      const counts: Record<string, number> = {};
      for (const st of states) counts[st?.analysis ?? 'none'] = (counts[st?.analysis ?? 'none'] ?? 0) + 1;
      const rounds = entries.filter((e) => e.type === 'probe-round').map((e) => Number(e.ms));
      throw new Error(
        `not every one of the ${n} clusters reported NoProblem: ${JSON.stringify(counts)}; rounds so far ${rounds.length}, p50 ${percentile(rounds, 50)} ms, p99 ${percentile(rounds, 99)} ms`,
      );
    }
    await sleep(2000);

    // Phase 1: steady state.
    const memoryMb = healthMb;
    const cpuShare = cloud.lambdaRuntime?.cpuLimit.applied ? memoryMb / MB_PER_VCPU : null;
    const dynamo = countDynamo(cloud);
    const from = entries.length;
    const pidsBefore = new Map(healthPids(cloud).map((p) => [p, cpuTicks(p)]));
    const t0 = performance.now();
    await sleep(OBSERVE_MS);
    const elapsedS = (performance.now() - t0) / 1000;
    let ticks = 0;
    for (const pid of healthPids(cloud)) ticks += cpuTicks(pid) - (pidsBefore.get(pid) ?? 0);
    // Per shard: each shard is its own instance with its own limit.
    const cpuUsedShare = ticks / 100 / elapsedS / shards;
    const mariadbProcesses = clusters.reduce(
      (s, c) => s + c.nodes.filter((nd) => nd.pid !== undefined).length,
      0,
    );
    const healthRssMb = healthPids(cloud).reduce((s, p) => s + rssMb(p), 0);
    const mariadbRssMb = clusters.reduce((s, c) => s + c.nodes.reduce((t, nd) => t + rssMb(nd.pid), 0), 0);
    const window = entries.slice(from);
    cloud.dynamoFaults.clear();
    const rounds = window.filter((e) => e.type === 'probe-round');
    const roundMs = rounds.map((e) => Number(e.ms));
    const phase = (k: string) =>
      rounds.map((e) => Number((e.phases as Record<string, number> | undefined)?.[k] ?? 0));
    const breakdown = (p: number) =>
      Object.fromEntries(
        ['leaseAndStateMs', 'probeMs', 'analysisMs', 'actMs'].map((k) => [
          k,
          Number((percentile(phase(k), p) ?? 0).toFixed(2)),
        ]),
      );
    const logBytes = window
      .filter((e) => e.type !== 'probe-round')
      .reduce((s, e) => s + JSON.stringify(e).length + 1, 0);
    const metrics = countMetrics(window);
    const steadyFailovers = cloud.sfn.executions().length;

    // Phase 2: kill -9 of c001's primary at a random phase of the round.
    const crashFrom = entries.length;
    await sleep(Math.random() * 1000);
    const killedAt = Date.now();
    await clusters[0]!.crash('db1');
    await waitUntil(() => cloud!.sfn.executions().some((e) => e.status !== 'RUNNING'), 60_000, 100);
    await sleep(3000);
    const crashWindow = entries.slice(crashFrom);
    const started = crashWindow.filter((e) => e.type === 'failover-started');
    const ownStart = started.find((e) => e.cluster === clusterName(0));
    const otherRounds = crashWindow
      .filter((e) => e.type === 'probe-round' && e.cluster !== clusterName(0))
      .map((e) => Number(e.ms));
    const executions = cloud.sfn.executions();
    const succeeded = executions.filter((e) => e.status === 'SUCCEEDED').length;
    const falseFailovers = steadyFailovers + started.filter((e) => e.cluster !== clusterName(0)).length;

    // The measured profile, per cluster-second, and the model built from it.
    const seconds = elapsedS;
    const profileBase: Omit<InvocationProfile, 'clusters' | 'shards'> = {
      memoryMb,
      invocationsPerShardMonth: 43_200,
      // rate(1 minute), each invocation probing until 4 s before its 70 s timeout, so ~66 s
      // billed per 60 s (the overlap is the hand-over).
      billedSecondsPerSecond: 66 / 60,
      writeUnitsPerClusterSecond: (dynamo.writeUnits - dynamo.shardWriteUnits) / n / seconds,
      readUnitsPerClusterSecond: dynamo.readUnits / n / seconds,
      // The lease heartbeat: one per invocation, so per shard (lease.ts ShardHeartbeat).
      writeUnitsPerShardSecond: dynamo.shardWriteUnits / shards / seconds,
      logBytesPerClusterSecond: logBytes / n / seconds,
      customMetricsPerCluster: metrics.withCluster / n,
      deploymentMetrics: metrics.dimensionless,
      // As packaged (serverless.yml): every alarm, and the dashboard when the deploy settings have
      // one ("dashboard": true; the default example has none), charged as a paid one (it is free
      // only while the account has no more than 3).
      alarms: priced.alarms,
      paidDashboards: priced.dashboards,
      secrets: 0,
      failoversPerMonth: 1,
      transitionsPerFailover: 20,
    };
    const point: ScalePoint = {
      clusters: n / shards,
      roundP50Ms: percentile(roundMs, 50) ?? 0,
      roundP99Ms: percentile(roundMs, 99) ?? 0,
      cpuUsedShare,
    };
    const points = [...loadPoints(memoryMb).filter((p) => p.clusters !== point.clusters), point].sort(
      (a, b) => a.clusters - b.clusters,
    );
    // A starved run (too few rounds: the machine, not the limit) would skew every later fit.
    if (roundMs.length >= (n * OBSERVE_MS) / 2000)
      writeFileSync(pointsFile(memoryMb), `${JSON.stringify(points)}\n`);
    // Shards for 500: each shard may use half its CPU limit (headroom for a failover's quick
    // rounds and hand-overs), by a line fitted through the measured CPU per cluster count.
    // A point whose shard used (nearly) its whole limit is saturated: its CPU says nothing about
    // what more clusters would need, so it stays out of the CPU fit.
    const limit = cpuShare ?? memoryMb / MB_PER_VCPU;
    const unsaturated = points.filter((p) => p.cpuUsedShare < 0.9 * limit);
    const cpuFit = fitRounds(
      (unsaturated.length > 0 ? unsaturated : points).map((p) => ({
        clusters: p.clusters,
        ms: p.cpuUsedShare,
      })),
    );
    const p50Fit = fitRounds(points.map((p) => ({ clusters: p.clusters, ms: p.roundP50Ms })));
    const p99Fit = fitRounds(points.map((p) => ({ clusters: p.clusters, ms: p.roundP99Ms })));
    let model500: Record<string, unknown>;
    try {
      const budget = limit * CPU_UTILISATION;
      // No more clusters a shard than the size measured holds (what the deploy settings warn about).
      const maxPerShard = clustersHeldBy(memoryMb);
      const shardsFor = (c: number) => shardsNeeded(c, cpuFit, budget, maxPerShard);
      const at500 = firstAndAdditional(profileBase, 500, shardsFor, memoryFor);
      const perShard = Math.ceil(500 / at500.shards);
      model500 = {
        fromPoints: points.map((p) => p.clusters),
        cpuFitPoints: unsaturated.map((p) => p.clusters),
        cpuFit: {
          fixed: Number(cpuFit.fixedMs.toFixed(4)),
          perCluster: Number(cpuFit.perClusterMs.toFixed(5)),
        },
        shards: at500.shards,
        clustersPerShard: perShard,
        roundP50Ms: Math.round(p50Fit.fixedMs + p50Fit.perClusterMs * perShard),
        roundP99Ms: Math.round(p99Fit.fixedMs + p99Fit.perClusterMs * perShard),
        memoryMb: at500.memoryMb,
        monthlyUsd: at500.atClustersUsd,
        perAdditionalClusterUsd: at500.perAdditionalClusterUsd,
        lines: monthlyCost({ ...profileBase, clusters: 500, shards: at500.shards, memoryMb: at500.memoryMb })
          .lines,
      };
    } catch (err) {
      model500 = { error: (err as Error).message };
    }
    const here = firstAndAdditional(profileBase, Math.max(n, 2), (c) => (c === 1 ? 1 : shards), memoryFor);
    const detectMs = ownStart ? Number(ownStart.detectedAt) - killedAt : null;
    return {
      detectMs,
      promoteMs: null,
      vipMs: null,
      rtoMs: null,
      ackedWrites: 0,
      ackedLost: 0,
      failovers: executions.length,
      ok:
        detectMs !== null &&
        succeeded === 1 &&
        falseFailovers === 0 &&
        roundMs.length >= (n * OBSERVE_MS) / 2000,
      clusters: n,
      shards,
      clusterStartSeconds: startSeconds,
      rounds: roundMs.length,
      roundP50Ms: point.roundP50Ms,
      roundP99Ms: point.roundP99Ms,
      roundMaxMs: roundMs.length ? Math.max(...roundMs) : null,
      roundMsDuringCrashP99: percentile(otherRounds, 99),
      roundBreakdownP50Ms: breakdown(50),
      roundBreakdownP99Ms: breakdown(99),
      persistentConnections: process.env.HEALTH_PERSISTENT_PROBES !== '0',
      cpuShare,
      cpuUsedShare: Number(cpuUsedShare.toFixed(3)),
      healthCheckRssMb: Math.round(healthRssMb),
      mariadbRssMb: Math.round(mariadbRssMb),
      mariadbProcesses,
      dynamoPerClusterSecond: {
        writeUnits: Number(profileBase.writeUnitsPerClusterSecond.toFixed(3)),
        heartbeatWriteUnitsPerShardSecond: Number(profileBase.writeUnitsPerShardSecond.toFixed(3)),
        readUnits: Number(profileBase.readUnitsPerClusterSecond.toFixed(3)),
        requests: Object.fromEntries(
          Object.entries(dynamo.requests).map(([k, v]) => [k, Number((v / n / seconds).toFixed(3))]),
        ),
      },
      logBytesPerClusterSecond: Math.round(profileBase.logBytesPerClusterSecond),
      customMetricsPerCluster: profileBase.customMetricsPerCluster,
      dimensionlessMetrics: metrics.dimensionless,
      falseFailovers,
      costFirstClusterUsd: here.firstClusterUsd,
      costPerAdditionalClusterUsd: here.perAdditionalClusterUsd,
      healthCheckMemoryMb: memoryMb,
      pricedResources: priced,
      dashboard: dashboardCost(priced.dashboards),
      costLinesFirstCluster: monthlyCost({
        ...profileBase,
        clusters: 1,
        shards: 1,
        memoryMb: memoryFor ? memoryFor(1) : memoryMb,
      }).lines,
      costLinesAtClusters: monthlyCost({ ...profileBase, clusters: n, shards }).lines,
      prices: PRICES.source,
      model500,
    };
  } finally {
    clearInterval(fanOut);
    await cloud?.stop().catch(() => {});
    await Promise.allSettled(clusters.map((c) => c.destroy()));
  }
}

/**
 * `--scenario scale --clusters N`: one deployment watching N real 3-node clusters (see runScale).
 * The summary carries the issue's figures: round p50/p99, the CPU limit, crash detection in one
 * cluster, false failovers and the modelled monthly cost (infra/bench/cost-model.ts).
 */
export const scale: BenchScenario = {
  name: 'scale',
  description: 'one deployment watching N 3-node clusters under the CPU limit, with a kill -9 in one',
  expectFailover: true,
  defaultTrials: 1,
  run: (opts) => runScale(opts.clusters ?? 1, opts.shards ?? 1, opts.log),
  summarize: (trials) => {
    const last = trials[trials.length - 1];
    const pick = (k: string) => trials.flatMap((t) => (typeof t[k] === 'number' ? [t[k] as number] : []));
    return {
      clusters: last?.clusters ?? null,
      shards: last?.shards ?? null,
      roundP50Ms: percentile(pick('roundP50Ms'), 50),
      roundP99Ms: percentile(pick('roundP99Ms'), 50),
      cpuShare: last?.cpuShare ?? null,
      cpuUsedShare: percentile(pick('cpuUsedShare'), 50),
      falseFailovers: trials.reduce((s, t) => s + Number(t.falseFailovers ?? 0), 0),
      mariadbRssMb: last?.mariadbRssMb ?? null,
      roundBreakdownP50Ms: last?.roundBreakdownP50Ms ?? null,
      roundBreakdownP99Ms: last?.roundBreakdownP99Ms ?? null,
      costFirstClusterUsd: last?.costFirstClusterUsd ?? null,
      costPerAdditionalClusterUsd: last?.costPerAdditionalClusterUsd ?? null,
      dashboard: last?.dashboard ?? null,
      model500: last?.model500 ?? null,
    };
  },
};
