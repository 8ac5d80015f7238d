import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { ClusterConfig } from '../config/schema.ts';
import { ConfigError } from '../errors.ts';
import type { FailoverRecord } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import { formatTable, OperatorRefusedError, requireNode, sleep } from './common.ts';
import {
  DEFAULT_SWITCHOVER_LIMITS,
  type SwitchoverLimits,
  type SwitchoverRequest,
} from './switchover-steps.ts';

export interface SwitchoverOptions {
  candidate?: string;
  limits?: Partial<SwitchoverLimits>;
  /** How long the invoke waits for the execution to end (default 90 s). */
  waitSeconds?: number;
}

export interface SwitchoverResult {
  report: string;
  cluster: string;
  /**
   * succeeded; refused (a pre-check failed, nothing changed); aborted (failed before promotion,
   * the old primary's writes restored or not: see `restored`); failed (after promotion: operator
   * needed); running (still running when the wait ended).
   */
  outcome: 'succeeded' | 'refused' | 'aborted' | 'failed' | 'running';
  from: string;
  to?: string;
  epoch?: number;
  executionName: string;
  executionStatus: string;
  /**
   * From the earlier of read_only=ON on the old primary and the VIP leaving it, to the later of
   * the new primary accepting commits and the VIP verified on it.
   */
  writeBlockMs?: number;
  totalMs: number;
  steps: Array<{ name: string; result: string; ms: number; error?: string }>;
  preChecks?: Array<{ check: string; ok: boolean; detail: string }>;
  restored?: boolean;
  /** Aborted: the VIP was moved back to the old primary (verified). */
  vipMovedBack?: boolean;
  error?: { name: string; message: string };
  oldPrimaryReplicating?: boolean;
}

/**
 * A planned change of primary, run by the switchover state machine (epoch claim, audit record,
 * notifications as for a failover). Starts the execution `<cluster>-switchover-e<epoch+1>`,
 * waits for it (polling DescribeExecution, bounded) and reports from the failover record.
 */
export async function runSwitchover(
  rt: Runtime,
  c: ClusterConfig,
  opts: SwitchoverOptions = {},
): Promise<SwitchoverResult> {
  const t0 = rt.now();
  const state = await rt.store.getClusterState(c.name);
  if (!state) {
    throw new OperatorRefusedError(
      `Cluster ${c.name} has no state yet (the health check has not probed it): switchover refused, nothing changed.`,
      { cluster: c.name },
    );
  }
  const from = state.primaryId;
  if (opts.candidate !== undefined) {
    requireNode(c, opts.candidate);
    if (opts.candidate === from) {
      throw new OperatorRefusedError(
        `${opts.candidate} is already the primary of ${c.name}: nothing to do.`,
        {
          cluster: c.name,
        },
      );
    }
  }
  if (state.failoverInProgress) {
    throw new OperatorRefusedError(
      `${state.failoverInProgress.executionName} is in progress on ${c.name}: switchover refused, nothing changed.`,
      { cluster: c.name },
    );
  }
  const arn = process.env.SWITCHOVER_STATE_MACHINE_ARN;
  if (!arn)
    throw new ConfigError(
      'SWITCHOVER_STATE_MACHINE_ARN is not set: the switchover state machine is unknown.',
    );
  const epoch = state.epoch + 1;
  const executionName = `${c.name}-switchover-e${epoch}`;
  const incidentId = `switchover-${c.name}-${t0}`;
  const request: SwitchoverRequest = {
    cluster: c.name,
    kind: 'switchover',
    failedPrimary: from,
    expectedEpoch: state.epoch,
    incidentId,
    executionName,
    ignoreBlock: true,
    limits: { ...DEFAULT_SWITCHOVER_LIMITS, ...opts.limits },
    ...(opts.candidate ? { requestedCandidate: opts.candidate } : {}),
    reason: { requestedBy: 'operator', candidate: opts.candidate ?? 'elected' },
  };
  const sfn = new SFNClient({});
  let status = 'RUNNING';
  let output: Record<string, unknown> | undefined;
  try {
    const started = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: arn,
        name: executionName,
        input: JSON.stringify(request),
      }),
    );
    const until = rt.now() + (opts.waitSeconds ?? 90) * 1000;
    for (;;) {
      const d = await sfn.send(new DescribeExecutionCommand({ executionArn: started.executionArn }));
      status = d.status ?? 'RUNNING';
      if (status !== 'RUNNING') {
        if (d.output) output = JSON.parse(d.output) as Record<string, unknown>;
        break;
      }
      if (rt.now() > until) break;
      await sleep(100);
    }
  } finally {
    sfn.destroy();
  }

  const record = await rt.store.getFailover(c.name, epoch);
  const ours = record?.incidentId === incidentId ? record : undefined;
  return summarize(c.name, from, executionName, status, ours, output, rt.now() - t0);
}

function summarize(
  cluster: string,
  from: string,
  executionName: string,
  status: string,
  record: FailoverRecord | undefined,
  output: Record<string, unknown> | undefined,
  totalMs: number,
): SwitchoverResult {
  const steps = (record?.steps ?? []).map((s) => ({
    name: s.name,
    result: s.result,
    ms: s.endedAt - s.startedAt,
    ...(s.error ? { error: `${s.error.name}: ${s.error.message}` } : {}),
  }));
  const find = (name: string) => record?.steps.find((s) => s.name === name);
  const pre = find('SwitchoverPreCheck');
  const preChecks = ((pre?.detail ?? find('SwitchoverPreCheckResult')?.detail)?.checks ??
    undefined) as SwitchoverResult['preChecks'];
  const joined = find('SwitchoverJoin')?.detail?.writeBlockMs;
  const writeBlockMs =
    typeof output?.writeBlockMs === 'number'
      ? output.writeBlockMs
      : typeof joined === 'number'
        ? joined
        : undefined;
  const aborted = find('SwitchoverAborted');
  const restored = aborted ? aborted.detail?.restored === true : undefined;
  const vipMovedBack = aborted ? aborted.detail?.vipMovedBack === true : undefined;
  const oldPrimaryReplicating = find('ReplicateOldPrimary')?.detail?.rejoined === true;
  const error = record?.error ?? (pre?.error ? pre.error : undefined);
  let outcome: SwitchoverResult['outcome'];
  if (status === 'RUNNING') outcome = 'running';
  else if (status === 'SUCCEEDED' && record?.status === 'succeeded') outcome = 'succeeded';
  else if (pre?.result === 'error' || !record) outcome = 'refused';
  else if (find('PromoteCandidate')?.result === 'ok') outcome = 'failed';
  else outcome = 'aborted';
  const to = record?.newPrimary ?? (typeof output?.candidate === 'string' ? output.candidate : undefined);

  const lines: string[] = [];
  if (outcome === 'succeeded') {
    lines.push(
      `switchover of ${cluster}: ${from} -> ${to} SUCCEEDED in ${totalMs} ms; write block ${writeBlockMs ?? '?'} ms (VIP off or read_only on ${from} -> ${to} writable through the VIP)`,
      `${from} ${oldPrimaryReplicating ? `now replicates from ${to}` : 'could NOT be made a replica: run rejoin'}`,
    );
  } else if (outcome === 'refused') {
    lines.push(
      `switchover of ${cluster} REFUSED, nothing was changed (${from} is still the writable primary):`,
    );
    if (preChecks) for (const p of preChecks.filter((x) => !x.ok)) lines.push(`  x ${p.check}: ${p.detail}`);
    else if (error) lines.push(`  ${error.name}: ${error.message}`);
    else
      lines.push(
        `  execution ${executionName} ${status} before claiming the cluster (another failover or switchover got there first?)`,
      );
  } else if (outcome === 'aborted') {
    lines.push(
      `switchover of ${cluster} ABORTED before promotion: ${error ? `${error.name}: ${error.message}` : status}`,
      `  ${String(aborted?.detail?.reason ?? '')}`,
    );
  } else if (outcome === 'failed') {
    lines.push(
      `switchover of ${cluster} FAILED after promoting ${to ?? '?'}: ${error ? `${error.name}: ${error.message}` : status}. Operator needed: check status.`,
    );
  } else {
    lines.push(`switchover ${executionName} still RUNNING after the wait; follow it with status.`);
  }
  if (preChecks && outcome !== 'refused')
    lines.push(`pre-checks: ${preChecks.map((p) => `${p.ok ? '✓' : 'x'} ${p.check}`).join(', ')}`);
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
    ...(to && outcome !== 'refused' && outcome !== 'aborted' ? { to } : {}),
    ...(record ? { epoch: record.epoch } : {}),
    executionName,
    executionStatus: status,
    ...(writeBlockMs !== undefined ? { writeBlockMs } : {}),
    totalMs,
    steps,
    ...(preChecks ? { preChecks } : {}),
    ...(restored !== undefined ? { restored } : {}),
    ...(vipMovedBack !== undefined ? { vipMovedBack } : {}),
    ...(error ? { error } : {}),
    ...(outcome === 'succeeded' ? { oldPrimaryReplicating } : {}),
  };
}
