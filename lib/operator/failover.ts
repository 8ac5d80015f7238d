import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { probeNode } from '../adapters/mysql/probe.ts';
import type { ClusterConfig } from '../config/schema.ts';
import type { FailoverRequest } from '../failover/context.ts';
import type { FailoverRecord } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import { formatTable, OperatorRefusedError, requireNode, sleep } from './common.ts';
import { planFailover } from './plan.ts';

export interface ManualFailoverOptions {
  /** The node to promote; default: the one the election picks. */
  candidate?: string;
  /** Promote a candidate beyond failover.maxLagSeconds (acknowledged writes it lacks are lost). */
  ignoreLag?: boolean;
  /** Fail over inside the anti-flap block period of the last failover. */
  ignoreBlock?: boolean;
  /** Fail over although the primary answers and is writable (it is fenced and needs rejoin). */
  force?: boolean;
  /** How long the invoke waits for the execution to end (default 90 s). */
  waitSeconds?: number;
}

export interface ManualFailoverResult {
  report: string;
  cluster: string;
  /** succeeded; failed (the execution ended without success: see `error`); running (still running when the wait ended). */
  outcome: 'succeeded' | 'failed' | 'running';
  from: string;
  to?: string;
  epoch: number;
  incidentId: string;
  executionName: string;
  executionStatus: string;
  totalMs: number;
  steps: Array<{ name: string; result: string; ms: number; error?: string }>;
  error?: { name: string; message: string };
}

/**
 * The operator's failover: the failover state machine, started through the health check's own
 * starter (same naming, same epoch claim, same audit record) for an incident of its own. Refused,
 * with nothing changed, when the primary answers and is writable (that is a switchover, which
 * loses nothing) unless `force`; when the cluster is blocked (anti-flap) unless `ignoreBlock`; and
 * when the election, run as a dry run first, finds no candidate (or vetoes the named one): a
 * lagging one only with `ignoreLag`. Waits for the execution (bounded) and reports from the record.
 */
export async function runManualFailover(
  rt: Runtime,
  c: ClusterConfig,
  opts: ManualFailoverOptions = {},
): Promise<ManualFailoverResult> {
  const t0 = rt.now();
  const refuse = (why: string) =>
    new OperatorRefusedError(`Failover of ${c.name} refused: ${why} Nothing was changed.`, {
      cluster: c.name,
    });
  const state = await rt.store.getClusterState(c.name);
  if (!state) throw refuse('the cluster has no state yet (the health check has not probed it).');
  const from = state.primaryId;
  if (state.failoverInProgress) {
    throw refuse(`${state.failoverInProgress.executionName} is in progress; follow it with status.`);
  }
  if (opts.candidate !== undefined) {
    requireNode(c, opts.candidate);
    if (opts.candidate === from) throw refuse(`${opts.candidate} is the primary already.`);
    if (state.needsRejoin?.includes(opts.candidate)) {
      throw refuse(
        `${opts.candidate} is an old primary awaiting rejoin: rejoin it first (serverless invoke -f rejoin --data '{"cluster":"${c.name}","node":"${opts.candidate}"}').`,
      );
    }
  }
  const now = rt.now();
  if (state.blockedUntil !== undefined && state.blockedUntil > now && !opts.ignoreBlock) {
    throw refuse(
      `failover is blocked until ${new Date(state.blockedUntil).toISOString()} (anti-flapping after the last failover). Add "ignoreBlock": true to fail over anyway, or acknowledge the block first.`,
    );
  }
  const primary = requireNode(c, from);
  const logins = await rt.logins(c);
  const probe = await probeNode(
    {
      nodeId: from,
      host: primary.probeHost ?? primary.host,
      port: primary.probePort ?? primary.port,
      isPrimary: false,
    },
    logins.admin,
    { connectTimeoutMs: c.detection.connectTimeoutMs, queryTimeoutMs: c.detection.queryTimeoutMs },
  );
  const primaryHealthy = probe.reachable && probe.readOnly === false;
  if (primaryHealthy && !opts.force) {
    const cand = opts.candidate ? `,"candidate":"${opts.candidate}"` : '';
    throw refuse(
      `the primary ${from} answers and is writable. A manual failover of a live primary is a switchover, which blocks writes, waits for the candidate to catch up and loses nothing: serverless invoke -f switchover --data '{"cluster":"${c.name}"${cand}}'. To fail over anyway (${from} is fenced and needs rejoin; writes it acknowledged that the candidate lacks are lost), add "force": true.`,
    );
  }
  const plan = await planFailover(rt, c, opts.ignoreLag ? { ignoreLag: true } : {});
  const lagHint = (reason: string) =>
    /\blag\b|behind the primary/.test(reason) && !opts.ignoreLag
      ? ' Add "ignoreLag": true to promote it anyway (acknowledged writes it lacks are lost).'
      : '';
  if (opts.candidate) {
    const v = plan.verdicts.find((x) => x.nodeId === opts.candidate);
    if (!v?.eligible) {
      const reasons = v?.reasons.join('; ') ?? 'not probed';
      throw refuse(`${opts.candidate} cannot be promoted: ${reasons}.${lagHint(reasons)}`);
    }
  } else if (!plan.candidate) {
    const reason = plan.veto ?? 'no eligible replica';
    throw refuse(`no replica can be promoted: ${reason}.${lagHint(reason)}`);
  }

  const epoch = state.epoch + 1;
  const incidentId = `manual-${c.name}-${now}`;
  const request: FailoverRequest = {
    cluster: c.name,
    kind: 'failover',
    failedPrimary: from,
    expectedEpoch: state.epoch,
    incidentId,
    executionName: `${c.name}-failover-e${epoch}`,
    ...(opts.ignoreBlock ? { ignoreBlock: true } : {}),
    ...(opts.ignoreLag ? { ignoreLag: true } : {}),
    ...(opts.candidate ? { requestedCandidate: opts.candidate } : {}),
    reason: {
      requestedBy: 'operator',
      candidate: opts.candidate ?? 'elected',
      primaryAnswered: probe.reachable,
      ...(opts.force ? { force: true } : {}),
    },
  };
  const started = await rt.starter.start(request.executionName, request);
  if (started.alreadyStarted) {
    throw refuse(`${started.executionName} is running already; follow it with status.`);
  }
  rt.log({ level: 'warn', type: 'failover-started', ...request, executionName: started.executionName });

  const sfn = new SFNClient({});
  let status = 'RUNNING';
  try {
    const until = rt.now() + (opts.waitSeconds ?? 90) * 1000;
    for (;;) {
      const d = await sfn.send(new DescribeExecutionCommand({ executionArn: started.executionArn }));
      status = d.status ?? 'RUNNING';
      if (status !== 'RUNNING' || rt.now() > until) break;
      await sleep(200);
    }
  } finally {
    sfn.destroy();
  }
  const stored = await rt.store.getFailover(c.name, epoch);
  const record = stored?.incidentId === incidentId ? stored : undefined;
  return summarize(c.name, from, epoch, incidentId, started.executionName, status, record, rt.now() - t0);
}

function summarize(
  cluster: string,
  from: string,
  epoch: number,
  incidentId: string,
  executionName: string,
  status: string,
  record: FailoverRecord | undefined,
  totalMs: number,
): ManualFailoverResult {
  const steps = (record?.steps ?? []).map((s) => ({
    name: s.name,
    result: s.result,
    ms: s.endedAt - s.startedAt,
    ...(s.error ? { error: `${s.error.name}: ${s.error.message}` } : {}),
  }));
  const outcome: ManualFailoverResult['outcome'] =
    status === 'RUNNING' ? 'running' : record?.status === 'succeeded' ? 'succeeded' : 'failed';
  const to = record?.newPrimary;
  const error =
    record?.error ??
    (outcome === 'failed' && !record
      ? {
          name: 'NotClaimed',
          message: `execution ${executionName} ended ${status} before claiming the cluster`,
        }
      : undefined);
  const lines = [
    outcome === 'succeeded'
      ? `failover of ${cluster}: ${from} -> ${to} SUCCEEDED in ${totalMs} ms (epoch ${epoch}); ${from} needs rejoin`
      : outcome === 'running'
        ? `failover ${executionName} still RUNNING after the wait; follow it with status.`
        : `failover of ${cluster} FAILED (${status})${to ? `, ${to} was promoted and is the recorded primary` : ''}: ${error ? `${error.name}: ${error.message}` : ''}`,
  ];
  if (steps.length) {
    lines.push(
      ...formatTable(
        ['step', 'result', 'ms', 'error'],
        steps.map((s) => [s.name, s.result, String(s.ms), s.error ?? '']),
      ).map((l) => `  ${l}`),
    );
  }
  return {
    report: lines.join('\n'),
    cluster,
    outcome,
    from,
    ...(to ? { to } : {}),
    epoch,
    incidentId,
    executionName,
    executionStatus: status,
    totalMs,
    steps,
    ...(error ? { error } : {}),
  };
}
