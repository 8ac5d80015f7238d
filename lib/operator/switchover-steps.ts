/**
 * The steps of a planned switchover (the old primary is alive), run by the switchover state
 * machine (infra/switchover-state-machine.yml). Each is epoch-checked and audited through the
 * failover machinery's `step()`, and the shared steps (promote, repoint, VIP) are the failover's own.
 *
 *   SwitchoverPreCheck     candidate healthy, replicating, lag and the primary's longest
 *                          transaction under the limits, no errant transactions
 *   BlockWrites            t0: read_only=ON on the old primary; grace; kill client sessions;
 *                          its final gtid_binlog_pos
 *   WaitCandidateCaughtUp  MASTER_GTID_WAIT(that position) on the candidate
 *   SwitchoverPromote      the failover's PromoteCandidate
 *   SwitchoverRepoint      the other replicas AND the old primary replicate from the new one,
 *                          concurrently (the semi-sync clients attach before clients arrive)
 *   SwitchoverMoveVip      the failover's MoveVip; t1: writable through the VIP (write block = t1 - t0)
 *   CompleteSwitchover     new primary recorded; no anti-flap block (nothing failed)
 *   SwitchoverAborted      Catch: before promotion the old primary gets its writability back
 */
import {
  fenceNode,
  onNode,
  readGtid,
  readReplication,
  replicateFrom,
  waitForGtid,
} from '../adapters/mysql/admin.ts';
import { probeNode } from '../adapters/mysql/probe.ts';
import { electCandidate } from '../core/elect-candidate.ts';
import { gtidContains } from '../core/gtid.ts';
import type { CandidateVerdict, ClusterSnapshot, ElectionPolicy } from '../core/types.ts';
import { describeError } from '../errors.ts';
import {
  beginFailover,
  type FailoverContext,
  type FailoverRequest,
  moveVip,
  node,
  promoteCandidate,
  repointReplicas,
  type StepOutcome,
  step,
  timeouts,
} from '../failover/steps.ts';
import type { Runtime } from '../runtime.ts';
import { SwitchoverCatchUpTimeoutError, SwitchoverPreCheckFailedError, sleep } from './common.ts';

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
  /** How far the switchover got; SwitchoverAborted decides from it whether to restore writes. */
  phase?: 'prechecked' | 'caught-up';
  promoted?: boolean;
  preChecks?: PreCheck[];
  blockedAt?: number;
  oldPrimaryGtid?: string;
  oldPrimaryRejoined?: boolean;
  writableAt?: number;
  writeBlockMs?: number;
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
  const detail = await step(rt, ctx, 'SwitchoverPreCheck', async (c, logins): Promise<StepOutcome> => {
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
    verdicts: detail.verdicts as CandidateVerdict[],
    preChecks: detail.checks as PreCheck[],
    phase: 'prechecked',
  };
}

/** BlockWrites: read_only on the old primary, a short grace, then its client sessions end. */
export async function blockWrites(rt: Runtime, ctx: SwitchoverContext): Promise<SwitchoverContext> {
  const detail = await step(rt, ctx, 'BlockWrites', async (c, logins) => {
    const n = node(c, ctx.failedPrimary);
    return onNode(n.id, n, logins.admin, timeouts(c), 'BlockWrites', async (s): Promise<StepOutcome> => {
      // SET GLOBAL read_only waits for open transactions and locks; never wait long for one.
      await s.execute('SET SESSION lock_wait_timeout = 2');
      const blockedAt = rt.now();
      await s.execute('SET GLOBAL read_only = ON');
      await sleep(ctx.limits.graceMs);
      const { killed } = await fenceNode(s, logins.admin.user);
      const gtid = await readGtid(s);
      return { detail: { blockedAt, killedSessions: killed, gtidBinlogPos: gtid.binlog } };
    });
  });
  return { ...ctx, blockedAt: Number(detail.blockedAt), oldPrimaryGtid: String(detail.gtidBinlogPos) };
}

/** WaitCandidateCaughtUp: the candidate applies everything the old primary wrote. */
export async function waitCandidateCaughtUp(rt: Runtime, ctx: SwitchoverContext): Promise<SwitchoverContext> {
  const target = ctx.oldPrimaryGtid ?? '';
  await step(rt, ctx, 'WaitCandidateCaughtUp', async (c, logins) => {
    const n = node(c, ctx.candidate ?? '');
    return onNode(
      n.id,
      n,
      logins.admin,
      timeouts(c),
      'WaitCandidateCaughtUp',
      async (s): Promise<StepOutcome> => {
        const t0 = rt.now();
        const ok = await waitForGtid(s, target, ctx.limits.catchUpTimeoutSeconds);
        const gtid = await readGtid(s);
        if (!ok || !gtidContains(gtid.current, target)) {
          throw new SwitchoverCatchUpTimeoutError(
            `Candidate ${n.id} did not apply ${ctx.failedPrimary}'s last transaction ${target} within ${ctx.limits.catchUpTimeoutSeconds} s (it has ${gtid.current}).`,
            { candidate: n.id, target },
          );
        }
        return { detail: { target, waitMs: rt.now() - t0, gtidCurrentPos: gtid.current } };
      },
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
  return { ...ctx, ...out, promoted: true };
}

/**
 * SwitchoverRepoint: the other replicas (the failover's RepointReplicas) and the old primary
 * follow the new primary, concurrently. A node that fails is reported, not thrown: the new
 * primary is writable already and the VIP must follow it.
 */
export async function repointForSwitchover(rt: Runtime, ctx: SwitchoverContext): Promise<SwitchoverContext> {
  const [repointed, rejoined] = await Promise.all([repointReplicas(rt, ctx), demoteOldPrimary(rt, ctx)]);
  return { ...ctx, ...repointed, oldPrimaryRejoined: rejoined };
}

async function demoteOldPrimary(rt: Runtime, ctx: SwitchoverContext): Promise<boolean> {
  const detail = await step(rt, ctx, 'ReplicateOldPrimary', async (c, logins): Promise<StepOutcome> => {
    const old = node(c, ctx.failedPrimary);
    const primary = node(c, ctx.candidate ?? '');
    try {
      await onNode(old.id, old, logins.admin, timeouts(c), 'ReplicateOldPrimary', async (s) => {
        await s.execute('SET GLOBAL read_only = ON');
        await s.execute('SET GLOBAL rpl_semi_sync_master_enabled = OFF');
        await s.execute('STOP SLAVE', [], 10_000);
        // Its gtid_slave_pos dates from before it was primary; it has exactly what the candidate had.
        await s.execute('SET GLOBAL gtid_slave_pos = @@gtid_current_pos');
        await replicateFrom(s, primary, logins.replication, { semiSync: c.failover.semiSync });
        const until = Date.now() + 5000;
        for (;;) {
          const r = await readReplication(s);
          if (r?.ioState === 'Yes' && r.sqlRunning) return;
          if (Date.now() > until)
            throw new Error(
              `threads IO=${r?.ioState} SQL=${r?.sqlRunning} ${r?.lastIoError ?? ''} ${r?.lastSqlError ?? ''}`.trim(),
            );
          await sleep(50);
        }
      });
      return { detail: { rejoined: true, source: primary.id } };
    } catch (err) {
      return { result: 'skipped', detail: { rejoined: false, error: describeError(err).message } };
    }
  });
  return detail.rejoined === true;
}

/** SwitchoverMoveVip: the failover's MoveVip; from here clients write to the new primary. */
export async function moveVipForSwitchover(rt: Runtime, ctx: SwitchoverContext): Promise<SwitchoverContext> {
  const out = await moveVip(rt, ctx);
  const writableAt = rt.now();
  return {
    ...ctx,
    ...out,
    writableAt,
    ...(ctx.blockedAt ? { writeBlockMs: writableAt - ctx.blockedAt } : {}),
  };
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
 * SwitchoverAborted (Catch target). Before promotion the old primary gets read_only=OFF back
 * (only when the candidate is verified still a read-only replica: never two writable nodes);
 * after promotion nothing is undone and an operator is alerted. The record ends as failed; the
 * anti-flap block is left as it was.
 */
export async function switchoverAborted(
  rt: Runtime,
  ctx: SwitchoverContext & { error?: { Error?: string; Cause?: string } },
): Promise<SwitchoverContext & { restored: boolean; abortReason: string }> {
  const c = rt.cluster(ctx.cluster);
  const error = parseCause(ctx.error);
  const now = rt.now();
  let restored = false;
  let reason: string;
  const logins = await rt.logins(c);
  const t = timeouts(c);
  if (ctx.promoted) {
    reason = `${ctx.candidate} was promoted already: nothing undone; finish by hand (status, rejoin)`;
  } else if (!ctx.phase) {
    reason = 'refused before any change';
  } else {
    let candidateSafe = false;
    try {
      const cand = node(c, ctx.candidate ?? '');
      candidateSafe = await onNode(cand.id, cand, logins.admin, t, 'SwitchoverAborted', async (s) => {
        const [ro] = await s.query<{ ro: number | string }>('SELECT @@read_only AS ro');
        return Number(ro?.ro) === 1 && (await readReplication(s)) !== undefined;
      });
    } catch {
      candidateSafe = false;
    }
    if (!candidateSafe) {
      reason = `cannot verify that ${ctx.candidate} is still a read-only replica: ${ctx.failedPrimary} stays read-only (operator needed)`;
    } else {
      try {
        const old = node(c, ctx.failedPrimary);
        await onNode(old.id, old, logins.admin, t, 'SwitchoverAborted', (s) =>
          s.execute('SET GLOBAL read_only = OFF'),
        );
        restored = true;
        reason = `${ctx.failedPrimary} is writable again; ${ctx.candidate} untouched`;
      } catch (err) {
        reason = `FAILED to restore writes on ${ctx.failedPrimary}: ${describeError(err, [logins.admin.password]).message}`;
      }
    }
  }
  if (typeof ctx.epoch === 'number' && error.name !== 'StaleEpochError') {
    const state = await rt.store.getClusterState(ctx.cluster);
    await rt.store
      .appendStep(ctx.cluster, ctx.epoch, {
        name: 'SwitchoverAborted',
        startedAt: now,
        endedAt: rt.now(),
        result: 'ok',
        detail: { restored, reason, error },
      })
      .catch(() => {});
    await rt.store.endFailover({
      cluster: ctx.cluster,
      epoch: ctx.epoch,
      status: 'failed',
      oldPrimary: ctx.failedPrimary,
      now: rt.now(),
      blockedUntil: state?.blockedUntil ?? 0,
      error,
    });
  }
  const refused = !ctx.phase && error.name === 'SwitchoverPreCheckFailedError';
  await rt.notifier.notify({
    cluster: ctx.cluster,
    severity: refused || restored ? 'warning' : 'critical',
    subject: `switchover ${refused ? 'refused' : 'ABORTED'}: ${error.name}`,
    message: `${error.message} ${reason}.`,
    data: { epoch: ctx.epoch, candidate: ctx.candidate, restored },
  });
  return { ...ctx, restored, abortReason: reason };
}

function parseCause(e: { Error?: string; Cause?: string } | undefined): { name: string; message: string } {
  if (!e) return { name: 'Unknown', message: 'no error information' };
  let message = e.Cause ?? '';
  try {
    const parsed = JSON.parse(message) as { errorMessage?: string; message?: string };
    message = parsed.errorMessage ?? parsed.message ?? message;
  } catch {
    // plain text
  }
  return { name: e.Error ?? 'Error', message: message.slice(0, 1500) };
}
