/**
 * What a round does about what it saw: events, notifications, the failover start (or its block).
 * The health item's writes and the fencing of a returned primary stay in the runner's loop
 * (monitor.ts), next to the state they change.
 */
import type { ClusterConfig } from '../config/schema.ts';
import type { ConfirmDecision } from '../core/decision-types.ts';
import type { Analysis } from '../core/types.ts';
import { describeError } from '../errors.ts';
import type { FailoverRequest } from '../failover/steps.ts';
import type { ClusterState } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import type { ActiveAlert } from './alert-rules.ts';

/** How long state-change events are kept (the table's TTL attribute). */
export const EVENT_TTL_SECONDS = 14 * 24 * 3600;

/** The alerts the previous invocation left active (carried in the newest health event). */
export async function loadActiveAlerts(rt: Runtime, cluster: string): Promise<ActiveAlert[]> {
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
export async function reportChange(
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

/** What startOrBlockFailover did. */
export interface FailoverAction {
  /** The state as re-read (with the failover this call started, to follow it closely). */
  state: ClusterState;
  blockedReportedFor: string | undefined;
  /** The anti-flapping block refused it; `blockReported` when this call notified it. */
  blocked: boolean;
  blockReported: boolean;
  started?: { executionName: string; alreadyStarted: boolean };
}

/**
 * A confirmed failure: starts the failover execution for the next epoch, or reports once per
 * incident that the anti-flapping block refuses it. Re-reads the state first (another invocation
 * or an operator may have acted).
 *
 * @param rt the runtime (state store, notifier, starter, log).
 * @param c the cluster.
 * @param ctx the round's time, analysis and decision, the secrets to scrub from errors, and the
 *   incident whose block was already reported.
 * @returns the state to carry on with and what was done.
 */
export async function startOrBlockFailover(
  rt: Runtime,
  c: ClusterConfig,
  ctx: {
    now: number;
    analysis: Analysis;
    decision: Extract<ConfirmDecision, { kind: 'confirmed' }>;
    secrets: string[];
    blockedReportedFor: string | undefined;
    /** The state the round had, kept when the re-read finds no item. */
    state: ClusterState;
  },
): Promise<FailoverAction> {
  const { now, analysis, decision, secrets } = ctx;
  let state = (await rt.store.getClusterState(c.name)) ?? ctx.state;
  const out: FailoverAction = {
    state,
    blockedReportedFor: ctx.blockedReportedFor,
    blocked: false,
    blockReported: false,
  };
  if (state.blockedUntil && state.blockedUntil > now && !state.failoverInProgress) {
    out.blocked = true;
    if (out.blockedReportedFor !== decision.incidentId) {
      out.blockedReportedFor = decision.incidentId;
      out.blockReported = true;
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
    return out;
  }
  if (state.failoverInProgress) return out;
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
    out.started = { executionName: r.executionName, alreadyStarted: r.alreadyStarted };
    // Until the execution claims the epoch (its first step; seconds when the worker is cold) the
    // state table shows no failover, so the next confirmed rounds ask again and get the running
    // execution back: one failover, logged once.
    rt.log(
      r.alreadyStarted
        ? { level: 'debug', type: 'failover-start-repeated', cluster: c.name, executionName: r.executionName }
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
  out.state = state;
  return out;
}
