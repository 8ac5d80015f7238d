import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import { type ClusterHarnessOptions, type MariaDbCluster, startCluster } from '../cluster/mariadb-cluster.ts';
import { type LocalCloud, type LocalCloudOptions, startLocalCloud } from '../local-cloud/local-cloud.ts';
import { missingAcked, startWriter, WRITES_TABLE_DDL, type Writer } from '../workload/writer.ts';

/** One bench trial's measurements. Scenario-specific fields may be added. */
export interface Trial {
  detectMs: number | null;
  promoteMs: number | null;
  vipMs: number | null;
  rtoMs: number | null;
  ackedWrites: number;
  ackedLost: number;
  failovers: number;
  ok: boolean;
  error?: string;
  [extra: string]: unknown;
}

export interface TrialOptions {
  provider: string;
  log: (line: string) => void;
  /** 1-based trial number (scenarios may vary the timeline by trial). */
  trial?: number;
  /** `--force`: the operator overrides a veto (lagging-survivors). */
  force?: boolean;
  /** `--clusters N`: how many clusters one deployment watches (scale). */
  clusters?: number;
  /** `--shards K`: health-check invocations the clusters are spread over (scale). */
  shards?: number;
}

/** What a timeline scenario must show in every trial (checked by the CLI: scenarios/expectations.ts). */
export interface ScenarioExpectations {
  /** Exact number of promotions (`failovers`). */
  failovers: number;
  /** Fields that must be 0 (or null: not measurable in that trial). */
  zero: string[];
  /** Fields that must be true. */
  true?: string[];
}

export interface BenchScenario {
  name: string;
  description: string;
  /** Whether a failover is the right outcome (otherwise every failover counts as false). */
  expectFailover: boolean;
  run(opts: TrialOptions): Promise<Trial>;
  /** Extra summary fields (e.g. write-block percentiles). */
  summarize?(trials: Trial[]): Record<string, unknown>;
  /** `--trials` when not given. */
  defaultTrials?: number;
  /** Checked per trial; a scenario without them is judged by `ok`. */
  expect?(opts: TrialOptions): ScenarioExpectations;
}

export interface TrialEnv {
  cluster: MariaDbCluster;
  cloud: LocalCloud;
  store: DynamoStateStore;
  /** Structured log entries of the functions (failover-started, failover-step, notification, ...). */
  entries: Array<Record<string, unknown>>;
  /** Starts a writer through the VIP (stopped by the env's cleanup). */
  startWriter(paceMs?: number): Writer;
  /** Acknowledged ids of `writer` missing on `nodeId`. */
  lostOn(writer: Writer, nodeId: string): Promise<number>;
  /** Executions that ended SUCCEEDED. */
  succeededFailovers(): number;
  /** Runs `fn` when the trial ends, before the cloud and the cluster go (also on failure). */
  defer(fn: () => Promise<void> | void): void;
}

/** What every trial's local cloud uses unless the scenario says otherwise (set by the bench CLI). */
export type TrialCloudDefaults = Pick<
  LocalCloudOptions,
  'provider' | 'latency' | 'runtime' | 'warmUp' | 'lambda'
>;

let cloudDefaults: TrialCloudDefaults = {};
let clusterDefaults: Pick<ClusterHarnessOptions, 'nodes'> = {};

/** Sets the node count of every later trial's cluster (`--nodes`). */
export function setTrialClusterDefaults(defaults: Pick<ClusterHarnessOptions, 'nodes'>): void {
  clusterDefaults = { ...defaults };
}

/** The node ids every trial's cluster will have (db1 primary). */
export function trialNodeIds(): string[] {
  return Array.from({ length: clusterDefaults.nodes ?? 3 }, (_, i) => `db${i + 1}`);
}

/**
 * Sets the provider, emulated latency and Lambda runtime of every later trial's local cloud
 * (`--provider`, `--latency`, `--runtime`, `--cold`, ...), so scenarios need not thread them through.
 */
export function setTrialCloudDefaults(defaults: TrialCloudDefaults): void {
  cloudDefaults = { ...defaults };
}

/** The cloud defaults the CLI set (for scenarios that start their own local cloud). */
export function trialCloudDefaults(): TrialCloudDefaults {
  return { ...cloudDefaults };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  stepMs = 20,
): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await sleep(stepMs);
  }
  return false;
}

/**
 * Runs `fn` on a fresh cluster and local cloud (health check on its packaged schedule) that
 * report NoProblem, and removes everything afterwards, also on failure.
 */
export async function withTrialEnv<T>(
  opts: {
    cluster?: ClusterHarnessOptions;
    cloud?: Omit<LocalCloudOptions, 'cluster' | 'onLog'>;
    /** Runs on the fresh cluster before the local cloud starts probing it. */
    prepare?: (cluster: MariaDbCluster) => Promise<void>;
  },
  fn: (env: TrialEnv) => Promise<T>,
): Promise<T> {
  const cluster = await startCluster({ ...clusterDefaults, ...opts.cluster });
  const entries: Array<Record<string, unknown>> = [];
  const writers: Writer[] = [];
  const deferred: Array<() => Promise<void> | void> = [];
  let cloud: LocalCloud | undefined;
  try {
    await cluster.query('db1', WRITES_TABLE_DDL);
    await opts.prepare?.(cluster);
    cloud = await startLocalCloud({
      clusterName: 'bench',
      ...cloudDefaults,
      ...opts.cloud,
      cluster,
      onLog: (e) => entries.push(e),
    });
    const store = new DynamoStateStore(cloud.tableName);
    const name = cloud.clusterName;
    if (
      !(await waitUntil(async () => (await store.getClusterState(name))?.analysis === 'NoProblem', 20_000))
    ) {
      throw new Error('the cluster never reported NoProblem');
    }
    const lc = cloud;
    const app = cluster.credentials.app;
    const result = await fn({
      cluster,
      cloud: lc,
      store,
      entries,
      startWriter: (paceMs = 2) => {
        const w = startWriter({
          host: lc.vip.host,
          port: lc.vip.port,
          user: app.user,
          password: app.password,
          paceMs,
        });
        writers.push(w);
        return w;
      },
      lostOn: async (writer, nodeId) => (await missingAcked(cluster, nodeId, writer.acked)).length,
      succeededFailovers: () => lc.sfn.executions().filter((e) => e.status === 'SUCCEEDED').length,
      defer: (fn) => deferred.push(fn),
    });
    return withRuntimeFigures(result, lc, entries);
  } finally {
    for (const fn of deferred.reverse()) await Promise.resolve(fn()).catch(() => {});
    await Promise.allSettled(writers.map((w) => w.stop()));
    await cloud?.stop().catch(() => {});
    await cluster.destroy().catch(() => {});
  }
}

export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] ?? null;
}

/**
 * Adds what the runtime cost the Task path to a trial: `coldStarts` and `initMs` (sum of the Init
 * Durations of the Task invocations), `startMs` (failover-started to the first step's code running:
 * StartExecution, the workflow's own latency and any init) and `stepsMs` (each step's own duration,
 * from the failover-step log entries), and `fenceVipMs` (the VIP move inside FenceOldPrimary).
 */
function withRuntimeFigures<T>(result: T, cloud: LocalCloud, entries: Array<Record<string, unknown>>): T {
  if (typeof result !== 'object' || result === null || !('rtoMs' in result)) return result;
  const reports = cloud.taskReports();
  const stepsMs: Record<string, number> = {};
  for (const e of entries)
    if (e.type === 'failover-step' && typeof e.name === 'string' && stepsMs[e.name] === undefined)
      stepsMs[e.name] = Number(e.endedAt) - Number(e.startedAt);
  // FenceOldPrimary's own VIP move (the mover's figure), the largest part of that step.
  const fence = entries.find((e) => e.type === 'failover-step' && e.name === 'FenceOldPrimary');
  const fenceVip = (fence?.detail as { vipMs?: unknown } | undefined)?.vipMs;
  const started = entries.find((e) => e.type === 'failover-started');
  const firstStep = entries.find((e) => e.type === 'failover-step');
  return {
    ...result,
    runtime: cloud.runtime,
    coldStarts: cloud.runtime === 'packaged' ? reports.filter((r) => r.cold).length : null,
    initMs:
      cloud.runtime === 'packaged' ? Math.round(reports.reduce((s, r) => s + (r.initMs ?? 0), 0)) : null,
    startMs: started && firstStep ? Number(firstStep.startedAt) - Number(started.detectedAt) : null,
    stepsMs,
    ...(typeof fenceVip === 'number' ? { fenceVipMs: fenceVip } : {}),
  };
}
