/**
 * ECS API (Version 2014-05-26) actions of the emulator: the power actions STONITH uses
 * (StopInstance with ForceStop, DescribeInstanceStatus, DescribeInstances) and Cloud Assistant
 * (RunCommand, DescribeInvocationResults, DescribeInvocations). StopInstance moves a Running
 * instance to Stopping, then to Stopped after `stopMs` (`forceStopMs` with ForceStop=true) once
 * the model's powerOff hook has run. An invocation runs for `commandMs` per
 * instance (Running), then Finished (exit 0) or Failed; an instance that is not Running fails
 * it with ErrorCode InstanceNotRunning. Scripts are interpreted by guest-script.ts, never run.
 */
import { randomBytes } from 'node:crypto';
import { type GuestHost, runGuestScript, runGuestScriptOnHost, type ScriptResult } from './guest-script.ts';
import { AliyunApiError, type AliyunModel } from './model.ts';
import { IdempotencyCache, type RpcHandler, type RpcParams, requireParams } from './vpc-emulator.ts';

export const ECS_API_VERSION = '2014-05-26';

type RecordStatus = 'Pending' | 'Running' | 'Finished' | 'Failed' | 'Stopped';
type InstanceInvocationStatus =
  | 'Pending'
  | 'Running'
  | 'Success'
  | 'Failed'
  | 'Aborted'
  | 'Error'
  | 'Timeout';

interface InstanceRun {
  instanceId: string;
  recordStatus: RecordStatus;
  invocationStatus: InstanceInvocationStatus;
  exitCode: number | null;
  output: string;
  errorCode: string;
  errorInfo: string;
  startTime: string;
  finishedTime: string;
}

interface Invocation {
  invokeId: string;
  commandId: string;
  name: string;
  type: string;
  content: string;
  timeout: number;
  creationTime: string;
  runs: InstanceRun[];
}

export interface EcsEmulatorOptions {
  /** How long a command "runs" on an instance before its result is known. */
  commandMs?: number;
  /** How long StopInstance leaves an instance Stopping (default 2 x the model's transitionMs). */
  stopMs?: number;
  /** The same with ForceStop=true (default the model's transitionMs). */
  forceStopMs?: number;
  /** Really run the scripts on the instances' hosts (network-namespace mode) instead of modelling them. */
  guestHost?: GuestHost;
}

const iso = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const randomId = (prefix: string) => `${prefix}-${randomBytes(8).toString('hex').slice(0, 14)}`;

function overallStatus(runs: readonly InstanceRun[]): string {
  if (runs.some((r) => r.recordStatus === 'Pending')) return 'Pending';
  if (runs.some((r) => r.recordStatus === 'Running')) return 'Running';
  const failed = runs.filter((r) => r.recordStatus === 'Failed').length;
  if (failed === 0) return 'Success';
  return failed === runs.length ? 'Failed' : 'PartialFailed';
}

/** The older InvokeStatus field (Running / Finished / Failed / PartialFinished). */
function legacyInvokeStatus(runs: readonly InstanceRun[]): string {
  const s = overallStatus(runs);
  return s === 'Success'
    ? 'Finished'
    : s === 'PartialFailed'
      ? 'PartialFinished'
      : s === 'Pending'
        ? 'Running'
        : s;
}

function encodeOutput(text: string, params: RpcParams): string {
  return (params.ContentEncoding ?? 'Base64').toLowerCase() === 'plaintext'
    ? text
    : Buffer.from(text).toString('base64');
}

/** Builds the Cloud Assistant action table over a model. */
export function createEcsHandlers(
  model: AliyunModel,
  opts: EcsEmulatorOptions = {},
): Record<string, RpcHandler> {
  const commandMs = opts.commandMs ?? model.transitionMs;
  const stopMs = opts.stopMs ?? model.transitionMs * 2;
  const forceStopMs = opts.forceStopMs ?? model.transitionMs;
  const invocations = new Map<string, Invocation>();
  const idem = new IdempotencyCache();
  const stopping = new Map<string, symbol>();

  const requireRegion = (params: RpcParams) => {
    requireParams(params, 'RegionId');
    if (params.RegionId !== model.regionId) {
      throw new AliyunApiError(404, 'InvalidRegionId.NotFound', 'The specified RegionId does not exist.');
    }
  };
  const finishStop = async (instanceId: string, token: symbol) => {
    try {
      await model.powerOff?.(instanceId);
    } catch {
      // The hypervisor stops the instance whatever its guest does.
    }
    if (stopping.get(instanceId) !== token) return;
    stopping.delete(instanceId);
    if (model.instances.get(instanceId)?.status === 'Stopping')
      model.setInstanceStatus(instanceId, 'Stopped');
  };
  const page = <T>(rows: T[], params: RpcParams) => {
    const pageSize = Math.min(100, Math.max(1, Number(params.PageSize ?? 10) || 10));
    const pageNumber = Math.max(1, Number(params.PageNumber ?? 1) || 1);
    return {
      rows: rows.slice((pageNumber - 1) * pageSize, pageNumber * pageSize),
      meta: { TotalCount: rows.length, PageNumber: pageNumber, PageSize: pageSize },
    };
  };

  const execute = (run: InstanceRun, inv: Invocation) => {
    const inst = model.instances.get(run.instanceId);
    run.finishedTime = iso();
    if (inst?.status !== 'Running') {
      Object.assign(run, {
        recordStatus: 'Failed',
        invocationStatus: 'Aborted',
        errorCode: 'InstanceNotRunning',
        errorInfo: 'the specified instance is not running.',
      });
      return;
    }
    const guestHost = opts.guestHost;
    if (guestHost !== undefined) {
      // Still Running until the real commands have finished on the host.
      run.finishedTime = '';
      void runGuestScriptOnHost(model, run.instanceId, inv.content, guestHost)
        .catch((err: Error): ScriptResult => ({ exitCode: 1, output: err.message }))
        .then((result) => {
          run.finishedTime = iso();
          applyResult(run, result);
        });
      return;
    }
    applyResult(run, runGuestScript(model, run.instanceId, inv.content));
  };

  const applyResult = (run: InstanceRun, result: ScriptResult) => {
    run.exitCode = result.exitCode;
    run.output = result.output;
    if (result.exitCode === 0) {
      Object.assign(run, { recordStatus: 'Finished', invocationStatus: 'Success' });
    } else {
      Object.assign(run, {
        recordStatus: 'Failed',
        invocationStatus: 'Failed',
        errorCode: 'ExitCodeNonzero',
        errorInfo: `the command exited with code ${result.exitCode}`,
      });
    }
  };

  const selectRuns = (params: RpcParams) => {
    const rows: { inv: Invocation; run: InstanceRun }[] = [];
    for (const inv of invocations.values()) {
      if (params.InvokeId && inv.invokeId !== params.InvokeId) continue;
      for (const run of inv.runs) {
        if (params.InstanceId && run.instanceId !== params.InstanceId) continue;
        if (params.InvokeRecordStatus && run.recordStatus !== params.InvokeRecordStatus) continue;
        rows.push({ inv, run });
      }
    }
    return rows;
  };

  return {
    StopInstance: (params, { requestId }) => {
      requireParams(params, 'InstanceId');
      const inst = model.instances.get(params.InstanceId!);
      if (!inst) {
        throw new AliyunApiError(
          404,
          'InvalidInstanceId.NotFound',
          'The specified InstanceId does not exist.',
        );
      }
      const force = (params.ForceStop ?? 'false').toLowerCase() === 'true';
      // ECS refuses to stop an instance that is not Running (also one already Stopped).
      if (inst.status !== 'Running' && !(inst.status === 'Stopping' && force)) {
        throw new AliyunApiError(
          403,
          'IncorrectInstanceStatus',
          'The current status of the resource does not support this operation.',
        );
      }
      if ((params.DryRun ?? 'false').toLowerCase() === 'true') {
        throw new AliyunApiError(
          400,
          'DryRunOperation',
          'Request validation has been passed with DryRun flag set.',
        );
      }
      if (inst.status === 'Running') model.setInstanceStatus(inst.instanceId, 'Stopping');
      const token = Symbol('stop');
      stopping.set(inst.instanceId, token);
      model.later(() => void finishStop(inst.instanceId, token), force ? forceStopMs : stopMs);
      return { RequestId: requestId };
    },

    DescribeInstanceStatus: (params, { requestId }) => {
      requireRegion(params);
      const ids: string[] = [];
      for (let n = 1; n <= 100; n++) {
        const id = params[`InstanceId.${n}`];
        if (id) ids.push(id);
      }
      const all = [...model.instances.values()].filter((i) => ids.length === 0 || ids.includes(i.instanceId));
      const { rows, meta } = page(all, params);
      return {
        RequestId: requestId,
        ...meta,
        InstanceStatuses: {
          InstanceStatus: rows.map((i) => ({ InstanceId: i.instanceId, Status: i.status })),
        },
      };
    },

    DescribeInstances: (params, { requestId }) => {
      requireRegion(params);
      let ids: string[] | undefined;
      if (params.InstanceIds) {
        try {
          const parsed: unknown = JSON.parse(params.InstanceIds);
          if (!Array.isArray(parsed) || parsed.some((x) => typeof x !== 'string')) throw new Error('shape');
          ids = parsed as string[];
        } catch {
          throw new AliyunApiError(
            400,
            'InvalidInstanceIds.Malformed',
            'The specified parameter InstanceIds is not valid.',
          );
        }
      }
      const all = [...model.instances.values()].filter(
        (i) => (!ids || ids.includes(i.instanceId)) && (!params.Status || i.status === params.Status),
      );
      const { rows, meta } = page(all, params);
      return {
        RequestId: requestId,
        ...meta,
        Instances: {
          Instance: rows.map((i) => {
            const vs = model.vSwitches.get(i.vSwitchId);
            return {
              InstanceId: i.instanceId,
              Status: i.status,
              RegionId: model.regionId,
              ZoneId: vs?.zoneId ?? '',
              InstanceNetworkType: 'vpc',
              StoppedMode: i.status === 'Stopped' ? 'KeepCharging' : 'Not-applicable',
              VpcAttributes: {
                VpcId: vs?.vpcId ?? '',
                VSwitchId: i.vSwitchId,
                PrivateIpAddress: { IpAddress: [i.privateIpAddress] },
              },
            };
          }),
        },
      };
    },

    RunCommand: (params, { requestId }) => {
      requireParams(params, 'RegionId', 'Type', 'CommandContent');
      return idem.run('RunCommand', params, () => {
        if (params.RegionId !== model.regionId) {
          throw new AliyunApiError(404, 'InvalidRegionId.NotFound', 'The specified RegionId does not exist.');
        }
        if (params.Type !== 'RunShellScript') {
          throw new AliyunApiError(
            400,
            'InvalidCommandType.NotSupported',
            'The emulator only supports RunShellScript.',
          );
        }
        const instanceIds: string[] = [];
        for (let n = 1; n <= 100; n++) {
          const id = params[`InstanceId.${n}`];
          if (id) instanceIds.push(id);
        }
        if (instanceIds.length === 0) requireParams(params, 'InstanceId');
        for (const id of instanceIds) {
          if (!model.instances.has(id)) {
            throw new AliyunApiError(
              404,
              'InvalidInstance.NotFound',
              'The specified instance does not exist.',
            );
          }
        }
        const encoding = (params.ContentEncoding ?? 'PlainText').toLowerCase();
        const content =
          encoding === 'base64'
            ? Buffer.from(params.CommandContent!, 'base64').toString('utf8')
            : params.CommandContent!;
        const inv: Invocation = {
          invokeId: randomId('t'),
          commandId: randomId('c'),
          name: params.Name ?? '',
          type: params.Type,
          content,
          timeout: Number(params.Timeout ?? 60),
          creationTime: iso(),
          runs: instanceIds.map((instanceId) => ({
            instanceId,
            recordStatus: 'Running',
            invocationStatus: 'Running',
            exitCode: null,
            output: '',
            errorCode: '',
            errorInfo: '',
            startTime: iso(),
            finishedTime: '',
          })),
        };
        invocations.set(inv.invokeId, inv);
        for (const run of inv.runs) model.later(() => execute(run, inv), commandMs);
        return { RequestId: requestId, CommandId: inv.commandId, InvokeId: inv.invokeId };
      });
    },

    DescribeInvocationResults: (params, { requestId }) => {
      requireParams(params, 'RegionId');
      const rows = params.RegionId === model.regionId ? selectRuns(params) : [];
      return {
        RequestId: requestId,
        Invocation: {
          PageSize: Math.max(rows.length, 10),
          PageNumber: 1,
          TotalCount: rows.length,
          InvocationResults: {
            InvocationResult: rows.map(({ inv, run }) => ({
              CommandId: inv.commandId,
              InvokeId: inv.invokeId,
              InstanceId: run.instanceId,
              InvokeRecordStatus: run.recordStatus,
              InvocationStatus: run.invocationStatus,
              ExitCode: run.exitCode,
              Output: encodeOutput(run.output, params),
              ErrorCode: run.errorCode,
              ErrorInfo: run.errorInfo,
              StartTime: run.startTime,
              FinishedTime: run.finishedTime,
              Repeats: 1,
              Dropped: 0,
            })),
          },
        },
      };
    },

    DescribeInvocations: (params, { requestId }) => {
      requireParams(params, 'RegionId');
      const invs = [...invocations.values()].filter(
        (inv) =>
          params.RegionId === model.regionId &&
          (!params.InvokeId || inv.invokeId === params.InvokeId) &&
          (!params.InstanceId || inv.runs.some((r) => r.instanceId === params.InstanceId)),
      );
      const includeOutput = (params.IncludeOutput ?? 'false').toLowerCase() === 'true';
      return {
        RequestId: requestId,
        PageSize: Math.max(invs.length, 10),
        PageNumber: 1,
        TotalCount: invs.length,
        Invocations: {
          Invocation: invs.map((inv) => ({
            InvokeId: inv.invokeId,
            CommandId: inv.commandId,
            CommandName: inv.name,
            CommandType: inv.type,
            CommandContent: encodeOutput(inv.content, params),
            Timeout: inv.timeout,
            CreationTime: inv.creationTime,
            InvocationStatus: overallStatus(inv.runs),
            InvokeStatus: legacyInvokeStatus(inv.runs),
            InvokeInstances: {
              InvokeInstance: inv.runs.map((run) => ({
                InstanceId: run.instanceId,
                InvocationStatus: run.invocationStatus,
                InstanceInvokeStatus: run.recordStatus,
                ExitCode: run.exitCode,
                Output: includeOutput ? encodeOutput(run.output, params) : '',
                ErrorCode: run.errorCode,
                ErrorInfo: run.errorInfo,
                StartTime: run.startTime,
                FinishTime: run.finishedTime,
              })),
            },
          })),
        },
      };
    },
  };
}
