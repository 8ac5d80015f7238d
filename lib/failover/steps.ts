import {
  fenceNode,
  onNode,
  promoteToPrimary,
  readGtid,
  readReplication,
  replicateFrom,
  waitForGtid,
} from '../adapters/mysql/admin.ts';
import type { Login, Timeouts } from '../adapters/mysql/connection.ts';
import { probeNode } from '../adapters/mysql/probe.ts';
import type { ClusterConfig, NodeConfig } from '../config/schema.ts';
import { electCandidate } from '../core/elect-candidate.ts';
import type { CandidateVerdict, ClusterSnapshot, ElectionPolicy } from '../core/types.ts';
import {
  describeError,
  InvalidRequestError,
  NoEligibleCandidateError,
  PromotionFailedError,
  RelayLogTimeoutError,
  StaleEpochError,
} from '../errors.ts';
import type { FailoverStep } from '../ports.ts';
import type { Runtime } from '../runtime.ts';

/** Input of an execution, as the health check (or an operator action) starts it. */
export interface FailoverRequest {
  cluster: string;
  kind: 'failover' | 'switchover';
  failedPrimary: string;
  /** The cluster epoch the requester saw; the claim succeeds only from this epoch. */
  expectedEpoch: number;
  incidentId: string;
  executionName: string;
  /** Manual requests may bypass the anti-flap block. */
  ignoreBlock?: boolean;
  reason?: Record<string, unknown>;
}

/** What flows from state to state; each task returns it extended. */
export interface FailoverContext extends FailoverRequest {
  epoch: number;
  candidate?: string;
  verdicts?: CandidateVerdict[];
  candidateGtid?: string;
  repointed?: string[];
  notRepointed?: Array<{ nodeId: string; error: string }>;
  vip?:
    | { holder: string; address: string; ms: number; alreadyThere: boolean }
    | { skipped: string }
    | undefined;
  startedAt?: number;
}

/** The node's config, or InvalidRequestError naming the cluster. */
export function node(c: ClusterConfig, id: string): NodeConfig {
  const n = c.nodes.find((x) => x.id === id);
  if (!n)
    throw new InvalidRequestError(`Node "${id}" is not in cluster ${c.name}.`, {
      cluster: c.name,
      nodeId: id,
    });
  return n;
}

/** Admin-session timeouts for failover steps (longer queries than probes). */
export function timeouts(c: ClusterConfig): Timeouts {
  return {
    connectTimeoutMs: c.detection.connectTimeoutMs,
    queryTimeoutMs: Math.max(c.detection.queryTimeoutMs, 3000),
  };
}

/**
 * Runs one step: checks that this execution still owns the cluster's epoch (a stale or
 * duplicated execution stops here, before touching anything), times it and appends the
 * audit entry to the failover record.
 */
export type Detail = Record<string, unknown>;
export interface StepOutcome {
  result?: 'ok' | 'skipped';
  detail: Detail;
}

export async function step(
  rt: Runtime,
  ctx: FailoverContext,
  name: string,
  fn: (c: ClusterConfig, logins: { admin: Login; replication: Login }) => Promise<StepOutcome>,
): Promise<Detail> {
  const c = rt.cluster(ctx.cluster);
  const state = await rt.store.getClusterState(ctx.cluster);
  if (!state || state.epoch !== ctx.epoch || state.failoverInProgress?.epoch !== ctx.epoch) {
    throw new StaleEpochError(
      `${name} for ${ctx.cluster} refused: this execution owns epoch ${ctx.epoch}, the cluster is at ${state?.epoch ?? 'none'}${state?.failoverInProgress ? ` (in progress: ${state.failoverInProgress.executionName})` : ' with no failover in progress'}.`,
      { cluster: ctx.cluster, epoch: ctx.epoch },
    );
  }
  const logins = await rt.logins(c);
  const startedAt = rt.now();
  const secrets = [logins.admin.password, logins.replication.password];
  try {
    const { result = 'ok', detail } = await fn(c, logins);
    const entry: FailoverStep = { name, startedAt, endedAt: rt.now(), result, detail };
    await rt.store.appendStep(ctx.cluster, ctx.epoch, entry);
    rt.log({ level: 'info', type: 'failover-step', cluster: ctx.cluster, epoch: ctx.epoch, ...entry });
    return detail;
  } catch (err) {
    const entry: FailoverStep = {
      name,
      startedAt,
      endedAt: rt.now(),
      result: 'error',
      error: describeError(err, secrets),
    };
    await rt.store.appendStep(ctx.cluster, ctx.epoch, entry).catch(() => {});
    rt.log({ level: 'error', type: 'failover-step', cluster: ctx.cluster, epoch: ctx.epoch, ...entry });
    throw err;
  }
}

/** BeginFailover: claims the next epoch (exactly once per cluster and incident). */
export async function beginFailover(rt: Runtime, req: FailoverRequest): Promise<FailoverContext> {
  const c = rt.cluster(req.cluster);
  node(c, req.failedPrimary);
  const now = rt.now();
  const claim = await rt.store.beginFailover({
    cluster: req.cluster,
    expectedEpoch: req.expectedEpoch,
    executionName: req.executionName,
    failedPrimary: req.failedPrimary,
    incidentId: req.incidentId,
    kind: req.kind,
    now,
    ignoreBlock: req.ignoreBlock === true,
  });
  const ctx: FailoverContext = { ...req, epoch: claim.epoch, startedAt: now };
  await rt.store.appendStep(req.cluster, claim.epoch, {
    name: 'BeginFailover',
    startedAt: now,
    endedAt: rt.now(),
    result: claim.alreadyClaimed ? 'skipped' : 'ok',
    detail: { epoch: claim.epoch, alreadyClaimed: claim.alreadyClaimed },
  });
  if (!claim.alreadyClaimed) {
    await rt.notifier.notify({
      cluster: req.cluster,
      severity: 'critical',
      subject: `${req.kind} started (epoch ${claim.epoch})`,
      message: `Primary ${req.failedPrimary} is being replaced. Execution ${req.executionName}.`,
      data: { epoch: claim.epoch, reason: req.reason },
    });
  }
  return ctx;
}

/** ElectCandidate: probes the survivors and picks the most up-to-date eligible replica. */
export async function electCandidateStep(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const detail = await step(rt, ctx, 'ElectCandidate', async (c, logins) => {
    const t = timeouts(c);
    const survivors = c.nodes.filter((n) => n.id !== ctx.failedPrimary);
    const probes = await Promise.all(
      survivors.map((n) =>
        probeNode({ nodeId: n.id, host: n.host, port: n.port, isPrimary: false }, logins.admin, t),
      ),
    );
    const snapshot: ClusterSnapshot = {
      cluster: c.name,
      takenAt: rt.now(),
      primaryId: ctx.failedPrimary,
      nodes: probes,
    };
    const state = await rt.store.getClusterState(c.name);
    const primaryGtid = state?.topology.find((t) => t.nodeId === ctx.failedPrimary)?.gtid;
    const policy: ElectionPolicy = {
      mode: c.failover.mode,
      order: c.nodes.map((n) => n.id),
      rules: Object.fromEntries(c.nodes.map((n) => [n.id, n.promotionRule])),
      maxLagSeconds: c.failover.maxLagSeconds,
    };
    const election = electCandidate(snapshot, policy, primaryGtid ? { primaryGtid } : {});
    if (election.kind === 'veto') {
      throw new NoEligibleCandidateError(`No replica of ${c.name} can be promoted: ${election.reason}`, {
        verdicts: election.verdicts,
      });
    }
    return {
      detail: {
        candidate: election.nodeId,
        receivedGtid: election.receivedGtid,
        verdicts: election.verdicts,
      },
    };
  });
  return {
    ...ctx,
    candidate: String(detail.candidate),
    candidateGtid: String(detail.receivedGtid),
    verdicts: detail.verdicts as CandidateVerdict[],
  };
}

/**
 * CatchUpCandidate: stops the candidate's IO thread (its source is gone) and waits until the
 * SQL thread has applied everything received, so nothing acknowledged is left in a relay log.
 */
export async function catchUpCandidate(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  const detail = await step(rt, ctx, 'CatchUpCandidate', async (c, logins) => {
    const n = node(c, candidate);
    return onNode(n.id, n, logins.admin, timeouts(c), 'CatchUpCandidate', async (s): Promise<StepOutcome> => {
      const repl = await readReplication(s);
      if (!repl)
        return { result: 'skipped', detail: { reason: 'no replication configured (already promoted)' } };
      await s.execute('STOP SLAVE IO_THREAD', [], 10_000);
      const after = (await readReplication(s)) ?? repl;
      if (!after.sqlRunning && after.lastSqlErrno === 0) await s.execute('START SLAVE SQL_THREAD');
      const target = after.gtidIoPos;
      const t0 = rt.now();
      const ok = await waitForGtid(s, target, c.failover.relayLogTimeoutSeconds);
      if (!ok) {
        throw new RelayLogTimeoutError(
          `Candidate ${candidate} did not apply its relay log up to ${target} within ${c.failover.relayLogTimeoutSeconds} s.`,
          { candidate, target },
        );
      }
      const gtid = await readGtid(s);
      return { detail: { appliedUpTo: target, waitMs: rt.now() - t0, gtidCurrentPos: gtid.current } };
    });
  });
  return { ...ctx, candidateGtid: String(detail.gtidCurrentPos ?? ctx.candidateGtid ?? '') };
}

/** FenceOldPrimary: if the old primary answers, make it read-only and end its client sessions. */
export async function fenceOldPrimary(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  await step(rt, ctx, 'FenceOldPrimary', async (c, logins): Promise<StepOutcome> => {
    const n = node(c, ctx.failedPrimary);
    try {
      const r = await onNode(n.id, n, logins.admin, timeouts(c), 'FenceOldPrimary', (s) =>
        fenceNode(s, logins.admin.user),
      );
      return { detail: { readOnly: true, killedSessions: r.killed } };
    } catch (err) {
      // Unreachable (crashed, hung, cut off): it is fenced by the VIP moving away from it, and
      // it stays marked needsRejoin so it never serves through the VIP again by itself.
      return { result: 'skipped', detail: { reachable: false, reason: describeError(err).message } };
    }
  });
  return ctx;
}

/** PromoteCandidate: resets replication, enables semi-sync per policy, makes it writable. */
export async function promoteCandidate(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  await step(rt, ctx, 'PromoteCandidate', async (c, logins) => {
    const n = node(c, candidate);
    return onNode(n.id, n, logins.admin, timeouts(c), 'PromoteCandidate', async (s): Promise<StepOutcome> => {
      const repl = await readReplication(s);
      const [ro] = await s.query<{ ro: number }>('SELECT @@read_only AS ro');
      if (!repl && Number(ro?.ro) === 0) return { result: 'skipped', detail: { alreadyPrimary: true } };
      await promoteToPrimary(s, {
        semiSync: c.failover.semiSync,
        semiSyncTimeoutMs: c.failover.semiSyncTimeoutMs,
      });
      const [check] = await s.query<{ ro: number }>('SELECT @@read_only AS ro');
      if (Number(check?.ro) !== 0)
        throw new PromotionFailedError(`${candidate} is still read_only after promotion.`);
      const gtid = await readGtid(s);
      return { detail: { gtidBinlogPos: gtid.binlog, semiSync: c.failover.semiSync } };
    });
  });
  return ctx;
}

/** RepointReplicas: every other reachable replica replicates from the new primary. */
export async function repointReplicas(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  const detail = await step(rt, ctx, 'RepointReplicas', async (c, logins) => {
    const primary = node(c, candidate);
    const others = c.nodes.filter((n) => n.id !== candidate && n.id !== ctx.failedPrimary);
    const results = await Promise.all(
      others.map(async (n) => {
        try {
          await onNode(n.id, n, logins.admin, timeouts(c), 'RepointReplicas', async (s) => {
            const r = await readReplication(s);
            const already = r && r.sourceHost === primary.host && r.sourcePort === primary.port;
            if (!already) await replicateFrom(s, primary, logins.replication);
            else if (r.ioState !== 'Yes' || !r.sqlRunning) await s.execute('START SLAVE');
            await s.execute('SET GLOBAL read_only = ON');
            await waitThreadsRunning(s, 5000);
          });
          return { nodeId: n.id, ok: true as const };
        } catch (err) {
          return { nodeId: n.id, ok: false as const, error: describeError(err).message };
        }
      }),
    );
    return {
      detail: {
        repointed: results.filter((r) => r.ok).map((r) => r.nodeId),
        notRepointed: results.filter((r) => !r.ok).map((r) => ({ nodeId: r.nodeId, error: r.error ?? '' })),
      },
    };
  });
  return {
    ...ctx,
    repointed: detail.repointed as string[],
    notRepointed: detail.notRepointed as Array<{ nodeId: string; error: string }>,
  };
}

async function waitThreadsRunning(
  s: Parameters<typeof readReplication>[0],
  timeoutMs: number,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await readReplication(s);
    if (r && r.ioState === 'Yes' && r.sqlRunning) return;
    if (Date.now() > until) {
      throw new Error(
        `replication threads not running after repoint: IO=${r?.ioState} SQL=${r?.sqlRunning} ${r?.lastIoError ?? ''} ${r?.lastSqlError ?? ''}`.trim(),
      );
    }
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** MoveVip: moves the endpoint to the new primary through the provider API and verifies it. */
export async function moveVip(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  const detail = await step(rt, ctx, 'MoveVip', async (c): Promise<StepOutcome> => {
    const mover = await rt.vipMover(c);
    if (!mover) return { result: 'skipped', detail: { skipped: 'vip.provider is none' } };
    const t0 = rt.now();
    const verifyMs = c.vip.provider === 'none' ? 0 : c.vip.verifyTimeoutMs;
    const r = await mover.moveTo(candidate, {
      fromNodeId: ctx.failedPrimary,
      oldHolderDead: ctx.kind === 'failover',
      deadline: t0 + verifyMs,
      clientToken: ctx.executionName.slice(0, 64),
    });
    return {
      detail: {
        holder: r.holder,
        address: r.address,
        ms: r.ms,
        alreadyThere: r.alreadyThere,
        apiCalls: r.apiCalls,
      },
    };
  });
  return { ...ctx, vip: detail as FailoverContext['vip'] };
}

/** CompleteFailover: the new primary becomes the truth; the anti-flap block starts. */
export async function completeFailover(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  const c = rt.cluster(ctx.cluster);
  const now = rt.now();
  await rt.store.appendStep(ctx.cluster, ctx.epoch, {
    name: 'CompleteFailover',
    startedAt: now,
    endedAt: now,
    result: 'ok',
  });
  await rt.store.endFailover({
    cluster: ctx.cluster,
    epoch: ctx.epoch,
    status: 'succeeded',
    newPrimary: candidate,
    oldPrimary: ctx.failedPrimary,
    now,
    blockedUntil: now + c.failover.blockPeriodSeconds * 1000,
  });
  await rt.notifier.notify({
    cluster: ctx.cluster,
    severity: 'critical',
    subject: `${ctx.kind} succeeded: ${ctx.failedPrimary} -> ${candidate}`,
    message: `New primary ${candidate} (epoch ${ctx.epoch}) in ${now - (ctx.startedAt ?? now)} ms. ${ctx.failedPrimary} needs rejoin.${ctx.notRepointed?.length ? ` Not repointed: ${ctx.notRepointed.map((r) => r.nodeId).join(', ')}.` : ''}`,
    data: { epoch: ctx.epoch, repointed: ctx.repointed, notRepointed: ctx.notRepointed, vip: ctx.vip },
  });
  return ctx;
}

/** FailoverFailed (Catch target): records the failure, keeps the block, alerts. */
export async function failoverFailed(
  rt: Runtime,
  ctx: FailoverContext & { error?: { Error?: string; Cause?: string } },
): Promise<FailoverContext> {
  const c = rt.cluster(ctx.cluster);
  const now = rt.now();
  const error = parseStatesError(ctx.error);
  if (typeof ctx.epoch === 'number' && error.name !== 'StaleEpochError') {
    await rt.store.endFailover({
      cluster: ctx.cluster,
      epoch: ctx.epoch,
      status: 'failed',
      oldPrimary: ctx.failedPrimary,
      now,
      blockedUntil: now + c.failover.blockPeriodSeconds * 1000,
      error,
    });
  }
  await rt.notifier.notify({
    cluster: ctx.cluster,
    severity: 'critical',
    subject: `${ctx.kind} FAILED: ${error.name}`,
    message: `${error.message} The cluster needs an operator. Check "serverless invoke -f status".`,
    data: { epoch: ctx.epoch, candidate: ctx.candidate },
  });
  return ctx;
}

function parseStatesError(e: { Error?: string; Cause?: string } | undefined): {
  name: string;
  message: string;
} {
  if (!e) return { name: 'Unknown', message: 'no error information' };
  let message = e.Cause ?? '';
  try {
    const parsed = JSON.parse(message) as { errorMessage?: string; message?: string };
    message = parsed.errorMessage ?? parsed.message ?? message;
  } catch {
    // Cause is plain text already.
  }
  return { name: e.Error ?? 'Error', message: message.slice(0, 1000) };
}

function requireCandidate(ctx: FailoverContext): string {
  if (!ctx.candidate)
    throw new InvalidRequestError('No candidate in the execution context (ElectCandidate must run first).');
  return ctx.candidate;
}
