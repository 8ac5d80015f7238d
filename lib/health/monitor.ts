import type { Login } from '../adapters/mysql/connection.ts';
import { ProbeConnections } from '../adapters/mysql/probe-connections.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { analyzeTopology, findQuietSince } from '../core/analyze-topology.ts';
import { confirmFailure, shouldReprobeQuickly } from '../core/confirm-failure.ts';
import type { ConfirmDecision, SuspicionState } from '../core/decision-types.ts';
import type { Analysis, ClusterSnapshot } from '../core/types.ts';
import { describeError } from '../errors.ts';
import { fenceReturnedPrimaries } from '../failover/fence-returned.ts';
import type { ClusterState } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import { loadActiveAlerts, reportChange, startOrBlockFailover } from './act.ts';
import { type ActiveAlert, evaluateAlertRules } from './alert-rules.ts';
import { ClusterLease, GUEST_OWNER_SUFFIX, SELF_FENCE_MS, ShardHeartbeat } from './lease.ts';
import { type MetricDetail, MetricsWindow } from './metrics.ts';
import { initialState, type LastSeen, probeCluster, rememberSeen, summarize } from './round.ts';

export { probeCluster } from './round.ts';

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
  /**
   * Clusters of the other shards: this invocation takes over one whose lease lapsed (its shard's
   * invocation died or hung) and probes it until its own deadline, when the home shard's
   * invocation, waiting for the lease, takes it back (lease.ts `takeLapsed`). Default none.
   */
  watch?: readonly ClusterConfig[];
  /**
   * Clusters of the shard before the watched one (two back in the ring): taken over like `watch`,
   * WATCH_LATER_GRACE_MS later, so that two neighbouring shards dying at once still lose no
   * cluster. Default none.
   */
  watchLater?: readonly ClusterConfig[];
  /**
   * The invocation's heartbeat every lease is linked to (lease.ts); default one per
   * runHealthCheck call, keyed by `owner`.
   */
  heartbeat?: ShardHeartbeat;
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
  /**
   * 'failed': this cluster's probing kept failing (e.g. its state store) until the deadline.
   * 'watched': another shard's cluster whose lease never lapsed (not probed here).
   */
  outcome: 'probed' | 'lease-held-elsewhere' | 'failed' | 'watched';
  /** Another shard's cluster, probed here after its lease lapsed (taken over). */
  guest?: boolean;
  /** The last error of a cluster whose probing failed (no secrets), when it did. */
  error?: { name: string; message: string };
  rounds: number;
  lastAnalysis?: string;
  failoversStarted: string[];
  blocked: number;
}

const HISTORY_MS = 10_000;
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
  const o = { ...opts, heartbeat: opts.heartbeat ?? new ShardHeartbeat(rt, opts.owner, opts.deadline) };
  return Promise.all([
    ...(o.clusters ?? rt.config.clusters).map((c) => monitorClusterIsolated(rt, c, o)),
    ...(o.watch ?? []).map((c) => watchCluster(rt, c, o)),
    ...(o.watchLater ?? []).map((c) => watchCluster(rt, c, o, WATCH_LATER_GRACE_MS)),
  ]);
}

/** How much later than its nearer watcher a cluster's second watcher takes it over. */
export const WATCH_LATER_GRACE_MS = 1500;

/**
 * A cluster of another shard: waits for its lease to lapse (its prober died or hung), then
 * probes it as its own until the deadline or until the lease is taken back, and watches again.
 * Errors end only the current take-over (the lease is released) and are logged.
 */
async function watchCluster(
  rt: Runtime,
  c: ClusterConfig,
  opts: MonitorOptions,
  laterMs = 0,
): Promise<ClusterMonitorResult> {
  const sleep = opts.sleep ?? abortableSleep(opts.signal);
  const live = () => !opts.signal?.aborted;
  const result: ClusterMonitorResult = {
    cluster: c.name,
    outcome: 'watched',
    rounds: 0,
    failoversStarted: [],
    blocked: 0,
  };
  while (live() && rt.now() + c.detection.intervalMs < opts.deadline) {
    const lease = new ClusterLease(
      rt,
      c.name,
      `${opts.owner}${GUEST_OWNER_SUFFIX}`,
      opts.deadline,
      opts.heartbeat,
    );
    try {
      if (!(await lease.takeLapsed(c.detection.intervalMs, live, sleep, laterMs))) break;
    } catch (err) {
      rt.log({ level: 'error', type: 'cluster-watch-failed', cluster: c.name, error: describeError(err) });
      await sleep(CLUSTER_RETRY_MS);
      continue;
    }
    rt.log({ level: 'warn', type: 'cluster-taken-over', cluster: c.name, owner: opts.owner, at: rt.now() });
    result.guest = true;
    result.outcome = 'probed';
    try {
      const r = await monitorCluster(rt, c, opts, lease);
      result.rounds += r.rounds;
      result.blocked += r.blocked;
      result.failoversStarted.push(...r.failoversStarted);
      if (r.lastAnalysis !== undefined) result.lastAnalysis = r.lastAnalysis;
    } catch (err) {
      result.error = describeError(err);
      rt.log({ level: 'error', type: 'cluster-monitor-failed', cluster: c.name, error: result.error });
      await sleep(CLUSTER_RETRY_MS);
    }
  }
  return result;
}

/** Which nodes were reached, as a comparable string (node order does not matter). */
function reachability(nodes: ReadonlyArray<{ nodeId: string; reachable: boolean }>): string {
  return nodes
    .map((n) => `${n.nodeId}:${n.reachable ? 1 : 0}`)
    .sort()
    .join(',');
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

async function monitorCluster(
  rt: Runtime,
  c: ClusterConfig,
  opts: MonitorOptions,
  taken?: ClusterLease,
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
  const lease = taken ?? new ClusterLease(rt, c.name, opts.owner, opts.deadline, opts.heartbeat);
  if (!taken && !(await lease.acquire(c.detection.intervalMs, live, sleep))) {
    result.outcome = 'lease-held-elsewhere';
    return result;
  }
  let logins: { admin: Login; replication: Login };
  try {
    logins = await rt.logins(c);
  } catch (err) {
    await lease.release();
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
  let lastReach = reachability(state.topology);
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
  // Safe only while the store says the lease is ours: a loop stalled on its state store (a hung
  // request) closes its held connections before the lease can lapse, and probes or acts no more
  // until it has renewed, so a guest that takes the lapsed lease (watchCluster) is the only prober.
  const holding = () => rt.now() < lease.heldUntil - SELF_FENCE_MS;
  let selfFence: NodeJS.Timeout | undefined;
  const armSelfFence = () => {
    clearTimeout(selfFence);
    selfFence = setTimeout(
      () => void conns?.closeAll(),
      Math.max(0, lease.heldUntil - SELF_FENCE_MS - rt.now()),
    );
  };
  armSelfFence();
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
      // Someone took over (our lease lapsed): stop, never probe twice.
      if (!(await lease.renewIfDue(roundStart)) || !holding()) break;
      armSelfFence();
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
      // The round stalled (its store hung) past our lease: what follows would probe, fence or act.
      if (!holding()) break;
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
      if (!holding()) break;
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
      // A node reached or lost writes too, whatever the analysis says: the stored last-seen
      // position and time of a primary that just went silent is what the failover measures lag
      // against (issue 11, T4), so it must not wait for the heartbeat.
      const reach = reachability(snapshot.nodes);
      if (codeChanged || reach !== lastReach || now - lastWrittenAt >= c.detection.stateHeartbeatMs) {
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
        lastReach = reach;
      }
      if (metricsOn) {
        metrics.add(snapshot, analysis, alerts, codeChanged || roleChanged ? 1 : 0, now - roundStart);
        if (metrics.due(now, codeChanged || roleChanged || raised.length > 0 || cleared.length > 0)) {
          for (const line of metrics.flush(now)) rt.log(line);
        }
      }

      let started: RoundReport['started'];
      if (decision.kind === 'confirmed' && !state.failoverInProgress && holding()) {
        const acted = await startOrBlockFailover(rt, c, {
          now,
          analysis,
          decision,
          secrets,
          blockedReportedFor,
          state,
        });
        state = acted.state;
        stateReadAt = now;
        blockedReportedFor = acted.blockedReportedFor;
        if (acted.blocked) {
          result.blocked++;
          if (acted.blockReported) counters.blockedFailovers++;
        }
        if (acted.started) {
          started = acted.started;
          if (!acted.started.alreadyStarted) result.failoversStarted.push(acted.started.executionName);
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
    clearTimeout(selfFence);
    // Before the lease goes: the next holder never finds our connections still open.
    await conns?.closeAll();
    if (metricsOn) for (const line of metrics.flush(rt.now())) rt.log(line);
    await lease.release().catch(() => {});
  }
  return result;
}
