import type { Login } from '../adapters/mysql/connection.ts';
import { probeNode } from '../adapters/mysql/probe.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { analyzeTopology } from '../core/analyze-topology.ts';
import { confirmFailure, shouldReprobeQuickly } from '../core/confirm-failure.ts';
import type { ConfirmDecision, SuspicionState } from '../core/decision-types.ts';
import type { Analysis, ClusterSnapshot } from '../core/types.ts';
import { describeError } from '../errors.ts';
import type { FailoverRequest } from '../failover/steps.ts';
import type { ClusterState } from '../ports.ts';
import type { Runtime } from '../runtime.ts';

export interface MonitorOptions {
  /** Unique per invocation (the Lambda request id). */
  owner: string;
  /** Epoch ms at which this invocation must have stopped probing and released its leases. */
  deadline: number;
  sleep?: (ms: number) => Promise<void>;
  /** Ends the loop early (the local scheduler stopping). */
  signal?: AbortSignal;
  /** Called after every round (the sandbox prints from it). */
  onRound?: (r: RoundReport) => void;
}

export interface RoundReport {
  cluster: string;
  snapshot: ClusterSnapshot;
  analysis: Analysis;
  decision: ConfirmDecision;
  state: ClusterState;
  started?: { executionName: string; alreadyStarted: boolean };
}

export interface ClusterMonitorResult {
  cluster: string;
  outcome: 'probed' | 'lease-held-elsewhere';
  rounds: number;
  lastAnalysis?: string;
  failoversStarted: string[];
  blocked: number;
}

const LEASE_TTL_MS = 15_000;
const LEASE_RENEW_MS = 5_000;
const HISTORY_MS = 10_000;
const EVENT_TTL_SECONDS = 14 * 24 * 3600;
const MAX_QUICK_ROUNDS = 5;

function abortableSleep(signal: AbortSignal | undefined) {
  return (ms: number) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const t = setTimeout(done, Math.max(0, ms));
      function done() {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    });
}

/**
 * Probes every configured cluster until the deadline, concurrently: a slow cluster never
 * delays another. Each cluster is watched by one invocation at a time (a lease).
 */
export async function runHealthCheck(rt: Runtime, opts: MonitorOptions): Promise<ClusterMonitorResult[]> {
  return Promise.all(rt.config.clusters.map((c) => monitorCluster(rt, c, opts)));
}

/*
 * Lease hand-over between scheduled invocations (rate 1 minute, each probing ~65 s):
 *
 *   inv A  |--probing------------------------------------|release
 *   inv B                                 |wait for lease.|--probing---- ...
 *          0s                            60s            65s
 *
 * B polls the lease until A releases it (or it expires, if A died), so there is neither a gap
 * nor two probers. A crashed prober's lease expires after LEASE_TTL_MS.
 */
async function monitorCluster(
  rt: Runtime,
  c: ClusterConfig,
  opts: MonitorOptions,
): Promise<ClusterMonitorResult> {
  const sleep = opts.sleep ?? abortableSleep(opts.signal);
  const live = () => !opts.signal?.aborted;
  const result: ClusterMonitorResult = {
    cluster: c.name,
    outcome: 'probed',
    rounds: 0,
    failoversStarted: [],
    blocked: 0,
  };
  let lease = await rt.store.acquireLease(c.name, opts.owner, rt.now(), LEASE_TTL_MS);
  while (!lease.held) {
    if (!live() || rt.now() + c.detection.intervalMs >= opts.deadline) {
      result.outcome = 'lease-held-elsewhere';
      return result;
    }
    await sleep(Math.min(250, Math.max(10, lease.expiresAt - rt.now())));
    lease = await rt.store.acquireLease(c.name, opts.owner, rt.now(), LEASE_TTL_MS);
  }
  let leaseRenewedAt = rt.now();
  let logins: { admin: Login; replication: Login };
  try {
    logins = await rt.logins(c);
  } catch (err) {
    await rt.store.releaseLease(c.name, opts.owner);
    throw err;
  }
  const secrets = [logins.admin.password, logins.replication.password];

  let state = await rt.store.initClusterState(initialState(c, rt.now()));
  let stateReadAt = rt.now();
  let lastWrittenAt = 0;
  let lastCode = state.analysis;
  const history: ClusterSnapshot[] = [];
  let suspicion: SuspicionState | undefined;
  let blockedReportedFor: string | undefined;
  let quickRounds = 0;
  const counters = { ...state.counters };

  try {
    while (live() && rt.now() + c.detection.intervalMs < opts.deadline) {
      const roundStart = rt.now();
      if (roundStart - leaseRenewedAt >= LEASE_RENEW_MS) {
        const renewed = await rt.store.acquireLease(c.name, opts.owner, roundStart, LEASE_TTL_MS);
        if (!renewed.held) break; // someone took over (our lease lapsed): stop, never probe twice
        leaseRenewedAt = roundStart;
      }
      // The failover state machine changes the primary: re-read while anything is going on.
      if (suspicion || state.failoverInProgress || roundStart - stateReadAt > 10_000) {
        state = (await rt.store.getClusterState(c.name)) ?? state;
        stateReadAt = roundStart;
      }
      const snapshot = await probeCluster(c, state.primaryId, logins.admin, roundStart);
      const analysis = analyzeTopology(snapshot, history, {
        replicaLagAlertSeconds: c.detection.replicaLagAlertSeconds,
        longTransactionAlertSeconds: c.detection.longTransactionAlertSeconds,
        progressWindowMs: Math.max(1200, Math.round(c.detection.intervalMs * 1.2)),
      });
      history.push(snapshot);
      while (history.length > 2 && (history[0]?.takenAt ?? 0) < roundStart - HISTORY_MS) history.shift();
      result.rounds++;
      counters.probes++;
      result.lastAnalysis = analysis.code;

      const now = rt.now();
      const confirm = confirmFailure(suspicion, analysis, now, {
        confirmWindowMs: c.detection.confirmWindowMs,
        crashConfirmRounds: c.detection.crashConfirmRounds,
      });
      suspicion = confirm.state;
      const decision = confirm.decision;

      if (analysis.code !== lastCode) {
        counters.stateChanges++;
        await rt.store.putEvent(
          {
            cluster: c.name,
            at: now,
            type: 'AnalysisChanged',
            message: `${lastCode} -> ${analysis.code}: ${analysis.description}`,
            data: { findings: analysis.findings.map((f) => ({ code: f.code, nodeId: f.nodeId })) },
          },
          EVENT_TTL_SECONDS,
        );
        await rt.notifier.notify({
          cluster: c.name,
          severity: analysis.code === 'NoProblem' ? 'info' : analysis.actionable ? 'critical' : 'warning',
          subject: `${analysis.code}`,
          message: `${lastCode} -> ${analysis.code}: ${analysis.description}`,
          data: { findings: analysis.findings },
        });
      }
      if (analysis.code !== lastCode || now - lastWrittenAt >= c.detection.stateHeartbeatMs) {
        await rt.store.putHealth(c.name, {
          analysis: analysis.code,
          description: analysis.description,
          topology: summarize(snapshot),
          counters,
          updatedAt: now,
        });
        lastWrittenAt = now;
        lastCode = analysis.code;
      }
      emitMetrics(rt, c.name, snapshot, analysis);

      let started: RoundReport['started'];
      if (decision.kind === 'confirmed' && !state.failoverInProgress) {
        state = (await rt.store.getClusterState(c.name)) ?? state;
        stateReadAt = now;
        if (state.blockedUntil && state.blockedUntil > now && !state.failoverInProgress) {
          result.blocked++;
          if (blockedReportedFor !== decision.incidentId) {
            blockedReportedFor = decision.incidentId;
            counters.blockedFailovers++;
            const msg = `${analysis.code} confirmed on ${state.primaryId}, but automatic failover is BLOCKED until ${new Date(state.blockedUntil).toISOString()} (anti-flapping after the last failover). Check the cluster and run: serverless invoke -f acknowledge --data '{"cluster":"${c.name}"}'`;
            await rt.store.putEvent(
              { cluster: c.name, at: now, type: 'FailoverBlocked', message: msg },
              EVENT_TTL_SECONDS,
            );
            await rt.notifier.notify({
              cluster: c.name,
              severity: 'critical',
              subject: 'Failover BLOCKED',
              message: msg,
            });
          }
        } else if (!state.failoverInProgress) {
          const request: FailoverRequest = {
            cluster: c.name,
            kind: 'failover',
            failedPrimary: state.primaryId,
            expectedEpoch: state.epoch,
            incidentId: decision.incidentId,
            executionName: `${c.name}-failover-e${state.epoch + 1}`,
            reason: {
              analysis: analysis.code,
              evidence: decision.evidence,
              since: decision.since,
              rounds: decision.rounds,
            },
          };
          try {
            const r = await rt.starter.start(request.executionName, request);
            started = { executionName: request.executionName, alreadyStarted: r.alreadyStarted };
            if (!r.alreadyStarted) result.failoversStarted.push(request.executionName);
            rt.log({ level: 'warn', type: 'failover-started', ...request, detectedAt: now });
          } catch (err) {
            rt.log({
              level: 'error',
              type: 'failover-start-failed',
              cluster: c.name,
              error: describeError(err, secrets),
            });
          }
          // Follow the state machine closely from here on.
          state = {
            ...state,
            failoverInProgress: {
              epoch: state.epoch + 1,
              executionName: request.executionName,
              startedAt: now,
              failedPrimary: state.primaryId,
            },
          };
        }
      }
      opts.onRound?.({
        cluster: c.name,
        snapshot,
        analysis,
        decision,
        state,
        ...(started ? { started } : {}),
      });

      // A refused primary is either a crash the replicas have not reported yet (they do within
      // ~0.1 s) or a confirmed one: look again at once instead of a whole interval later.
      // Bounded, so a primary that stays down (failover blocked) is not hammered.
      const primaryRefused =
        snapshot.nodes.find((n) => n.nodeId === snapshot.primaryId)?.error?.kind === 'refused';
      quickRounds = shouldReprobeQuickly(decision) || primaryRefused ? quickRounds + 1 : 0;
      const pause =
        quickRounds > 0 && quickRounds <= MAX_QUICK_ROUNDS
          ? c.detection.crashReprobeMs
          : c.detection.intervalMs;
      await sleep(roundStart + pause - rt.now());
    }
  } finally {
    await rt.store
      .putHealth(c.name, {
        analysis: lastCode,
        description: state.description,
        topology: state.topology,
        counters,
        updatedAt: rt.now(),
      })
      .catch(() => {});
    await rt.store.releaseLease(c.name, opts.owner).catch(() => {});
  }
  return result;
}

/** One probe round: every node concurrently, bounded by the connect/query timeouts. */
export async function probeCluster(
  c: ClusterConfig,
  primaryId: string,
  admin: Login,
  takenAt: number,
): Promise<ClusterSnapshot> {
  const t = { connectTimeoutMs: c.detection.connectTimeoutMs, queryTimeoutMs: c.detection.queryTimeoutMs };
  const nodes = await Promise.all(
    c.nodes.map((n) =>
      probeNode(
        {
          nodeId: n.id,
          host: n.probeHost ?? n.host,
          port: n.probePort ?? n.port,
          isPrimary: n.id === primaryId,
        },
        admin,
        t,
      ),
    ),
  );
  return { cluster: c.name, takenAt, primaryId, nodes };
}

function initialState(c: ClusterConfig, now: number): ClusterState {
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

function summarize(s: ClusterSnapshot): ClusterState['topology'] {
  return s.nodes.map((n) => ({
    nodeId: n.nodeId,
    role: n.nodeId === s.primaryId ? 'primary' : 'replica',
    reachable: n.reachable,
    ...(n.gtidCurrentPos !== undefined
      ? { gtid: n.nodeId === s.primaryId ? (n.gtidBinlogPos ?? '') : n.gtidCurrentPos }
      : {}),
    ...(n.replication ? { lagSeconds: n.replication.secondsBehindMaster } : {}),
  }));
}

/** CloudWatch Embedded Metric Format: one log line, no API call, metrics per cluster and node. */
function emitMetrics(rt: Runtime, cluster: string, s: ClusterSnapshot, a: Analysis): void {
  if (process.env.FAILOVER_METRICS !== '1') return;
  for (const n of s.nodes) {
    const isReplica = n.nodeId !== s.primaryId;
    rt.log({
      _aws: {
        Timestamp: s.takenAt,
        CloudWatchMetrics: [
          {
            Namespace: 'ServerlessMysqlFailover',
            Dimensions: [['Cluster'], ['Cluster', 'Node']],
            Metrics: [
              { Name: 'NodeReachable', Unit: 'Count' },
              { Name: 'ProbeMs', Unit: 'Milliseconds' },
              ...(isReplica
                ? [
                    { Name: 'ReplicaIoRunning', Unit: 'Count' },
                    { Name: 'ReplicaSqlRunning', Unit: 'Count' },
                    { Name: 'ReplicaLagSeconds', Unit: 'Seconds' },
                  ]
                : [
                    { Name: 'SemiSyncActive', Unit: 'Count' },
                    { Name: 'LongestTransactionSeconds', Unit: 'Seconds' },
                  ]),
              { Name: 'ClusterHealthy', Unit: 'Count' },
            ],
          },
        ],
      },
      Cluster: cluster,
      Node: n.nodeId,
      NodeReachable: n.reachable ? 1 : 0,
      ProbeMs: n.probeMs,
      ReplicaIoRunning: n.replication?.ioState === 'Yes' ? 1 : 0,
      ReplicaSqlRunning: n.replication?.sqlRunning ? 1 : 0,
      ReplicaLagSeconds: n.replication?.secondsBehindMaster ?? 0,
      SemiSyncActive: n.semiSync?.masterActive ? 1 : 0,
      LongestTransactionSeconds: n.longestTrxSeconds ?? 0,
      ClusterHealthy: a.code === 'NoProblem' ? 1 : 0,
      Analysis: a.code,
    });
  }
}
