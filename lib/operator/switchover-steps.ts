/**
 * The steps of a planned switchover (the old primary is alive), run by the switchover state
 * machine (infra/switchover-state-machine.yml). Each is epoch-checked and audited through the
 * failover machinery's `step()`, and the shared steps (promote, repoint, VIP) are the failover's own.
 *
 *   SwitchoverPreCheck     candidate healthy, replicating, lag and the primary's longest
 *                          transaction under the limits, no errant transactions
 *   SwitchOver (Parallel)  two branches, started together:
 *     VIP branch           SwitchoverMoveVip: the failover's MoveVip to the (still read-only) candidate
 *     writes branch        BlockWrites: once the VIP has left the old primary, read_only=ON there;
 *                          grace; kill client sessions; its final gtid_binlog_pos
 *                          WaitCandidateCaughtUp: MASTER_GTID_WAIT(that position) on the candidate
 *                          SwitchoverPromote: the failover's PromoteCandidate
 *                          SwitchoverRepoint: the other replicas AND the old primary replicate
 *                          from the new one, concurrently
 *   SwitchoverJoin         merges the branches; the write block is measured here
 *   CompleteSwitchover     new primary recorded; no anti-flap block (nothing failed)
 *   SwitchoverAborted      before promotion: VIP back to the old primary (verified), then its
 *                          writability back if the candidate is verified a read-only replica
 *
 * Why the VIP leads: the provider's propagation (EC2 remaps a secondary IP in about a second)
 * is the longest part of a switchover, and nothing can write while it runs when the old primary
 * is already read-only. Started first, it runs while the old primary still takes writes; writes
 * stop when the VIP leaves it (connections through the VIP are cut, new ones reach the read-only
 * candidate), and BlockWrites follows at once. Never two writable nodes: the candidate stays
 * read-only until it has everything the old primary wrote after read_only=ON, and it is only
 * promoted once the VIP is on it, so a VIP that never moves aborts before any promotion.
 *
 *   VIP branch     |--Assign--|~~~~ propagation ~~~~|verify|
 *   writes branch  |poll holder ................... |RO|grace|kill|catch-up|promote|repoint|
 *   clients        writes to old primary ---------->|x    errors (read-only candidate)    |writes to new
 *                                           block start ^   (last poll that saw the VIP on the old primary)
 */
import { type Inst, onInst } from '../adapters/mysql/admin.ts';
import { probeNode } from '../adapters/mysql/probe.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { electCandidate } from '../core/elect-candidate.ts';
import type { CandidateVerdict, ClusterSnapshot, ElectionPolicy } from '../core/types.ts';
import {
  describeError,
  SwitchoverCatchUpTimeoutError,
  SwitchoverPreCheckFailedError,
  TRANSIENT_ERROR_NAMES,
  VipMoveFailedError,
  VipNotVerifiedError,
} from '../errors.ts';
import {
  assertClaim,
  beginFailover,
  type CleanupOptions,
  candidateOf,
  type FailoverContext,
  type FailoverRequest,
  findPromotion,
  instClock,
  moveVip,
  node,
  parseStatesError,
  promoteCandidate,
  repointReplicas,
  revokeAndSettle,
  rollForward,
  type StepOutcome,
  settleDeadline,
  sourceOf,
  step,
  timeouts,
} from '../failover/steps.ts';
import type { Runtime } from '../runtime.ts';
import { sleep } from './common.ts';

/** Limits of the pre-checks and the write block. */
export interface SwitchoverLimits {
  /** The candidate may lag at most this (Seconds_Behind_Master and heartbeat lag). */
  maxLagSeconds: number;
  /** The primary's oldest open transaction may be at most this old. */
  maxTransactionSeconds: number;
  /** Between read_only=ON and killing the remaining client sessions. */
  graceMs: number;
  /** How long the candidate may take to apply the old primary's last transaction. */
  catchUpTimeoutSeconds: number;
}

export const DEFAULT_SWITCHOVER_LIMITS: SwitchoverLimits = {
  maxLagSeconds: 5,
  maxTransactionSeconds: 10,
  graceMs: 100,
  catchUpTimeoutSeconds: 10,
};

export interface SwitchoverRequest extends FailoverRequest {
  kind: 'switchover';
  requestedCandidate?: string;
  limits: SwitchoverLimits;
}

export interface PreCheck {
  check: string;
  ok: boolean;
  detail: string;
}

export interface SwitchoverContext extends FailoverContext {
  requestedCandidate?: string;
  limits: SwitchoverLimits;
  /** How far the switchover got; SwitchoverAborted decides from it what to undo. */
  phase?: 'prechecked' | 'blocked' | 'caught-up';
  promoted?: boolean;
  preChecks?: PreCheck[];
  /** End of the pre-checks: nothing (VIP included) changed before it. */
  preCheckedAt?: number;
  /** read_only=ON on the old primary. */
  blockedAt?: number;
  /**
   * When clients may have lost the old primary, at the earliest: read_only=ON, or the VIP leaving
   * it (bounded by the last provider read that still showed it there). The write block starts here.
   */
  blockStartedAt?: number;
  oldPrimaryGtid?: string;
  oldPrimaryRejoined?: boolean;
  promotedAt?: number;
  repointedAt?: number;
  /** The provider API showed the VIP on the candidate. */
  vipVerifiedAt?: number;
  /** The new primary commits without waiting (promoted; semi-sync replicas attached when semi-sync). */
  writableAt?: number;
  /** blockStartedAt -> the later of writableAt and vipVerifiedAt. */
  writeBlockMs?: number;
  /** SwitchoverAborted moved the VIP back to the old primary, verified. */
  vipMovedBack?: boolean;
  /** A Catch's error ({Error, Cause}), as Step Functions puts it at ResultPath $.error. */
  error?: StatesError;
  /** The VIP branch's error when the writes branch failed too (that one is `error`). */
  vipError?: StatesError;
  /** The Parallel state's outputs (ResultPath $.branches): [writes branch, VIP branch]. */
  branches?: SwitchoverContext[];
}

/** An error as Step Functions hands it to a Catch target. */
export interface StatesError {
  Error?: string;
  Cause?: string;
}

/** BeginSwitchover: claims the next epoch with kind 'switchover', ignoring the anti-flap block. */
export async function beginSwitchover(rt: Runtime, req: SwitchoverRequest): Promise<SwitchoverContext> {
  const ctx = await beginFailover(rt, { ...req, kind: 'switchover', ignoreBlock: true });
  return {
    ...ctx,
    limits: req.limits,
    ...(req.requestedCandidate ? { requestedCandidate: req.requestedCandidate } : {}),
  };
}

/** SwitchoverPreCheck: every check runs, all failures are reported at once; nothing is changed. */
export async function preCheckSwitchover(rt: Runtime, ctx: SwitchoverContext): Promise<SwitchoverContext> {
  const detail = await step(rt, ctx, 'SwitchoverPreCheck', async (c, logins) => {
    const t = timeouts(c);
    const probes = await Promise.all(
      c.nodes.map((n) =>
        probeNode({ nodeId: n.id, host: n.host, port: n.port, isPrimary: false }, logins.admin, t),
      ),
    );
    const snapshot: ClusterSnapshot = {
      cluster: c.name,
      takenAt: rt.now(),
      primaryId: ctx.failedPrimary,
      nodes: probes,
    };
    const primary = probes.find((p) => p.nodeId === ctx.failedPrimary);
    const checks: PreCheck[] = [];
    const add = (check: string, ok: boolean, d: string) => checks.push({ check, ok, detail: d });
    add(
      'primary reachable',
      primary?.reachable === true,
      primary?.reachable ? 'answers' : `${primary?.error?.code ?? 'no answer'}`,
    );
    add('primary writable', primary?.readOnly === false, `read_only=${primary?.readOnly ? 'ON' : 'OFF'}`);
    const trx = primary?.longestTrxSeconds ?? 0;
    add(
      'no long transaction on the primary',
      trx <= ctx.limits.maxTransactionSeconds,
      `oldest open transaction ${trx} s (limit ${ctx.limits.maxTransactionSeconds} s)`,
    );
    const policy: ElectionPolicy = {
      mode: 'auto',
      order: c.nodes.map((n) => n.id),
      rules: Object.fromEntries(c.nodes.map((n) => [n.id, n.promotionRule])),
      maxLagSeconds: ctx.limits.maxLagSeconds,
    };
    const election = electCandidate(
      snapshot,
      policy,
      primary?.gtidBinlogPos ? { primaryGtid: primary.gtidBinlogPos } : {},
    );
    const state = await rt.store.getClusterState(c.name);
    const notRejoined = new Set(state?.needsRejoin ?? []);
    let candidate = ctx.requestedCandidate;
    if (!candidate) {
      const pick =
        election.kind === 'candidate' && !notRejoined.has(election.nodeId) ? election.nodeId : undefined;
      const fallback = election.verdicts.find((v) => v.eligible && !notRejoined.has(v.nodeId))?.nodeId;
      candidate = pick ?? fallback;
    }
    const verdict: CandidateVerdict | undefined = election.verdicts.find((v) => v.nodeId === candidate);
    add(
      'candidate eligible',
      candidate !== undefined && verdict?.eligible === true,
      candidate === undefined
        ? `no eligible replica: ${election.kind === 'veto' ? election.reason : 'all need rejoin'}`
        : `${candidate}: ${verdict?.reasons.join('; ') ?? 'not probed'}`,
    );
    if (candidate) {
      add(
        'candidate rejoined',
        !notRejoined.has(candidate),
        notRejoined.has(candidate) ? 'marked needs-rejoin' : 'yes',
      );
      const cp = probes.find((p) => p.nodeId === candidate);
      const src = c.nodes.find((n) => n.id === ctx.failedPrimary);
      const r = cp?.replication;
      add(
        'candidate replicating from the primary',
        r !== undefined &&
          r.ioState === 'Yes' &&
          r.sqlRunning &&
          r.sourcePort === src?.port &&
          r.sourceHost === src?.host,
        r
          ? `IO=${r.ioState} SQL=${r.sqlRunning ? 'Yes' : 'No'} from ${r.sourceHost}:${r.sourcePort}`
          : 'not a replica',
      );
      const sbm = r?.secondsBehindMaster;
      // The heartbeat row is written once per probe interval: that much "lag" is normal.
      const hb =
        typeof cp?.heartbeatLagMs === 'number'
          ? Math.max(0, cp.heartbeatLagMs - c.detection.intervalMs) / 1000
          : undefined;
      const lag = Math.max(typeof sbm === 'number' ? sbm : 0, hb ?? 0);
      add(
        'candidate lag under the limit',
        typeof sbm === 'number' && lag <= ctx.limits.maxLagSeconds,
        `Seconds_Behind_Master ${sbm ?? 'NULL'}, heartbeat ${hb === undefined ? '-' : `${hb.toFixed(1)} s`} (limit ${ctx.limits.maxLagSeconds} s)`,
      );
    }
    const failed = checks.filter((x) => !x.ok);
    if (failed.length) {
      // Typed errors carry no details through Step Functions: keep every check in the record.
      const at = rt.now();
      await rt.store.appendStep(ctx.cluster, ctx.epoch, {
        name: 'SwitchoverPreCheckResult',
        startedAt: at,
        endedAt: at,
        result: 'error',
        detail: { checks, candidate: candidate ?? null },
      });
      throw new SwitchoverPreCheckFailedError(
        `Switchover of ${c.name} refused, nothing was changed: ${failed.map((f) => `${f.check} (${f.detail})`).join('; ')}`,
        { checks },
      );
    }
    return {
      detail: {
        candidate,
        receivedGtid: election.kind === 'candidate' ? election.receivedGtid : '',
        checks,
        verdicts: election.verdicts,
      },
    };
  });
  return {
    ...ctx,
    candidate: String(detail.candidate),
    verdicts: detail.verdicts,
    preChecks: detail.checks,
    phase: 'prechecked',
    preCheckedAt: rt.now(),
  };
}

/** How long commits in flight on the old primary may take before their sessions are killed. */
const READ_ONLY_WAIT_MS = 2000;

/**
 * BlockWrites (writes branch, parallel to SwitchoverMoveVip): waits until the provider shows the
 * VIP off the old primary, then read_only on it, a short grace, and its client sessions end.
 * Waiting keeps the old primary writable during the provider's propagation, when clients can
 * still reach it; it also means the candidate is never promoted unless the VIP reached it.
 */
export async function blockWrites(rt: Runtime, ctx: SwitchoverContext): Promise<SwitchoverContext> {
  const detail = await step(rt, ctx, 'BlockWrites', async (c, logins) => {
    const vip = await waitVipOffOldPrimary(rt, ctx, c);
    const n = node(c, ctx.failedPrimary);
    const block = async (inst: Inst) => {
      // The failover's fencing rule (Inst.applyReadOnly): read_only=ON waits, so new writes are
      // held back behind it; commits in flight get READ_ONLY_WAIT_MS to finish, then a second
      // connection kills their sessions (the semi-sync ACK waiters last) until it applies.
      await assertClaim(rt, ctx, 'BlockWrites:read-only');
      const blockedAt = rt.now();
      const ro = await inst.applyReadOnly({ graceMs: READ_ONLY_WAIT_MS, budgetMs: READ_ONLY_WAIT_MS + 1000 });
      await sleep(ctx.limits.graceMs);
      const killed = ro.killed + (await inst.killClientSessions()).killed;
      const gtid = await inst.readGtidPosition();
      // Before the VIP left, clients could write; after, they could not, whatever read_only said.
      const vipLeftBy = vip.polls === 0 ? blockedAt : (vip.lastSeenOnOldAt ?? ctx.preCheckedAt ?? blockedAt);
      return {
        detail: {
          blockedAt,
          blockStartedAt: Math.min(blockedAt, vipLeftBy),
          killedSessions: killed,
          gtidBinlogPos: gtid.binlog ?? gtid.executed,
          vip,
        },
      };
    };
    return onInst(n.id, n, logins.admin, timeouts(c), 'BlockWrites', block, instClock(rt));
  });
  return {
    ...ctx,
    blockedAt: detail.blockedAt,
    blockStartedAt: detail.blockStartedAt,
    oldPrimaryGtid: detail.gtidBinlogPos,
    phase: 'blocked',
  };
}

interface VipWait {
  /** Provider reads made (0: no VIP provider). */
  polls: number;
  /** When the last read that still showed the VIP on the old primary was sent. */
  lastSeenOnOldAt?: number;
  /** When the first read that showed it on the candidate came back. */
  seenOnCandidateAt?: number;
  waitMs: number;
}

/** `Name: message` of a non-transient MoveVip error in this execution's record, if any. */
async function terminalVipFailure(rt: Runtime, ctx: SwitchoverContext): Promise<string | undefined> {
  const record = await rt.store.getFailover(ctx.cluster, ctx.epoch).catch(() => undefined);
  const transient: readonly string[] = TRANSIENT_ERROR_NAMES;
  const e = record?.steps.find(
    (x) => x.name === 'MoveVip' && x.result === 'error' && !transient.includes(x.error?.name ?? ''),
  )?.error;
  return e ? `${e.name}: ${e.message}` : undefined;
}

/** Polls the VIP's holder until it is the candidate; VipNotVerifiedError past the provider's verify time. */
async function waitVipOffOldPrimary(rt: Runtime, ctx: SwitchoverContext, c: ClusterConfig): Promise<VipWait> {
  const mover = await rt.vipMover(c);
  const t0 = rt.now();
  if (!mover || c.vip.provider === 'none') return { polls: 0, waitMs: 0 };
  // SwitchoverMoveVip gives up after verifyTimeoutMs; a little more covers its start.
  const deadline = t0 + c.vip.verifyTimeoutMs + 2000;
  const w: VipWait = { polls: 0, waitMs: 0 };
  let holder: string | undefined;
  let lastError = '';
  for (;;) {
    const sentAt = rt.now();
    // The VIP branch records its failure in the audit record: a terminal one (a permission, a
    // wrong ENI) ends the wait at once instead of at the deadline.
    const [failed, read] = await Promise.all([
      terminalVipFailure(rt, ctx),
      mover.currentHolder().then(
        (h) => ({ ok: true as const, h }),
        // A throttled or failed read is no verdict: read again until the deadline.
        (err: unknown) => ({ ok: false as const, err: describeError(err).message }),
      ),
    ]);
    if (failed) {
      throw new VipMoveFailedError(
        `The VIP branch failed (${failed}): writes were not blocked on ${ctx.failedPrimary}.`,
        { candidate: ctx.candidate },
      );
    }
    if (read.ok) {
      holder = read.h;
      w.polls++;
      if (holder === ctx.failedPrimary) w.lastSeenOnOldAt = sentAt;
      if (holder === ctx.candidate) {
        w.seenOnCandidateAt = rt.now();
        w.waitMs = w.seenOnCandidateAt - t0;
        return w;
      }
    } else {
      lastError = read.err;
    }
    if (rt.now() > deadline) {
      throw new VipNotVerifiedError(
        `VIP ${mover.address} did not reach ${ctx.candidate} within ${c.vip.verifyTimeoutMs + 2000} ms (holder ${holder ?? 'none'}${lastError ? `; last read error: ${lastError}` : ''}): writes were not blocked.`,
        { candidate: ctx.candidate, holder },
      );
    }
    await sleep(25);
  }
}

/** WaitCandidateCaughtUp: the candidate applies everything the old primary wrote. */
export async function waitCandidateCaughtUp(rt: Runtime, ctx: SwitchoverContext): Promise<SwitchoverContext> {
  const target = ctx.oldPrimaryGtid ?? '';
  await step(rt, ctx, 'WaitCandidateCaughtUp', async (c, logins) => {
    const n = node(c, ctx.candidate ?? '');
    return onInst(
      n.id,
      n,
      logins.admin,
      timeouts(c),
      'WaitCandidateCaughtUp',
      async (inst): Promise<StepOutcome> => {
        const t0 = rt.now();
        const outcome = await inst.applyRelayLog(target, ctx.limits.catchUpTimeoutSeconds);
        const gtid = await inst.readGtidPosition();
        if (outcome === 'timeout' || !inst.dialect.gtid.contains(gtid.executed, target)) {
          throw new SwitchoverCatchUpTimeoutError(
            `Candidate ${n.id} did not apply ${ctx.failedPrimary}'s last transaction ${target} within ${ctx.limits.catchUpTimeoutSeconds} s (it has ${gtid.executed}).`,
            { candidate: n.id, target },
          );
        }
        return { detail: { target, waitMs: rt.now() - t0, gtidCurrentPos: gtid.executed } };
      },
      instClock(rt),
    );
  });
  return { ...ctx, candidateGtid: target, phase: 'caught-up' };
}

/** SwitchoverPromote: the failover's PromoteCandidate. */
export async function promoteSwitchoverCandidate(
  rt: Runtime,
  ctx: SwitchoverContext,
): Promise<SwitchoverContext> {
  const out = await promoteCandidate(rt, ctx);
  return { ...ctx, ...out, promoted: true, promotedAt: rt.now() };
}

/**
 * SwitchoverRepoint: the other replicas (the failover's RepointReplicas) and the old primary
 * follow the new primary, concurrently. A node that fails is reported, not thrown: the new
 * primary is writable already. With semi-sync its commits wait (up to semiSyncTimeoutMs) until a
 * replica attaches, so the write block ends here, not at the promotion.
 */
export async function repointForSwitchover(rt: Runtime, ctx: SwitchoverContext): Promise<SwitchoverContext> {
  const [repointed, rejoined] = await Promise.all([repointReplicas(rt, ctx), demoteOldPrimary(rt, ctx)]);
  return { ...ctx, ...repointed, oldPrimaryRejoined: rejoined, repointedAt: rt.now() };
}

async function demoteOldPrimary(rt: Runtime, ctx: SwitchoverContext): Promise<boolean> {
  const detail = await step(rt, ctx, 'ReplicateOldPrimary', async (c, logins): Promise<StepOutcome> => {
    const old = node(c, ctx.failedPrimary);
    const primary = node(c, ctx.candidate ?? '');
    try {
      await onInst(
        old.id,
        old,
        logins.admin,
        timeouts(c),
        'ReplicateOldPrimary',
        async (inst) => {
          await inst.setReadOnly(true);
          await inst.disableSemiSyncPrimary();
          await inst.stopReplication();
          // Its replication position dates from before it was primary; it has exactly what the candidate had.
          await inst.adoptOwnGtidHistory();
          await inst.followPrimary(sourceOf(primary, logins.replication), { semiSync: c.failover.semiSync });
          await inst.waitReplicationRunning(5000, 50);
        },
        instClock(rt),
      );
      return { detail: { rejoined: true, source: primary.id } };
    } catch (err) {
      return { result: 'skipped', detail: { rejoined: false, error: describeError(err).message } };
    }
  });
  return detail.rejoined === true;
}

/**
 * SwitchoverMoveVip (VIP branch, parallel to the writes branch): the failover's MoveVip to the
 * candidate, read-only until its promotion, so clients that arrive early get errors, never a
 * second writable primary.
 */
export async function moveVipForSwitchover(rt: Runtime, ctx: SwitchoverContext): Promise<SwitchoverContext> {
  const out = await moveVip(rt, ctx);
  return { ...ctx, vip: out.vip, vipVerifiedAt: rt.now() };
}

/**
 * Merges the Parallel state's outputs ([writes branch, VIP branch], at `branches`) into one
 * context. The writes branch carries the switchover's progress; the VIP branch adds the VIP.
 * A failed branch's output is its failed state's input plus `error`: the writes branch's error
 * wins, the VIP branch's is kept as `vipError` then.
 */
export function mergeBranches(ctx: SwitchoverContext): SwitchoverContext {
  if (!ctx.branches) return ctx;
  const { branches, ...base } = ctx;
  const [writes = base, vipBranch = base] = branches;
  const { error: writesError, ...progress } = writes;
  const merged: SwitchoverContext = { ...base, ...progress };
  delete merged.error;
  if (vipBranch.vip !== undefined) merged.vip = vipBranch.vip;
  if (vipBranch.vipVerifiedAt !== undefined) merged.vipVerifiedAt = vipBranch.vipVerifiedAt;
  const error = writesError ?? vipBranch.error;
  if (error) merged.error = error;
  if (writesError && vipBranch.error) merged.vipError = vipBranch.error;
  return merged;
}

/**
 * SwitchoverJoin (after the Parallel state): one context from both branches, and the write block
 * measured: from the earlier of read_only=ON and the VIP leaving the old primary, to the later of
 * the new primary accepting commits and the VIP verified on it. When only the VIP branch failed
 * (the candidate is promoted, so nothing can be undone), the VIP move is tried once more here, as
 * the sequential switchover would have. A remaining error is returned in `error`: the Choice after
 * this state sends the execution to SwitchoverAborted.
 */
export async function joinSwitchover(rt: Runtime, input: SwitchoverContext): Promise<SwitchoverContext> {
  let ctx = mergeBranches(input);
  const c = rt.cluster(ctx.cluster);
  const onlyVipFailed = !input.branches?.[0]?.error && input.branches?.[1]?.error !== undefined;
  if (onlyVipFailed && ctx.promoted) {
    const { error: vipError, ...rest } = ctx;
    try {
      ctx = { ...(await moveVipForSwitchover(rt, rest)), ...(vipError ? { vipError } : {}) };
    } catch (err) {
      const e = describeError(err);
      ctx = { ...ctx, error: { Error: e.name, Cause: e.message } };
    }
  }
  const writableAt = c.failover.semiSync ? ctx.repointedAt : ctx.promotedAt;
  const start = ctx.blockStartedAt ?? ctx.blockedAt;
  const end =
    writableAt === undefined
      ? undefined
      : c.vip.provider === 'none'
        ? writableAt
        : ctx.vipVerifiedAt === undefined
          ? undefined
          : Math.max(writableAt, ctx.vipVerifiedAt);
  const writeBlockMs = start !== undefined && end !== undefined ? end - start : undefined;
  const out: SwitchoverContext = {
    ...ctx,
    ...(writableAt !== undefined ? { writableAt } : {}),
    ...(writeBlockMs !== undefined ? { writeBlockMs } : {}),
  };
  await step(
    rt,
    ctx,
    'SwitchoverJoin',
    async (): Promise<StepOutcome> => ({
      result: ctx.error ? 'skipped' : 'ok',
      detail: {
        writeBlockMs: writeBlockMs ?? null,
        blockStartedAt: start ?? null,
        blockedAt: ctx.blockedAt ?? null,
        promotedAt: ctx.promotedAt ?? null,
        writableAt: writableAt ?? null,
        vipVerifiedAt: ctx.vipVerifiedAt ?? null,
        ...(ctx.error ? { error: parseStatesError(ctx.error) } : {}),
        ...(out.vipError ? { vipError: parseStatesError(out.vipError) } : {}),
      },
    }),
  );
  return out;
}

/** CompleteSwitchover: the new primary becomes the truth; the anti-flap block is left as it was. */
export async function completeSwitchover(rt: Runtime, ctx: SwitchoverContext): Promise<SwitchoverContext> {
  const now = rt.now();
  const state = await rt.store.getClusterState(ctx.cluster);
  await rt.store.appendStep(ctx.cluster, ctx.epoch, {
    name: 'CompleteSwitchover',
    startedAt: now,
    endedAt: now,
    result: 'ok',
    detail: { writeBlockMs: ctx.writeBlockMs, oldPrimaryRejoined: ctx.oldPrimaryRejoined === true },
  });
  await rt.store.endFailover({
    cluster: ctx.cluster,
    epoch: ctx.epoch,
    status: 'succeeded',
    newPrimary: ctx.candidate ?? '',
    oldPrimary: ctx.failedPrimary,
    now,
    // A planned switchover is no incident: automatic failover stays armed (or blocked) as it was.
    blockedUntil: state?.blockedUntil ?? 0,
  });
  if (ctx.oldPrimaryRejoined) await rt.store.removeNeedsRejoin(ctx.cluster, ctx.failedPrimary);
  await rt.notifier.notify({
    cluster: ctx.cluster,
    severity: 'warning',
    subject: `switchover succeeded: ${ctx.failedPrimary} -> ${ctx.candidate}`,
    message: `New primary ${ctx.candidate} (epoch ${ctx.epoch}); write block ${ctx.writeBlockMs ?? '?'} ms. ${ctx.failedPrimary} ${ctx.oldPrimaryRejoined ? 'replicates from it' : 'needs rejoin'}.${ctx.notRepointed?.length ? ` Not repointed: ${ctx.notRepointed.map((r) => r.nodeId).join(', ')}.` : ''}`,
    data: { epoch: ctx.epoch, writeBlockMs: ctx.writeBlockMs, vip: ctx.vip },
  });
  return ctx;
}

/**
 * SwitchoverAborted (Catch target, and the Choice's after SwitchoverJoin on a branch error).
 * Before promotion, while this execution still owns the epoch: the VIP goes back to the old
 * primary (verified), then the old primary gets read_only=OFF back, but only when the candidate
 * is verified still a read-only replica (never two writable nodes). After promotion nothing is
 * undone: like a failover it is rolled forward (the candidate recorded as the primary, the old one
 * needing rejoin unless it replicates already) and the alert names what did not complete. It is
 * promoted when this execution says so, or when it answers writable. A stale execution (StaleEpochError, or another execution
 * owns the epoch by now) touches nothing. The record ends as failed; the anti-flap block is left
 * as it was.
 */
export async function switchoverAborted(
  rt: Runtime,
  input: SwitchoverContext,
  opts: CleanupOptions = {},
): Promise<SwitchoverContext & { restored: boolean; abortReason: string }> {
  const ctx = mergeBranches(input);
  // The Catch of SwitchoverJoin puts the join's error at $.error of its input (with the branches).
  if (input.branches && input.error) ctx.error = input.error;
  const c = rt.cluster(ctx.cluster);
  const error = parseStatesError(ctx.error);
  const now = rt.now();
  let restored = false;
  let vipMovedBack = false;
  let reason: string;
  const stale = error.name === 'StaleEpochError';
  // The cleanup's rule (execution-ended.ts): revoke the claim, wait out the tasks in flight, then decide.
  const settled =
    !stale &&
    typeof ctx.epoch === 'number' &&
    (await revokeAndSettle(rt, ctx, settleDeadline(rt, error, opts), opts.sleep));
  const state = settled ? await rt.store.getClusterState(ctx.cluster) : undefined;
  const owns = settled && state?.failoverInProgress?.epoch === ctx.epoch;
  const record = owns ? await rt.store.getFailover(ctx.cluster, ctx.epoch) : undefined;
  const recorded = ctx.candidate ?? candidateOf(record);
  if (recorded) ctx.candidate = recorded;
  // One rule with the failover: a candidate that is (or was verified) writable is rolled forward.
  const promoted =
    owns && ctx.candidate
      ? ctx.promoted
        ? ctx.candidate
        : await findPromotion(rt, c, record, ctx.candidate)
      : undefined;
  let rolledForward = false;
  if (stale) {
    reason = 'another execution owns the cluster: nothing touched';
  } else if (promoted) {
    const forward = await rollForward(rt, c, ctx, record, promoted, {
      blockedUntil: state?.blockedUntil ?? 0,
      error,
      ...(ctx.oldPrimaryRejoined ? { oldPrimaryRejoined: true } : {}),
    });
    rolledForward = true;
    reason = `ROLLED FORWARD: ${forward.summary}`;
  } else if (!ctx.phase) {
    reason = 'refused before any change';
  } else {
    try {
      const undo = await undoBeforePromotion(rt, ctx, c);
      ({ restored, vipMovedBack, reason } = undo);
    } catch (err) {
      const e = describeError(err);
      reason =
        e.name === 'StaleEpochError'
          ? 'another execution owns the cluster: nothing touched'
          : `FAILED to undo: ${e.message}`;
    }
  }
  if (typeof ctx.epoch === 'number' && !stale && !rolledForward) {
    const now2 = await rt.store.getClusterState(ctx.cluster);
    if (now2?.failoverInProgress?.epoch === ctx.epoch) {
      await rt.store
        .appendStep(ctx.cluster, ctx.epoch, {
          name: 'SwitchoverAborted',
          startedAt: now,
          endedAt: rt.now(),
          result: 'ok',
          detail: { restored, vipMovedBack, reason, error },
        })
        .catch(() => {});
      await rt.store.endFailover({
        cluster: ctx.cluster,
        epoch: ctx.epoch,
        status: 'failed',
        oldPrimary: ctx.failedPrimary,
        now: rt.now(),
        blockedUntil: now2.blockedUntil ?? 0,
        error,
      });
    }
  }
  const refused = !ctx.phase && error.name === 'SwitchoverPreCheckFailedError';
  await rt.notifier.notify({
    cluster: ctx.cluster,
    severity: refused || restored ? 'warning' : 'critical',
    subject: `switchover ${refused ? 'refused' : 'ABORTED'}: ${error.name}`,
    message: `${error.message} ${reason}.`,
    data: { epoch: ctx.epoch, candidate: ctx.candidate, restored, vipMovedBack },
  });
  return { ...ctx, restored, vipMovedBack, abortReason: reason };
}

/** The undo runs after its own cleanup revoked the claim. */
const CLEANUP = { allowRevoked: true } as const;

/**
 * The undo of a switchover that did not promote, each part epoch-checked and audited: the VIP
 * back to the old primary first (so no client reaches the candidate, whatever state it is in),
 * then the old primary's writes, only with the VIP verified on it and the candidate verified a
 * read-only replica.
 */
async function undoBeforePromotion(
  rt: Runtime,
  ctx: SwitchoverContext,
  c: ClusterConfig,
): Promise<{ restored: boolean; vipMovedBack: boolean; reason: string }> {
  const mover = c.vip.provider === 'none' ? undefined : await rt.vipMover(c);
  const verifyMs = c.vip.provider === 'none' ? 0 : c.vip.verifyTimeoutMs;
  let vipMovedBack = false;
  if (mover) {
    try {
      const back = await step(
        rt,
        ctx,
        'MoveVipBack',
        async (): Promise<StepOutcome> => {
          const r = await mover.moveTo(ctx.failedPrimary, {
            ...(ctx.candidate ? { fromNodeId: ctx.candidate } : {}),
            oldHolderDead: false,
            deadline: rt.now() + verifyMs,
            // A different token: the provider must not take this for a replay of the move out.
            clientToken: `${ctx.executionName.slice(0, 58)}-back`,
          });
          return {
            detail: { holder: r.holder, ms: r.ms, alreadyThere: r.alreadyThere, apiCalls: r.apiCalls },
          };
        },
        CLEANUP,
      );
      vipMovedBack = back.holder === ctx.failedPrimary;
    } catch (err) {
      const e = describeError(err);
      if (e.name === 'StaleEpochError') throw err;
      return {
        restored: false,
        vipMovedBack: false,
        reason: `could NOT move the VIP back to ${ctx.failedPrimary} (${e.message}): it stays read-only (operator needed)`,
      };
    }
  }
  const detail = await step(
    rt,
    ctx,
    'RestoreOldPrimary',
    async (_, logins): Promise<StepOutcome> => {
      const t = timeouts(c);
      let candidateSafe = false;
      try {
        const cand = node(c, ctx.candidate ?? '');
        candidateSafe = await onInst(
          cand.id,
          cand,
          logins.admin,
          t,
          'RestoreOldPrimary',
          async (inst) => (await inst.isReadOnly()) && (await inst.readReplicaStatus()) !== undefined,
          instClock(rt),
        );
      } catch {
        candidateSafe = false;
      }
      if (!candidateSafe) {
        return {
          result: 'skipped',
          detail: {
            restored: false,
            reason: `cannot verify that ${ctx.candidate} is still a read-only replica: ${ctx.failedPrimary} stays read-only (operator needed)`,
          },
        };
      }
      const old = node(c, ctx.failedPrimary);
      await onInst(
        old.id,
        old,
        logins.admin,
        t,
        'RestoreOldPrimary',
        (inst) => inst.setReadOnly(false),
        instClock(rt),
      );
      return {
        detail: {
          restored: true,
          reason: `${ctx.failedPrimary} is writable again${mover ? ' behind the VIP' : ''}; ${ctx.candidate} is a read-only replica`,
        },
      };
    },
    CLEANUP,
  ).catch((err: unknown) => {
    if (describeError(err).name === 'StaleEpochError') throw err;
    return {
      restored: false,
      reason: `FAILED to restore writes on ${ctx.failedPrimary}: ${describeError(err).message}`,
    };
  });
  return { restored: detail.restored === true, vipMovedBack, reason: String(detail.reason) };
}
