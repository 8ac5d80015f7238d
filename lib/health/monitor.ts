import type { Login } from '../adapters/mysql/connection.ts';
import { probeNode } from '../adapters/mysql/probe.ts';
import { ProbeConnections } from '../adapters/mysql/probe-connections.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { analyzeTopology, findQuietSince } from '../core/analyze-topology.ts';
import { confirmFailure, shouldReprobeQuickly } from '../core/confirm-failure.ts';
import type { ConfirmDecision, SuspicionState } from '../core/decision-types.ts';
import type { Analysis, ClusterSnapshot } from '../core/types.ts';
import { describeError } from '../errors.ts';
import { fenceReturnedPrimaries } from '../failover/fence-returned.ts';
import type { FailoverRequest } from '../failover/steps.ts';
import type { ClusterState } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import { type ActiveAlert, evaluateAlertRules } from './alert-rules.ts';
import { type MetricDetail, MetricsWindow } from './metrics.ts';

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
  /** The clusters this invocation watches (its shard: lib/health/shards.ts); default every one. */
  clusters?: readonly ClusterConfig[];
  /** EMF metrics and their detail (metrics.ts); default off. */
  metrics?: MetricDetail | 'off';
  /**
   * Keep one probe connection per node across rounds (probe-connections.ts), and probe at once
   * when the primary's closes; default true. False opens a fresh connection per node per round.
   */
  persistentConnections?: boolean;
}

/** Where one round's time went (performance.now() deltas, ms). */
export interface RoundPhases {
  /** Lease renewal and state table re-read, when due. */
  leaseAndStateMs: number;
  /** Every node's probe (connection set-up when new, queries, the heartbeat's state check), incl. the re-read. */
  probeMs: number;
  /** The pure part: topology analysis, failure confirmation, alert rules. */
  analysisMs: number;
  /** Fencing checks, state/event writes, notifications, failover start. */
  actMs: number;
}

export interface RoundReport {
  cluster: string;
  /** The invocation that probed this round (the lease holder). */
  owner: string;
  /** When the round started and ended (epoch ms). */
  startedAt: number;
  endedAt: number;
  snapshot: ClusterSnapshot;
  analysis: Analysis;
  decision: ConfirmDecision;
  state: ClusterState;
  /** Alerts active after this round (see alert-rules.ts). */
  alerts: ActiveAlert[];
  started?: { executionName: string; alreadyStarted: boolean };
  phases: RoundPhases;
  /** The round was started at once because the primary's connection closed. */
  woken: boolean;
}

export interface ClusterMonitorResult {
  cluster: string;
  /** 'failed': this cluster's probing kept failing (e.g. its state store) until the deadline. */
  outcome: 'probed' | 'lease-held-elsewhere' | 'failed';
  /** The last error of a cluster whose probing failed (no secrets), when it did. */
  error?: { name: string; message: string };
  rounds: number;
  lastAnalysis?: string;
  failoversStarted: string[];
  blocked: number;
}

const LEASE_TTL_MS = 15_000;
const LEASE_RENEW_MS = 5_000;
/**
 * A lease never runs more than this past its holder's deadline (when the holder releases it),
 * so a waiting invocation knows when to start polling instead of polling for seconds.
 */
const LEASE_TAIL_MS = 5_000;
const LEASE_POLL_MS = 250;
const HISTORY_MS = 10_000;
const EVENT_TTL_SECONDS = 14 * 24 * 3600;
const MAX_QUICK_ROUNDS = 5;
/**
 * A primary probe that failed slowly (a timeout) leaves the replicas' readings of the same
 * round a whole timeout old: read them again so the analysis sees them as of now. That is what
 * keeps hang detection within ~2-3 s instead of one more round.
 */
const REREAD_AFTER_MS = 250;

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
 *
 * @param rt the runtime (state store, notifier, starter, config).
 * @param opts the invocation's identity, deadline and optional abort signal / round callback.
 * @returns one result per cluster: rounds probed, or that another invocation holds the lease.
 */
export async function runHealthCheck(rt: Runtime, opts: MonitorOptions): Promise<ClusterMonitorResult[]> {
  return Promise.all((opts.clusters ?? rt.config.clusters).map((c) => monitorClusterIsolated(rt, c, opts)));
}

/** Pause before probing a cluster again after its loop failed (a store error, a lost secret). */
const CLUSTER_RETRY_MS = 1000;

/**
 * One cluster's loop, isolated: an error (its state store throttled, its secret unreadable)
 * ends only that cluster's loop, which is restarted after a pause until the deadline; the other
 * clusters of the invocation keep being probed. The invocation never rejects because of it.
 */
async function monitorClusterIsolated(
  rt: Runtime,
  c: ClusterConfig,
  opts: MonitorOptions,
): Promise<ClusterMonitorResult> {
  const sleep = opts.sleep ?? abortableSleep(opts.signal);
  const rounds = 0;
  const failoversStarted: string[] = [];
  for (;;) {
    try {
      const r = await monitorCluster(rt, c, opts);
      return {
        ...r,
        rounds: r.rounds + rounds,
        failoversStarted: [...failoversStarted, ...r.failoversStarted],
      };
    } catch (err) {
      const error = describeError(err);
      rt.log({ level: 'error', type: 'cluster-monitor-failed', cluster: c.name, error });
      if (opts.signal?.aborted || rt.now() + CLUSTER_RETRY_MS + c.detection.intervalMs >= opts.deadline) {
        return { cluster: c.name, outcome: 'failed', error, rounds, failoversStarted, blocked: 0 };
      }
      await sleep(CLUSTER_RETRY_MS);
    }
  }
}

/*
 * Lease hand-over between scheduled invocations (rate 1 minute, each probing ~65 s):
 *
 *   inv A  |--probing------------------------------------|release
 *   inv B                                 |sleep...|poll.|--probing---- ...
 *          0s                            60s            66s
 *
 * A's lease expires LEASE_TAIL_MS after A's deadline (A renews it with that bound), so B sleeps
 * until shortly before A's deadline and then polls every 250 ms: neither a gap nor two probers,
 * and a handful of conditional writes per hand-over instead of a poll every 250 ms for 6 s.
 * A crashed prober's lease expires after at most LEASE_TTL_MS.
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
  const leaseTtl = (now: number) => Math.min(LEASE_TTL_MS, opts.deadline - now + LEASE_TAIL_MS);
  let lease = await rt.store.acquireLease(c.name, opts.owner, rt.now(), leaseTtl(rt.now()));
  while (!lease.held) {
    const now = rt.now();
    if (!live() || now + c.detection.intervalMs >= opts.deadline) {
      result.outcome = 'lease-held-elsewhere';
      return result;
    }
    const untilHolderDeadline = lease.expiresAt - LEASE_TAIL_MS - 1500 - now;
    const pause = Math.max(LEASE_POLL_MS, untilHolderDeadline);
    await sleep(Math.min(pause, Math.max(10, opts.deadline - c.detection.intervalMs - now)));
    lease = await rt.store.acquireLease(c.name, opts.owner, rt.now(), leaseTtl(rt.now()));
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
  // Written on change plus a heartbeat, counted from the stored item: a new invocation does
  // not rewrite an unchanged state the previous one wrote seconds ago.
  let lastWrittenAt = state.updatedAt;
  let lastCode = state.analysis;
  let lastPrimary = state.primaryId;
  let activeAlerts = await loadActiveAlerts(rt, c.name);
  const lastSeen: LastSeen = new Map();
  for (const t of state.topology) {
    if (t.gtid !== undefined && t.seenAt !== undefined)
      lastSeen.set(t.nodeId, { gtid: t.gtid, seenAt: t.seenAt, asPrimary: t.role === 'primary' });
  }
  const history: ClusterSnapshot[] = [];
  let suspicion: SuspicionState | undefined;
  let primaryDown: { primaryId: string; since: number } | undefined;
  let blockedReportedFor: string | undefined;
  let quickRounds = 0;
  const counters = { ...state.counters };
  const metricsOn = opts.metrics !== undefined && opts.metrics !== 'off';
  const metrics = new MetricsWindow(c.name, opts.metrics === 'off' ? undefined : opts.metrics);
  // A primary's held connection closing is the kernel telling us mariadbd died (or the server
  // dropped us): probe at once instead of at the next interval. The close is not evidence; the
  // probe it triggers is, under the same rules (confirm-failure.ts).
  let wake: (() => void) | undefined;
  let woken = false;
  let wokenRound = false;
  const conns =
    opts.persistentConnections === false
      ? undefined
      : new ProbeConnections((nodeId) => {
          if (nodeId !== state.primaryId) return;
          woken = true;
          wake?.();
        });
  const thresholds = {
    replicaLagAlertSeconds: c.detection.replicaLagAlertSeconds,
    longTransactionAlertSeconds: c.detection.longTransactionAlertSeconds,
    semiSyncPolicy: c.failover.semiSync,
  };

  try {
    while (live() && rt.now() + c.detection.intervalMs < opts.deadline) {
      const roundStart = rt.now();
      const t0 = performance.now();
      let analysisMs = 0;
      if (roundStart - leaseRenewedAt >= LEASE_RENEW_MS) {
        const renewed = await rt.store.acquireLease(c.name, opts.owner, roundStart, leaseTtl(roundStart));
        if (!renewed.held) break; // someone took over (our lease lapsed): stop, never probe twice
        leaseRenewedAt = roundStart;
      }
      // The failover state machine changes the primary: re-read while anything is going on.
      if (suspicion || state.failoverInProgress || roundStart - stateReadAt > 10_000) {
        state = (await rt.store.getClusterState(c.name)) ?? state;
        stateReadAt = roundStart;
      }
      const primaryId = state.primaryId;
      // Cached (lib/adapters/secrets.ts): a rotated password arrives within the TTL, or at once after a 1045.
      logins = await rt.logins(c).catch(() => logins);
      if (!secrets.includes(logins.admin.password))
        secrets.push(logins.admin.password, logins.replication.password);
      // The heartbeat goes only to the recorded primary of the current epoch, checked right
      // before the write (a round that began before a failover must not write on the old
      // primary); the read also tells this loop about a failover it did not start itself.
      const roundState = state;
      let freshState: ClusterState | undefined;
      const beforeHeartbeat = async () => {
        if (roundState.failoverInProgress) return false;
        freshState = await rt.store.getClusterState(c.name);
        return (
          freshState !== undefined &&
          freshState.epoch === roundState.epoch &&
          !freshState.failoverInProgress &&
          freshState.primaryId === primaryId
        );
      };
      const tProbe = performance.now();
      let snapshot = await probeCluster(
        c,
        primaryId,
        logins.admin,
        roundStart,
        undefined,
        beforeHeartbeat,
        conns,
      );
      if (freshState && (freshState.epoch !== state.epoch || freshState.failoverInProgress)) {
        state = freshState;
        stateReadAt = rt.now();
      }
      const firstPrimary = snapshot.nodes.find((n) => n.nodeId === primaryId);
      if (
        firstPrimary &&
        !firstPrimary.reachable &&
        rt.now() - roundStart >= REREAD_AFTER_MS &&
        snapshot.nodes.some((n) => n.nodeId !== primaryId && n.reachable)
      ) {
        history.push(snapshot);
        const replicas = c.nodes.filter((n) => n.id !== primaryId).map((n) => n.id);
        const again = await probeCluster(c, primaryId, logins.admin, rt.now(), replicas, undefined, conns);
        snapshot = { ...again, nodes: [firstPrimary, ...again.nodes] };
      }
      const tProbed = performance.now();
      const analysis = analyzeTopology(snapshot, history, {
        replicaLagAlertSeconds: c.detection.replicaLagAlertSeconds,
        longTransactionAlertSeconds: c.detection.longTransactionAlertSeconds,
        progressWindowMs: Math.max(1200, Math.round(c.detection.intervalMs * 1.2)),
      });
      const primaryProbe = snapshot.nodes.find((n) => n.nodeId === primaryId);
      // Access denied: the password may have been rotated. Read the secrets again next round; the
      // analysis reports the auth failure, never a dead primary (the server answered).
      if (snapshot.nodes.some((n) => n.error?.kind === 'auth')) rt.secrets.expireAfterAuthFailure();
      if (primaryProbe?.reachable || primaryProbe?.error?.kind === 'auth') primaryDown = undefined;
      else if (primaryDown?.primaryId !== primaryId) primaryDown = { primaryId, since: roundStart };
      const quietSince = analysis.actionable ? findQuietSince(snapshot, history) : undefined;
      analysisMs += performance.now() - tProbed;
      rememberSeen(lastSeen, snapshot);
      history.push(snapshot);
      while (history.length > 2 && (history[0]?.takenAt ?? 0) < roundStart - HISTORY_MS) history.shift();
      // An old primary back writable (restarted, resumed) is fenced at once (issue 4).
      await fenceReturnedPrimaries(rt, c, snapshot, state, logins.admin).catch(() => undefined);
      result.rounds++;
      counters.probes++;
      result.lastAnalysis = analysis.code;

      const now = rt.now();
      // The evidence holds since the prober's first failed probe of the primary, but not
      // before the replicas went quiet: a window counted from there is real time the primary
      // has been silent to everyone, however long the rounds took.
      const evidenceSince =
        primaryDown && quietSince !== undefined ? Math.max(primaryDown.since, quietSince) : undefined;
      const tConfirm = performance.now();
      const confirm = confirmFailure(
        suspicion,
        analysis,
        now,
        {
          confirmWindowMs: c.detection.confirmWindowMs,
          crashConfirmRounds: c.detection.crashConfirmRounds,
        },
        evidenceSince !== undefined ? { evidenceSince } : {},
      );
      suspicion = confirm.state;
      const decision = confirm.decision;

      const alerts = evaluateAlertRules(snapshot, analysis, thresholds);
      analysisMs += performance.now() - tConfirm;
      const raised = alerts.filter((a) => !activeAlerts.some((b) => b.key === a.key));
      const cleared = activeAlerts.filter((a) => !alerts.some((b) => b.key === a.key));
      const codeChanged = analysis.code !== lastCode;
      const roleChanged = primaryId !== lastPrimary;
      if (codeChanged || roleChanged || raised.length > 0 || cleared.length > 0) {
        if (codeChanged || roleChanged) counters.stateChanges++;
        await reportChange(rt, c.name, {
          now,
          from: lastCode,
          analysis,
          previousPrimary: lastPrimary,
          primaryId,
          alerts,
          raised,
          cleared,
        });
        activeAlerts = alerts;
        lastPrimary = primaryId;
      }
      if (codeChanged || now - lastWrittenAt >= c.detection.stateHeartbeatMs) {
        await rt.store.putHealth(c.name, {
          analysis: analysis.code,
          description: analysis.description,
          topology: summarize(snapshot, lastSeen),
          // Failovers are counted by the state machine in the same item: keep its count.
          counters: { ...counters, failovers: Math.max(counters.failovers, state.counters.failovers) },
          updatedAt: now,
        });
        lastWrittenAt = now;
        lastCode = analysis.code;
      }
      if (metricsOn) {
        metrics.add(snapshot, analysis, alerts, codeChanged || roleChanged ? 1 : 0, now - roundStart);
        if (metrics.due(now, codeChanged || roleChanged || raised.length > 0 || cleared.length > 0)) {
          for (const line of metrics.flush(now)) rt.log(line);
        }
      }

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
            // The starter may run it as a later attempt (`-a2`, ...) when an earlier one ended unclaimed.
            const r = await rt.starter.start(request.executionName, request);
            request.executionName = r.executionName;
            started = { executionName: r.executionName, alreadyStarted: r.alreadyStarted };
            if (!r.alreadyStarted) result.failoversStarted.push(r.executionName);
            // Until the execution claims the epoch (its first step; seconds when the worker is
            // cold) the state table shows no failover, so the next confirmed rounds ask again and
            // get the running execution back: one failover, logged once.
            rt.log(
              r.alreadyStarted
                ? {
                    level: 'debug',
                    type: 'failover-start-repeated',
                    cluster: c.name,
                    executionName: r.executionName,
                  }
                : { level: 'warn', type: 'failover-started', ...request, detectedAt: now },
            );
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
      const tEnd = performance.now();
      opts.onRound?.({
        phases: {
          leaseAndStateMs: tProbe - t0,
          probeMs: tProbed - tProbe,
          analysisMs,
          actMs: tEnd - tProbed - analysisMs,
        },
        woken: wokenRound,
        cluster: c.name,
        owner: opts.owner,
        startedAt: roundStart,
        endedAt: rt.now(),
        snapshot,
        analysis,
        decision,
        state,
        alerts,
        ...(started ? { started } : {}),
      });

      // A refused primary is either a crash the replicas have not reported yet (they do within
      // ~0.1 s) or a confirmed one: look again at once instead of a whole interval later.
      // Bounded, so a primary that stays down (failover blocked) is not hammered.
      const primaryRefused = primaryProbe?.error?.kind === 'refused';
      quickRounds = shouldReprobeQuickly(decision) || primaryRefused ? quickRounds + 1 : 0;
      const pause =
        quickRounds > 0 && quickRounds <= MAX_QUICK_ROUNDS
          ? c.detection.crashReprobeMs
          : c.detection.intervalMs;
      wokenRound = woken;
      if (!woken) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          void sleep(roundStart + pause - rt.now()).then(resolve);
        });
        wake = undefined;
        wokenRound = woken;
      }
      woken = false;
    }
  } finally {
    // Before the lease goes: the next holder never finds our connections still open.
    await conns?.closeAll();
    if (metricsOn) for (const line of metrics.flush(rt.now())) rt.log(line);
    await rt.store.releaseLease(c.name, opts.owner).catch(() => {});
  }
  return result;
}

/** The alerts the previous invocation left active (carried in the newest health event). */
async function loadActiveAlerts(rt: Runtime, cluster: string): Promise<ActiveAlert[]> {
  try {
    for (const e of await rt.store.listEvents(cluster, 10)) {
      const alerts = e.data?.alerts;
      if (Array.isArray(alerts)) return alerts as ActiveAlert[];
    }
  } catch {
    // Unknown: treat every alert as new (a repeated notification beats a missed one).
  }
  return [];
}

/**
 * One event item and one notification for everything that changed in a round: the analysis
 * (health state), the primary (role), alerts raised and cleared. The event carries the active
 * alerts, so the next invocation notifies only what changes after it takes over.
 */
async function reportChange(
  rt: Runtime,
  cluster: string,
  ch: {
    now: number;
    from: string;
    analysis: Analysis;
    previousPrimary: string;
    primaryId: string;
    alerts: ActiveAlert[];
    raised: ActiveAlert[];
    cleared: ActiveAlert[];
  },
): Promise<void> {
  const a = ch.analysis;
  const lines: string[] = [];
  if (ch.from !== a.code) lines.push(`${ch.from} -> ${a.code}: ${a.description}`);
  if (ch.previousPrimary !== ch.primaryId)
    lines.push(`Role change: the primary is now ${ch.primaryId} (was ${ch.previousPrimary})`);
  for (const r of ch.raised) lines.push(`ALERT ${r.rule}: ${r.description}`);
  for (const r of ch.cleared) lines.push(`cleared ${r.rule} on ${r.nodeId}`);
  const type =
    ch.from !== a.code
      ? 'AnalysisChanged'
      : ch.previousPrimary !== ch.primaryId
        ? 'RoleChanged'
        : 'AlertsChanged';
  const parts: string[] = [];
  if (ch.from !== a.code) parts.push(a.code);
  if (ch.previousPrimary !== ch.primaryId) parts.push(`primary ${ch.primaryId}`);
  if (ch.raised.length > 0) parts.push(`Alert: ${ch.raised.map((r) => `${r.rule}(${r.nodeId})`).join(', ')}`);
  else if (parts.length === 0)
    parts.push(`Cleared: ${ch.cleared.map((r) => `${r.rule}(${r.nodeId})`).join(', ')}`);
  const subject = parts.join(' | ');
  const severity = a.actionable
    ? 'critical'
    : a.code !== 'NoProblem' || ch.raised.length > 0
      ? 'warning'
      : 'info';
  const message = lines.join('\n');
  await rt.store.putEvent(
    {
      cluster,
      at: ch.now,
      type,
      message,
      data: {
        analysis: a.code,
        primaryId: ch.primaryId,
        findings: a.findings.map((f) => ({ code: f.code, nodeId: f.nodeId })),
        alerts: ch.alerts,
        raised: ch.raised.map((r) => r.key),
        cleared: ch.cleared.map((r) => r.key),
      },
    },
    EVENT_TTL_SECONDS,
  );
  await rt.notifier.notify({
    cluster,
    severity,
    subject,
    message,
    data: {
      analysis: a.code,
      findings: a.findings,
      raised: ch.raised,
      cleared: ch.cleared.map((r) => r.key),
    },
  });
}

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

/** Position and time of each node as last reached, for the state table (see summarize). */
type LastSeen = Map<string, { gtid: string; seenAt: number; asPrimary: boolean }>;

function rememberSeen(lastSeen: LastSeen, s: ClusterSnapshot): void {
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
function summarize(s: ClusterSnapshot, lastSeen: LastSeen): ClusterState['topology'] {
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
