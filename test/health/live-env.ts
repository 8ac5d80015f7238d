/**
 * Shared set-up of the live health tests: a real 3-node MariaDB cluster, the local cloud with
 * the scheduler off (the tests drive health-check invocations themselves) and, optionally, the
 * prober's own network path through fault-injecting forwarders.
 */
import {
  type ClusterHarnessOptions,
  type MariaDbCluster,
  startCluster,
} from '../../infra/cluster/mariadb-cluster.ts';
import { type LocalCloud, startLocalCloud } from '../../infra/local-cloud/local-cloud.ts';
import { type ProbePaths, startProbePaths } from '../../infra/local-cloud/probe-path.ts';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import type { ClusterConfig } from '../../lib/config/schema.ts';
import { type ClusterMonitorResult, type RoundReport, runHealthCheck } from '../../lib/health/monitor.ts';
import { getRuntime, type Runtime } from '../../lib/runtime.ts';

export interface LiveEnv {
  cluster: MariaDbCluster;
  cloud: LocalCloud;
  paths: ProbePaths | undefined;
  store: DynamoStateStore;
  name: string;
  /** Structured log entries of the functions (notifications, failover-started, EMF lines...). */
  logs: Array<Record<string, unknown>>;
  notifications(): Array<Record<string, unknown>>;
  /** Starts one health-check invocation that probes until `durationMs` from now (or stop()). */
  startMonitor(
    durationMs: number,
    opts?: {
      owner?: string;
      rt?: Runtime;
      clusters?: readonly ClusterConfig[];
      watch?: readonly ClusterConfig[];
    },
  ): RunningMonitor;
  close(): Promise<void>;
}

export interface RunningMonitor {
  owner: string;
  rounds: RoundReport[];
  done: Promise<ClusterMonitorResult[]>;
  stop(): Promise<ClusterMonitorResult[]>;
}

let seq = 0;

/** Starts the cluster and the local cloud; everything is removed by close(), also on failure. */
export async function startLiveEnv(opts: {
  name: string;
  probePaths?: boolean;
  clusterOverrides?: Record<string, unknown>;
  /** Harness options, e.g. { nodes: 2 }. */
  harness?: ClusterHarnessOptions;
}): Promise<LiveEnv> {
  const cluster = await startCluster(opts.harness);
  let paths: ProbePaths | undefined;
  let cloud: LocalCloud | undefined;
  const running = new Set<RunningMonitor>();
  const close = async () => {
    await Promise.allSettled([...running].map((m) => m.stop()));
    await cloud?.stop().catch(() => {});
    await paths?.close().catch(() => {});
    await cluster.destroy().catch(() => {});
  };
  try {
    if (opts.probePaths) {
      const c = cluster;
      paths = await startProbePaths(
        c.nodes.map((n) => n.id),
        (id) => {
          const n = c.node(id);
          return { host: n.host, port: n.port };
        },
      );
    }
    const logs: Array<Record<string, unknown>> = [];
    cloud = await startLocalCloud({
      cluster,
      clusterName: opts.name,
      schedule: false,
      ...(opts.clusterOverrides ? { clusterOverrides: opts.clusterOverrides } : {}),
      ...(paths ? { nodeOverrides: paths.nodeOverrides } : {}),
      onLog: (e) => logs.push(e),
    });
    const store = new DynamoStateStore(cloud.tableName);
    const startMonitor = (
      durationMs: number,
      o: {
        owner?: string;
        rt?: Runtime;
        clusters?: readonly ClusterConfig[];
        watch?: readonly ClusterConfig[];
      } = {},
    ): RunningMonitor => {
      const owner = o.owner ?? `test-invocation-${++seq}`;
      const abort = new AbortController();
      const rounds: RoundReport[] = [];
      const done = runHealthCheck(o.rt ?? getRuntime(), {
        owner,
        deadline: Date.now() + durationMs,
        signal: abort.signal,
        // As functions/health-check.ts reads it (the tests set FAILOVER_METRICS themselves).
        metrics: process.env.FAILOVER_METRICS === '1' ? 'node' : 'off',
        // HEALTH_PERSISTENT_PROBES=0 runs the same tests with a fresh connection per round.
        persistentConnections: process.env.HEALTH_PERSISTENT_PROBES !== '0',
        ...(o.clusters ? { clusters: o.clusters } : {}),
        ...(o.watch ? { watch: o.watch } : {}),
        onRound: (r) => rounds.push(r),
      });
      const m: RunningMonitor = {
        owner,
        rounds,
        done,
        stop: async () => {
          abort.abort();
          try {
            return await done;
          } finally {
            running.delete(m);
          }
        },
      };
      running.add(m);
      void done.finally(() => running.delete(m)).catch(() => {});
      return m;
    };
    return {
      cluster,
      cloud,
      paths,
      store,
      name: opts.name,
      logs,
      notifications: () => logs.filter((e) => e.type === 'notification'),
      startMonitor,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
