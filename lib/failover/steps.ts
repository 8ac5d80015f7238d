import type { FailoverEventType } from '../adapters/eventbridge-publisher.ts';
import {
  catchUpFrom,
  fenceNode,
  onNode,
  promoteToPrimary,
  readGtid,
  readReplication,
  readSemiSyncMaster,
  replicateFrom,
  waitForGtid,
} from '../adapters/mysql/admin.ts';
import type { Login, Timeouts } from '../adapters/mysql/connection.ts';
import { probeNode } from '../adapters/mysql/probe.ts';
import { createStonith } from '../adapters/stonith.ts';
import type { ClusterConfig, NodeConfig } from '../config/schema.ts';
import { electCandidate, findErrantReplicas, replicasAheadOf } from '../core/elect-candidate.ts';
import { describeGtidRanges, gtidContains, gtidMissing, maxGtid } from '../core/gtid.ts';
import type { CandidateVerdict, ClusterSnapshot, ElectionPolicy, NodeProbe } from '../core/types.ts';
import {
  CatchUpFailedError,
  describeError,
  ErrantTransactionsError,
  HookFailedError,
  InvalidRequestError,
  NodeUnreachableError,
  NoEligibleCandidateError,
  PromotionFailedError,
  RelayLogTimeoutError,
  StaleEpochError,
} from '../errors.ts';
import type { FailoverStep } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import { getFailoverIntegrations } from './integrations.ts';

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
  /** Replicas the candidate collected transactions from before promotion. */
  caughtUpFrom?: string[];
  /** Set by FenceOldPrimary when it already took the VIP from an unreachable old primary. */
  vipFenced?: boolean;
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
    await publishEvent(rt, 'MySQL Failover Started', ctx, { reason: req.reason });
  }
  // Before anything changes on a server. A retried BeginFailover calls it again: hooks must
  // be idempotent (they get the epoch to tell).
  const pre = c.failover.hooks?.pre;
  if (pre) {
    await step(rt, ctx, 'PreFailoverHook', async (): Promise<StepOutcome> => {
      const r = await runHook(rt, pre, 'pre', ctx);
      if (!r.ok && c.failover.hooks?.preFailurePolicy === 'fail') {
        throw new HookFailedError(`Pre-failover hook ${pre} failed: ${r.error}`, { hook: pre });
      }
      return { detail: { hook: pre, ok: r.ok, ms: r.ms, ...(r.error ? { error: r.error } : {}) } };
    });
  }
  return ctx;
}

/** Invokes a hook Lambda with the failover's context (never secrets). */
async function runHook(rt: Runtime, functionName: string, phase: 'pre' | 'post', ctx: FailoverContext) {
  return getFailoverIntegrations((e) => rt.log(e)).hooks.invoke(functionName, {
    phase,
    cluster: ctx.cluster,
    kind: ctx.kind,
    epoch: ctx.epoch,
    executionName: ctx.executionName,
    failedPrimary: ctx.failedPrimary,
    ...(ctx.candidate ? { newPrimary: ctx.candidate } : {}),
    ...(ctx.repointed ? { repointed: ctx.repointed } : {}),
    ...(ctx.notRepointed ? { notRepointed: ctx.notRepointed } : {}),
  });
}

/** EventBridge event (when EVENT_BUS_NAME is set); never fails the step. */
async function publishEvent(
  rt: Runtime,
  type: FailoverEventType,
  ctx: Partial<FailoverContext> & { cluster: string },
  extra: Record<string, unknown> = {},
): Promise<void> {
  const events = getFailoverIntegrations((e) => rt.log(e)).events;
  if (!events) return;
  await events.publish({
    type,
    cluster: ctx.cluster,
    detail: {
      kind: ctx.kind,
      epoch: ctx.epoch,
      executionName: ctx.executionName,
      failedPrimary: ctx.failedPrimary,
      ...(ctx.candidate ? { newPrimary: ctx.candidate } : {}),
      ...extra,
    },
  });
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
    const facts = primaryGtid ? { primaryGtid } : {};
    const policy: ElectionPolicy = {
      mode: c.failover.mode,
      order: c.nodes.map((n) => n.id),
      rules: Object.fromEntries(c.nodes.map((n) => [n.id, n.promotionRule])),
      maxLagSeconds: c.failover.maxLagSeconds,
    };
    const excluded = Object.fromEntries(
      (state?.needsRejoin ?? [])
        .filter((id) => id !== ctx.failedPrimary)
        .map((id) => [id, 'old primary that needs rejoin']),
    );
    if (c.failover.pedantic) {
      const errant = findErrantReplicas(snapshot, facts);
      if (errant.length > 0) {
        throw new ErrantTransactionsError(
          `Failover of ${c.name} aborted (pedantic): errant transactions on ${errant.map((e) => `${e.nodeId} (${e.errant})`).join(', ')}. Remove them or set failover.pedantic=false to skip such replicas.`,
          { errant },
        );
      }
    }
    const election = electCandidate(snapshot, policy, { ...facts, excluded });
    if (election.kind === 'veto') {
      throw new NoEligibleCandidateError(`No replica of ${c.name} can be promoted: ${election.reason}`, {
        verdicts: election.verdicts,
      });
    }
    const ahead = replicasAheadOf(snapshot, election.nodeId).filter((r) => !(r.nodeId in excluded));
    return {
      detail: {
        candidate: election.nodeId,
        receivedGtid: election.receivedGtid,
        verdicts: election.verdicts,
        ...(ahead.length > 0
          ? {
              aheadOfCandidate: ahead.map((r) => ({
                nodeId: r.nodeId,
                missing: describeGtidRanges(r.missing),
              })),
            }
          : {}),
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
 * Then, when another surviving replica received transactions the candidate lacks (the rules
 * chose a less advanced node), the candidate replicates from that replica up to its received
 * position first: after promotion no replica is ahead of the new primary (no 1236 on repoint)
 * and, with semi-sync AFTER_SYNC, every acknowledged transaction is on the new primary.
 */
export async function catchUpCandidate(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  const detail = await step(rt, ctx, 'CatchUpCandidate', async (c, logins) => {
    const n = node(c, candidate);
    const t = timeouts(c);
    const timeoutS = c.failover.relayLogTimeoutSeconds;
    // Freeze what every survivor has received, all at once: STOP SLAVE IO_THREAD against a
    // hung or cut-off source takes ~2 s (the thread sits in a socket read), so one at a time
    // would cost 2 s per replica here and again in RepointReplicas. A source that comes back
    // mid-failover can then no longer feed anyone.
    const state0 = await rt.store.getClusterState(c.name);
    const freeze = c.nodes.filter(
      (x) => x.id !== ctx.failedPrimary && !(state0?.needsRejoin ?? []).includes(x.id),
    );
    await Promise.all(
      freeze.map((x) =>
        onNode(x.id, x, logins.admin, t, 'CatchUpCandidate', async (s) => {
          if (await readReplication(s)) await s.execute('STOP SLAVE IO_THREAD', [], 10_000);
        }).catch(() => undefined),
      ),
    );
    const own = await onNode(n.id, n, logins.admin, t, 'CatchUpCandidate', async (s) => {
      const repl = await readReplication(s);
      if (!repl) return undefined;
      await s.execute('STOP SLAVE IO_THREAD', [], 10_000);
      const after = (await readReplication(s)) ?? repl;
      if (!after.sqlRunning && after.lastSqlErrno === 0) await s.execute('START SLAVE SQL_THREAD');
      const target = after.gtidIoPos;
      const t0 = rt.now();
      if (!(await waitForGtid(s, target, timeoutS))) {
        throw new RelayLogTimeoutError(
          `Candidate ${candidate} did not apply its relay log up to ${target} within ${timeoutS} s.`,
          { candidate, target },
        );
      }
      const gtid = await readGtid(s);
      return { appliedUpTo: target, waitMs: rt.now() - t0, gtid };
    });
    if (!own)
      return { result: 'skipped', detail: { reason: 'no replication configured (already promoted)' } };

    const skip = new Set([candidate, ctx.failedPrimary, ...(state0?.needsRejoin ?? [])]);
    const others = c.nodes.filter((x) => !skip.has(x.id));
    const probes = await Promise.all(
      others.map((x) =>
        probeNode({ nodeId: x.id, host: x.host, port: x.port, isPrimary: false }, logins.admin, t),
      ),
    );
    const candidateProbe: NodeProbe = {
      nodeId: candidate,
      reachable: true,
      probeMs: 0,
      gtidCurrentPos: own.gtid.current,
      // Everything received is applied now: what it has is gtid_current_pos.
      replication: { gtidIoPos: own.gtid.current } as NodeProbe['replication'] & object,
    };
    const snapshot: ClusterSnapshot = {
      cluster: c.name,
      takenAt: rt.now(),
      primaryId: ctx.failedPrimary,
      nodes: [candidateProbe, ...probes],
    };
    const ahead = replicasAheadOf(snapshot, candidate);
    const unreachable = probes.filter((p) => !p.reachable).map((p) => p.nodeId);
    const collected: Array<{ from: string; upTo: string; missing: string; ms: number }> = [];
    let have = own.gtid.current;
    for (const a of ahead) {
      // An earlier source may have brought this one's transactions already.
      if (gtidContains(have, a.receivedGtid)) continue;
      const src = node(c, a.nodeId);
      const t0 = rt.now();
      // The source applies what it received first: only its binlog can serve it.
      await onNode(src.id, src, logins.admin, t, 'CatchUpCandidate', async (s) => {
        await s.execute('STOP SLAVE IO_THREAD', [], 10_000);
        const r = await readReplication(s);
        if (r && !r.sqlRunning && r.lastSqlErrno === 0) await s.execute('START SLAVE SQL_THREAD');
        if (!(await waitForGtid(s, a.receivedGtid, timeoutS))) {
          throw new CatchUpFailedError(
            `Replica ${src.id} did not apply its own relay log up to ${a.receivedGtid} within ${timeoutS} s, so ${candidate} cannot collect it.`,
            { candidate, source: src.id },
          );
        }
      });
      const ok = await onNode(n.id, n, logins.admin, t, 'CatchUpCandidate', (s) =>
        catchUpFrom(s, src, logins.replication, a.receivedGtid, timeoutS),
      );
      if (!ok) {
        throw new CatchUpFailedError(
          `Candidate ${candidate} did not collect ${describeGtidRanges(a.missing)} from ${src.id} within ${timeoutS} s.`,
          { candidate, source: src.id },
        );
      }
      have = maxGtid(have, a.receivedGtid);
      collected.push({
        from: src.id,
        upTo: a.receivedGtid,
        missing: describeGtidRanges(a.missing),
        ms: rt.now() - t0,
      });
    }
    const gtid =
      collected.length > 0 ? await onNode(n.id, n, logins.admin, t, 'CatchUpCandidate', readGtid) : own.gtid;
    return {
      detail: {
        appliedUpTo: own.appliedUpTo,
        waitMs: own.waitMs,
        gtidCurrentPos: gtid.current,
        caughtUpFrom: collected,
        ...(unreachable.length > 0
          ? {
              unreachableReplicas: unreachable,
              warning: 'unreachable replicas may hold transactions the candidate lacks',
            }
          : {}),
      },
    };
  });
  return {
    ...ctx,
    candidateGtid: String(detail.gtidCurrentPos ?? ctx.candidateGtid ?? ''),
    caughtUpFrom: ((detail.caughtUpFrom as Array<{ from: string }> | undefined) ?? []).map((x) => x.from),
  };
}

/** How long the SQL fence may take before the VIP is taken away concurrently. */
const FENCE_HEAD_START_MS = 150;

/**
 * FenceOldPrimary: if the old primary answers, make it read-only and end its client sessions.
 * If it does not, take the VIP from it now, before the candidate becomes writable: a hung
 * primary can resume (SIGCONT, a healed partition) with read_only=OFF and would take writes
 * through the VIP while the new primary does (orchestrator's two-primaries case). The VIP then
 * points at the still read-only candidate: clients get read-only errors until the promotion.
 * With failover.stonith.enabled, an old primary that did not take the SQL fence also has its
 * instance stopped through the cloud API (detail.stonith); a failed stop throws StonithFailedError.
 */
export async function fenceOldPrimary(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  let vipFenced = ctx.vipFenced === true;
  await step(rt, ctx, 'FenceOldPrimary', async (c, logins): Promise<StepOutcome> => {
    const n = node(c, ctx.failedPrimary);
    const mover = ctx.kind === 'failover' ? await rt.vipMover(c) : undefined;
    const moveVipAway = async () => {
      if (!mover) return undefined;
      const t0 = rt.now();
      const verifyMs = c.vip.provider === 'none' ? 0 : c.vip.verifyTimeoutMs;
      const moved = await mover.moveTo(candidate, {
        fromNodeId: ctx.failedPrimary,
        oldHolderDead: true,
        deadline: t0 + verifyMs,
        clientToken: ctx.executionName.slice(0, 64),
      });
      vipFenced = true;
      return moved;
    };
    // The SQL fence answers in milliseconds from a live server and is refused at once by a
    // crashed one; a hung or cut-off one costs the whole connect timeout. Past a short head
    // start, take the VIP away concurrently instead of after that timeout: moving it to the
    // still read-only candidate is safe whatever the SQL attempt then finds.
    const sqlFence = onNode(n.id, n, logins.admin, timeouts(c), 'FenceOldPrimary', (sess) =>
      fenceNode(sess, logins.admin.user),
    ).then(
      (r) => ({ ok: true as const, killed: r.killed }),
      (err: unknown) => ({ ok: false as const, err }),
    );
    const headStart = await Promise.race([
      sqlFence,
      new Promise<'slow'>((res) => setTimeout(() => res('slow'), FENCE_HEAD_START_MS)),
    ]);
    const speculative =
      headStart === 'slow' && mover && c.vip.provider !== 'none' ? moveVipAway() : undefined;
    // Do not leave a rejected speculative move unhandled while the SQL attempt finishes.
    speculative?.catch(() => undefined);
    const sql = await sqlFence;
    if (sql.ok) {
      const moved = speculative ? await speculative : undefined;
      return {
        detail: {
          readOnly: true,
          killedSessions: sql.killed,
          ...(moved ? { vipTakenFrom: ctx.failedPrimary, vipHolder: moved.holder, vipMs: moved.ms } : {}),
        },
      };
    }
    // STONITH: whatever the SQL attempt found (hung, cut off, or refused by a crashed mariadbd on
    // a host that may restart it), a node that did not take the fence is stopped through the cloud
    // API before anyone is promoted, concurrently with the VIP move. A node that answered is fenced
    // by read_only and never stopped. A failed stop fails the step (StonithFailedError, terminal).
    const stonith =
      ctx.kind === 'failover' && c.failover.stonith.enabled
        ? createStonith(c, rt.secrets, (e) => rt.log(e)).then((s) =>
            s?.stop(ctx.failedPrimary, { deadline: Date.now() + c.failover.stonith.waitStoppedMs }),
          )
        : undefined;
    stonith?.catch(() => undefined);
    const withStonith = async (o: StepOutcome): Promise<StepOutcome> => {
      const s = await stonith;
      if (!s) return o;
      return {
        detail: {
          ...o.detail,
          stonith: { instanceId: s.instanceId, state: s.state, ms: s.ms, apiCalls: s.apiCalls },
        },
      };
    };
    const err = sql.err;
    const code = err instanceof NodeUnreachableError ? String(err.details.code ?? '') : '';
    const crashed = code === 'ECONNREFUSED';
    const takeVip = ctx.kind === 'failover' && (c.failover.vipFenceWhenUnreachable === 'always' || !crashed);
    const reason = describeError(err).message;
    if (!takeVip) {
      // Refused: the process is gone. It comes back only through a restart, and the VIP
      // leaves it in MoveVip; the health check re-fences it if it returns writable.
      const moved = speculative ? await speculative : undefined;
      return withStonith({
        result: 'skipped',
        detail: { reachable: false, crashed, reason, ...(moved ? { vipHolder: moved.holder } : {}) },
      });
    }
    if (!mover)
      return withStonith({ result: 'skipped', detail: { reachable: false, crashed, reason, vip: 'none' } });
    const moved = await (speculative ?? moveVipAway());
    return withStonith({
      detail: {
        reachable: false,
        crashed,
        reason,
        vipTakenFrom: ctx.failedPrimary,
        vipHolder: moved?.holder,
        vipMs: moved?.ms,
      },
    });
  });
  return { ...ctx, vipFenced };
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
      const semi = await readSemiSyncMaster(s);
      if (c.failover.semiSync && (!semi.enabled || semi.waitPoint !== 'AFTER_SYNC')) {
        throw new PromotionFailedError(
          `${candidate} promoted but semi-sync is not as the policy says: enabled=${semi.enabled}, wait point ${semi.waitPoint} (want AFTER_SYNC).`,
        );
      }
      const gtid = await readGtid(s);
      return {
        detail: {
          gtidBinlogPos: gtid.binlog,
          semiSync: { policy: c.failover.semiSync, enabled: semi.enabled, waitPoint: semi.waitPoint },
        },
      };
    });
  });
  return ctx;
}

/** RepointReplicas: every other reachable replica replicates from the new primary. */
export async function repointReplicas(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  const detail = await step(rt, ctx, 'RepointReplicas', async (c, logins) => {
    const primary = node(c, candidate);
    const state = await rt.store.getClusterState(c.name);
    const rejoin = new Set((state?.needsRejoin ?? []).filter((id) => id !== ctx.failedPrimary));
    const others = c.nodes.filter((n) => n.id !== candidate && n.id !== ctx.failedPrimary);
    const t = timeouts(c);
    const primaryGtid = await onNode(primary.id, primary, logins.admin, t, 'RepointReplicas', readGtid);
    const results = await Promise.all(
      others.map(async (n) => {
        if (rejoin.has(n.id)) {
          return { nodeId: n.id, ok: false as const, error: 'old primary that needs rejoin: left alone' };
        }
        try {
          await onNode(n.id, n, logins.admin, t, 'RepointReplicas', async (s) => {
            // A replica with transactions the new primary lacks would fail with 1236 or, later,
            // 1950 (errant GTID, out of order): report it rather than point it and let it break.
            const mine = await readGtid(s);
            const extra = gtidMissing(primaryGtid.current, mine.current);
            if (extra.length > 0) {
              throw new Error(
                `has transactions the new primary ${candidate} lacks (${describeGtidRanges(extra)}): needs rejoin`,
              );
            }
            const r = await readReplication(s);
            const already = r && r.sourceHost === primary.host && r.sourcePort === primary.port;
            if (!already)
              await replicateFrom(s, primary, logins.replication, { semiSync: c.failover.semiSync });
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
    const notRepointed = results
      .filter((r) => !r.ok)
      .map((r) => ({ nodeId: r.nodeId, error: r.error ?? '' }));
    const semi = c.failover.semiSync
      ? await onNode(primary.id, primary, logins.admin, t, 'RepointReplicas', readSemiSyncMaster).catch(
          () => undefined,
        )
      : undefined;
    return {
      detail: {
        repointed: results.filter((r) => r.ok).map((r) => r.nodeId),
        notRepointed,
        ...(semi ? { semiSyncClients: semi.clients, semiSyncActive: semi.active } : {}),
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
    // Also when FenceOldPrimary moved it already: the move is a verified no-op then.
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

/**
 * CompleteFailover: the new primary becomes the truth; the anti-flap block starts; the post
 * hook runs. A failed post hook under policy 'fail' records the failover as failed (the new
 * primary stays the truth: it is promoted and behind the VIP) and fails the execution.
 */
export async function completeFailover(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  const candidate = requireCandidate(ctx);
  const c = rt.cluster(ctx.cluster);
  const post = c.failover.hooks?.post;
  let hook: { hook: string; ok: boolean; ms: number; error?: string } | undefined;
  if (post) {
    // Epoch-checked like every step: a stale execution never runs the hook.
    await step(rt, ctx, 'PostFailoverHook', async (): Promise<StepOutcome> => {
      const r = await runHook(rt, post, 'post', ctx);
      hook = { hook: post, ok: r.ok, ms: r.ms, ...(r.error ? { error: r.error } : {}) };
      return { detail: hook };
    });
  }
  const hookFailed = hook !== undefined && !hook.ok && c.failover.hooks?.postFailurePolicy === 'fail';
  const now = rt.now();
  const notRepointed = ctx.notRepointed ?? [];
  await rt.store.appendStep(ctx.cluster, ctx.epoch, {
    name: 'CompleteFailover',
    startedAt: now,
    endedAt: now,
    result: hookFailed ? 'error' : 'ok',
    detail: {
      newPrimary: candidate,
      repointed: ctx.repointed ?? [],
      notRepointed,
      needsRejoin: [ctx.failedPrimary],
      ...(hook && !hook.ok ? { postHookError: hook.error } : {}),
    },
  });
  const error = hookFailed
    ? { name: 'HookFailedError', message: `Post-failover hook ${post} failed: ${hook?.error ?? ''}` }
    : undefined;
  await rt.store.endFailover({
    cluster: ctx.cluster,
    epoch: ctx.epoch,
    status: hookFailed ? 'failed' : 'succeeded',
    newPrimary: candidate,
    oldPrimary: ctx.failedPrimary,
    now,
    blockedUntil: now + c.failover.blockPeriodSeconds * 1000,
    ...(error ? { error } : {}),
  });
  const took = now - (ctx.startedAt ?? now);
  const notRep = notRepointed.length
    ? ` NOT repointed: ${notRepointed.map((r) => `${r.nodeId} (${r.error})`).join('; ')}.`
    : '';
  await rt.notifier.notify({
    cluster: ctx.cluster,
    severity: 'critical',
    subject: hookFailed
      ? `${ctx.kind} FAILED (post hook): ${ctx.failedPrimary} -> ${candidate}`
      : `${ctx.kind} succeeded: ${ctx.failedPrimary} -> ${candidate}`,
    message: `New primary ${candidate} (epoch ${ctx.epoch}) in ${took} ms. ${ctx.failedPrimary} needs rejoin.${notRep}${error ? ` ${error.message}` : hook && !hook.ok ? ` Post hook failed (policy warn): ${hook.error}` : ''}`,
    data: {
      epoch: ctx.epoch,
      repointed: ctx.repointed,
      notRepointed,
      vip: ctx.vip,
      caughtUpFrom: ctx.caughtUpFrom,
    },
  });
  await publishEvent(rt, hookFailed ? 'MySQL Failover Failed' : 'MySQL Failover Succeeded', ctx, {
    newPrimary: candidate,
    durationMs: took,
    repointed: ctx.repointed ?? [],
    notRepointed,
    needsRejoin: [ctx.failedPrimary],
    ...(error ? { error } : {}),
  });
  if (hookFailed) throw new HookFailedError(error?.message ?? 'post hook failed', { hook: post });
  return ctx;
}

/**
 * FailoverFailed (Catch target): records the failure, keeps the block, alerts. A stale
 * execution (StaleEpochError) never touches the record of the execution that owns the epoch;
 * a failure CompleteFailover already recorded (post hook) is not announced twice.
 */
export async function failoverFailed(
  rt: Runtime,
  ctx: FailoverContext & { error?: { Error?: string; Cause?: string } },
): Promise<FailoverContext> {
  const c = rt.cluster(ctx.cluster);
  const now = rt.now();
  const error = parseStatesError(ctx.error);
  if (error.name === 'StaleEpochError' || error.name === 'FailoverBlockedError') {
    await rt.notifier.notify({
      cluster: ctx.cluster,
      severity: 'warning',
      subject: `${ctx.kind} execution ${ctx.executionName} refused: ${error.name}`,
      message: `${error.message} Nothing was changed by this execution.`,
      data: { executionName: ctx.executionName, expectedEpoch: ctx.expectedEpoch },
    });
    return ctx;
  }
  if (typeof ctx.epoch === 'number') {
    const record = await rt.store.getFailover(ctx.cluster, ctx.epoch);
    if (record && record.status !== 'running') return ctx;
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
  await publishEvent(rt, 'MySQL Failover Failed', ctx, { error });
  return ctx;
}

/** The `{Error, Cause}` a Catch puts in the context, as a name and a readable message. */
export function parseStatesError(e: { Error?: string; Cause?: string } | undefined): {
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
