/**
 * VipMover for Alibaba Cloud HaVip (provider `aliyun-havip`), over the real @alicloud/pop-core.
 *
 * Moving an HaVip has two halves: the API association (AssociateHaVip) and the new holder's OS
 * configuring the address and announcing it with a gratuitous ARP, which is what makes the VPC
 * name it MasterInstanceId and deliver traffic to it. A move is verified by MasterInstanceId,
 * never by the association alone.
 *
 *   DescribeHaVips ──(target is master & InUse)──> alreadyThere
 *        │
 *        ├─ old master believed dead ──> UnassociateHaVip(Force=true) ──> wait until detached
 *        ├─ no free association slot ─> UnassociateHaVip(a non-master, Force=false)
 *        ├─ target not associated ────> AssociateHaVip(ClientToken) ──> wait until InUse
 *        ├─ guest step (Cloud Assistant RunCommand: ip addr add + arping -U) ──> wait Finished
 *        └─ DescribeHaVips until MasterInstanceId == target ──> verified, or VipNotVerifiedError
 *
 * Every API call retries throttling, 5xx and in-transit states with backoff and full jitter
 * within the caller's deadline. Nothing a pop-core error carries (its message holds the signed
 * URL) leaves the adapter except the error code and a redacted message.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  ConfigError,
  type FailoverError,
  ProviderThrottledError,
  ProviderTransientError,
  VipMoveFailedError,
  VipNotVerifiedError,
} from '../../errors.ts';
import type { VipMoveOptions, VipMoveResult, VipMover } from '../../ports.ts';
import { AliyunCallError, AliyunRpc, type RpcRequester } from './aliyun-client.ts';
import { retryWithin, sleep } from './retry.ts';

/** The least time a verification read needs to be worth starting. */
const MIN_POLL_MS = 50;

export const VPC_API_VERSION = '2016-04-28';
export const ECS_API_VERSION = '2014-05-26';

/**
 * How the new holder's OS gets the address and announces it.
 * - 'cloud-assistant' (default): the adapter runs buildVipTakeoverScript on the new holder through
 *   ECS Cloud Assistant (RunCommand). It is the default because without an announcement the VPC
 *   never makes the new holder MASTER: with a live old master it stays master, with a dead one the
 *   HaVip has no master at all, and the move could only end in VipNotVerifiedError.
 * - 'preconfigured': something on the hosts (keepalived, an agent) announces on its own; the adapter
 *   only associates and then waits for MasterInstanceId to show the target.
 */
export type GuestStep = 'cloud-assistant' | 'preconfigured';

export interface AliyunLogEntry {
  level: 'debug' | 'info' | 'warn';
  msg: string;
  [key: string]: unknown;
}

export interface AliyunHaVipVipMoverOptions {
  /** The HaVip's IPv4 address. */
  address: string;
  haVipId: string;
  regionId: string;
  /** nodeId -> ECS instance id. */
  nodes: Record<string, string>;
  accessKeyId: string;
  accessKeySecret: string;
  /** VPC endpoint; default https://vpc.<regionId>.aliyuncs.com. */
  endpoint?: string;
  /** ECS endpoint (Cloud Assistant); default https://ecs.<regionId>.aliyuncs.com. */
  ecsEndpoint?: string;
  guestStep?: GuestStep;
  /** Longest wait for each asynchronous phase (InUse, command result, MasterInstanceId). Default 15000. */
  verifyTimeoutMs?: number;
  /** Bound of one HTTP call (connect + read). Default 5000. */
  requestTimeoutMs?: number;
  /** Pause between DescribeHaVips / DescribeInvocationResults polls. Default 250. */
  pollIntervalMs?: number;
  /** Backoff of retried calls. Defaults 100 / 2000 ms. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** NIC the address is configured on. Default eth0. */
  guestDevice?: string;
  /** Prefix length of the configured address. Default 32 (keepalived's default for a bare address). */
  prefixLength?: number;
  /** ECS instances one HaVip can be associated with (2 in the English API reference). */
  maxInstancesPerHaVip?: number;
  /** Ready clients (tests); otherwise pop-core RPCClients are built. */
  vpcClient?: RpcRequester;
  ecsClient?: RpcRequester;
  /** Receives redacted entries only. */
  log?: (entry: AliyunLogEntry) => void;
}

interface HaVipView {
  status: string;
  master: string | undefined;
  associated: string[];
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const DEVICE_RE = /^[A-Za-z0-9_.:-]{1,15}$/;
const TERMINAL_RECORD = new Set(['Finished', 'Failed', 'Stopped', 'PartialFailed']);

/**
 * The script the new holder runs (through Cloud Assistant) to take the address over: configure it
 * if absent, then announce it with unsolicited ARP. arping exits 1 when no reply came back, which
 * is normal for an announcement, and 2 on a real error. Inputs are validated: the script is shell.
 */
export function buildVipTakeoverScript(opts: {
  address: string;
  device?: string;
  prefixLength?: number;
}): string {
  const { address, device, prefix } = validateGuestInputs(opts);
  return [
    '#!/bin/sh',
    '# serverless-mysql-failover vip-takeover v1',
    'set -eu',
    `ip -4 addr show dev ${device} | grep -qF ' ${address}/' || ip addr add ${address}/${prefix} dev ${device}`,
    `arping -q -U -c 3 -I ${device} ${address} || [ $? -eq 1 ]`,
    '',
  ].join('\n');
}

/** The script a live old holder runs so the address is not up on two hosts after a switchover. */
export function buildVipReleaseScript(opts: {
  address: string;
  device?: string;
  prefixLength?: number;
}): string {
  const { address, device, prefix } = validateGuestInputs(opts);
  return [
    '#!/bin/sh',
    '# serverless-mysql-failover vip-release v1',
    'set -eu',
    `ip addr del ${address}/${prefix} dev ${device} 2>/dev/null || true`,
    '',
  ].join('\n');
}

function validateGuestInputs(opts: { address: string; device?: string; prefixLength?: number }) {
  const device = opts.device ?? 'eth0';
  const prefix = opts.prefixLength ?? 32;
  if (!IPV4_RE.test(opts.address))
    throw new ConfigError(`Invalid VIP address ${JSON.stringify(opts.address)}`);
  if (!DEVICE_RE.test(device)) throw new ConfigError(`Invalid guest device ${JSON.stringify(device)}`);
  if (!Number.isInteger(prefix) || prefix < 1 || prefix > 32)
    throw new ConfigError(`Invalid prefix length ${prefix}`);
  return { address: opts.address, device, prefix };
}

/** Moves an Alibaba HaVip between ECS instances and verifies the move by MasterInstanceId. */
export class AliyunHaVipVipMover implements VipMover {
  readonly provider = 'aliyun-havip';
  readonly address: string;
  readonly #o: Required<
    Pick<
      AliyunHaVipVipMoverOptions,
      | 'haVipId'
      | 'regionId'
      | 'guestStep'
      | 'verifyTimeoutMs'
      | 'requestTimeoutMs'
      | 'pollIntervalMs'
      | 'retryBaseMs'
      | 'retryMaxMs'
      | 'guestDevice'
      | 'prefixLength'
      | 'maxInstancesPerHaVip'
    >
  >;
  readonly #nodes: Record<string, string>;
  readonly #vpc: AliyunRpc;
  readonly #ecs: AliyunRpc;
  readonly #log: (entry: AliyunLogEntry) => void;
  #apiCalls = 0;

  constructor(opts: AliyunHaVipVipMoverOptions) {
    validateGuestInputs({
      address: opts.address,
      ...(opts.guestDevice === undefined ? {} : { device: opts.guestDevice }),
      ...(opts.prefixLength === undefined ? {} : { prefixLength: opts.prefixLength }),
    });
    if (!opts.accessKeyId || !opts.accessKeySecret)
      throw new ConfigError('aliyun-havip needs an AccessKey pair');
    if (Object.keys(opts.nodes).length === 0)
      throw new ConfigError('aliyun-havip needs at least one node with an instance id');
    this.address = opts.address;
    this.#nodes = { ...opts.nodes };
    this.#o = {
      haVipId: opts.haVipId,
      regionId: opts.regionId,
      guestStep: opts.guestStep ?? 'cloud-assistant',
      verifyTimeoutMs: opts.verifyTimeoutMs ?? 15_000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 5000,
      pollIntervalMs: opts.pollIntervalMs ?? 250,
      retryBaseMs: opts.retryBaseMs ?? 100,
      retryMaxMs: opts.retryMaxMs ?? 2000,
      guestDevice: opts.guestDevice ?? 'eth0',
      prefixLength: opts.prefixLength ?? 32,
      maxInstancesPerHaVip: opts.maxInstancesPerHaVip ?? 2,
    };
    const creds = { accessKeyId: opts.accessKeyId, accessKeySecret: opts.accessKeySecret };
    this.#vpc = new AliyunRpc({
      ...creds,
      endpoint: opts.endpoint ?? `https://vpc.${opts.regionId}.aliyuncs.com`,
      apiVersion: VPC_API_VERSION,
      ...(opts.vpcClient ? { client: opts.vpcClient } : {}),
    });
    this.#ecs = new AliyunRpc({
      ...creds,
      endpoint: opts.ecsEndpoint ?? `https://ecs.${opts.regionId}.aliyuncs.com`,
      apiVersion: ECS_API_VERSION,
      ...(opts.ecsClient ? { client: opts.ecsClient } : {}),
    });
    const sink = opts.log;
    // Entries are redacted here once more, so a future field cannot leak a credential.
    this.#log = sink
      ? (entry) => sink(JSON.parse(this.#vpc.redact(JSON.stringify(entry))) as AliyunLogEntry)
      : () => {};
  }

  /** The node whose instance DescribeHaVips names MasterInstanceId, or undefined. */
  async currentHolder(): Promise<string | undefined> {
    const deadline = Date.now() + this.#o.verifyTimeoutMs;
    const view = await this.#describe(deadline, 'DescribeHaVips', undefined);
    return view.master ? this.#nodeOf(view.master) : undefined;
  }

  async moveTo(nodeId: string, options: VipMoveOptions): Promise<VipMoveResult> {
    const started = Date.now();
    const callsBefore = this.#apiCalls;
    const target = this.#nodes[nodeId];
    if (!target)
      throw new ConfigError(`Node ${nodeId} has no ECS instance id in the aliyun-havip VIP config`);
    const { deadline } = options;
    const oldInstance = options.fromNodeId ? this.#nodes[options.fromNodeId] : undefined;
    const result = (alreadyThere: boolean): VipMoveResult => ({
      provider: this.provider,
      address: this.address,
      holder: nodeId,
      alreadyThere,
      apiCalls: this.#apiCalls - callsBefore,
      ms: Date.now() - started,
    });

    let view = await this.#describe(deadline, 'DescribeHaVips', target);
    if (view.master === target && view.status === 'InUse') {
      this.#log({
        level: 'info',
        msg: 'HaVip already on target',
        haVipId: this.#o.haVipId,
        instanceId: target,
      });
      return result(true);
    }
    view = await this.#waitForStable(view, deadline, target);
    if (view.master === target && view.status === 'InUse') return result(true);

    // A dead master keeps MasterInstanceId until it is detached, and only Force detaches a master.
    const deadMaster =
      options.oldHolderDead &&
      view.master &&
      view.master !== target &&
      (!oldInstance || oldInstance === view.master)
        ? view.master
        : undefined;
    // With a free association slot the new holder is associated and announced first, and the
    // dead master is detached afterwards, off the write path: the data path follows
    // MasterInstanceId, so the Unassociating transition (seconds) no longer delays the first
    // write. Without a free slot the dead master must go first (Force: it is still MASTER).
    const slotFree =
      view.associated.includes(target) || view.associated.length < this.#o.maxInstancesPerHaVip;
    if (deadMaster && !slotFree) {
      await this.#unassociate(deadMaster, true, deadline, target, options.clientToken);
      view = await this.#waitFor(deadline, target, (v) => !v.associated.includes(deadMaster) && isStable(v));
    }

    if (!view.associated.includes(target) && view.associated.length >= this.#o.maxInstancesPerHaVip) {
      const victim = view.associated.find((i) => i !== target && i !== view.master);
      if (!victim) {
        throw this.#failed(
          'AssociateHaVip',
          target,
          'CountLimitExceeded.HaVipOnECSInstance',
          'no association slot can be freed without detaching the live master',
        );
      }
      await this.#unassociate(victim, false, deadline, target, options.clientToken);
      view = await this.#waitFor(deadline, target, (v) => !v.associated.includes(victim) && isStable(v));
    }

    if (!view.associated.includes(target)) {
      await this.#call(
        this.#vpc,
        'AssociateHaVip',
        {
          RegionId: this.#o.regionId,
          HaVipId: this.#o.haVipId,
          InstanceId: target,
          InstanceType: 'EcsInstance',
          ClientToken: deriveToken(options.clientToken, 'AssociateHaVip', target),
        },
        deadline,
        target,
      );
      view = await this.#waitFor(
        deadline,
        target,
        (v) => v.associated.includes(target) && v.status === 'InUse',
      );
    }

    if (this.#o.guestStep === 'cloud-assistant') {
      const release =
        oldInstance && oldInstance !== target && !options.oldHolderDead
          ? this.#runGuest(oldInstance, buildVipReleaseScript(this.#scriptOpts()), deadline, 'release').catch(
              (err: unknown) => {
                // Best effort: the old holder losing the address is hygiene, the new one gaining it is the move.
                this.#log({
                  level: 'warn',
                  msg: 'releasing the VIP on the old holder failed',
                  instanceId: oldInstance,
                  error: describe(err),
                });
              },
            )
          : Promise.resolve();
      await this.#runGuest(target, buildVipTakeoverScript(this.#scriptOpts()), deadline, 'takeover');
      await release;
    }

    const isMaster = (v: HaVipView) => v.master === target && v.status === 'InUse';
    if (this.#o.guestStep === 'cloud-assistant') {
      // One re-drive: an announcement the fabric missed is re-sent at half the budget rather than
      // ending the failover (VipNotVerifiedError is terminal for the state machine).
      const phaseEnd = Math.min(deadline, Date.now() + this.#o.verifyTimeoutMs);
      const half = Date.now() + Math.floor((phaseEnd - Date.now()) / 2);
      try {
        await this.#waitFor(half, target, isMaster);
      } catch (err) {
        if (!(err instanceof VipNotVerifiedError) || Date.now() + this.#o.pollIntervalMs >= phaseEnd)
          throw err;
        this.#log({
          level: 'warn',
          msg: 'new holder not MASTER yet: announcing once more',
          haVipId: this.#o.haVipId,
          instanceId: target,
        });
        await this.#runGuest(target, buildVipTakeoverScript(this.#scriptOpts()), deadline, 'takeover');
        await this.#waitFor(phaseEnd, target, isMaster);
      }
    } else {
      await this.#waitFor(deadline, target, isMaster);
    }
    if (deadMaster && slotFree) {
      // No longer MASTER (verified above), so no Force; the transition is not waited for. The
      // next move waits for a stable HaVip first. Best effort: the move itself is done.
      await this.#unassociate(deadMaster, false, deadline, target, options.clientToken).catch(
        (err: unknown) =>
          this.#log({
            level: 'warn',
            msg: 'detaching the dead old master failed; detach it by hand',
            instanceId: deadMaster,
            error: describe(err),
          }),
      );
    }
    this.#log({
      level: 'info',
      msg: 'HaVip moved and verified',
      haVipId: this.#o.haVipId,
      instanceId: target,
      ms: Date.now() - started,
    });
    return result(false);
  }

  #scriptOpts() {
    return { address: this.address, device: this.#o.guestDevice, prefixLength: this.#o.prefixLength };
  }

  #nodeOf(instanceId: string): string | undefined {
    return Object.entries(this.#nodes).find(([, id]) => id === instanceId)?.[0];
  }

  async #unassociate(
    instanceId: string,
    force: boolean,
    deadline: number,
    target: string,
    token?: string,
  ): Promise<void> {
    this.#log({ level: 'info', msg: 'detaching HaVip', haVipId: this.#o.haVipId, instanceId, force });
    try {
      await this.#call(
        this.#vpc,
        'UnassociateHaVip',
        {
          RegionId: this.#o.regionId,
          HaVipId: this.#o.haVipId,
          InstanceId: instanceId,
          Force: force ? 'true' : 'false',
          ClientToken: deriveToken(token, `UnassociateHaVip:${force}`, instanceId),
        },
        deadline,
        target,
      );
    } catch (err) {
      // Someone else detached it meanwhile: the state we wanted.
      if (err instanceof VipMoveFailedError && err.details.code === 'ResourceNotAssociated') return;
      throw err;
    }
  }

  /** Runs a guest script through Cloud Assistant and waits for its result on that instance. */
  async #runGuest(instanceId: string, script: string, deadline: number, what: string): Promise<void> {
    const phaseDeadline = Math.min(deadline, Date.now() + this.#o.verifyTimeoutMs);
    const timeoutSeconds = Math.max(10, Math.ceil((phaseDeadline - Date.now()) / 1000));
    const body = await this.#call(
      this.#ecs,
      'RunCommand',
      {
        RegionId: this.#o.regionId,
        Type: 'RunShellScript',
        Name: `mysql-failover-vip-${what}`,
        CommandContent: Buffer.from(script).toString('base64'),
        ContentEncoding: 'Base64',
        'InstanceId.1': instanceId,
        Timeout: String(timeoutSeconds),
        // Not the move's token: an announcement is cheap and idempotent, and a repeated move (say, a
        // retried failover step) must announce again rather than get the earlier invocation back.
        ClientToken: deriveToken(undefined, `RunCommand:${what}`, instanceId),
      },
      deadline,
      instanceId,
    );
    const invokeId = typeof body.InvokeId === 'string' ? body.InvokeId : '';
    if (!invokeId)
      throw this.#failed(
        'RunCommand',
        instanceId,
        'InvalidResponse',
        'RunCommand answered without an InvokeId',
      );
    this.#log({ level: 'debug', msg: 'guest command started', what, instanceId, invokeId });

    for (;;) {
      const res = await this.#call(
        this.#ecs,
        'DescribeInvocationResults',
        {
          RegionId: this.#o.regionId,
          InvokeId: invokeId,
          InstanceId: instanceId,
          ContentEncoding: 'PlainText',
        },
        phaseDeadline,
        instanceId,
      );
      const row = readInvocationResult(res, instanceId);
      if (row && TERMINAL_RECORD.has(row.recordStatus)) {
        if (row.recordStatus === 'Finished' && (row.exitCode === 0 || row.exitCode === undefined)) return;
        const code = row.errorCode || `InvokeRecordStatus.${row.recordStatus}`;
        throw this.#failed(
          'RunCommand',
          instanceId,
          code,
          `${row.errorInfo || row.invocationStatus} (exit code ${row.exitCode ?? 'none'})`,
        );
      }
      if (Date.now() + this.#o.pollIntervalMs >= phaseDeadline) {
        throw new VipNotVerifiedError(
          `VIP ${this.address} not verified on ${instanceId}: the ${what} command was still ${row?.recordStatus ?? 'unknown'} at the deadline`,
          { provider: this.provider, haVipId: this.#o.haVipId, instanceId, invokeId, phase: `guest-${what}` },
        );
      }
      await sleep(this.#o.pollIntervalMs);
    }
  }

  async #describe(
    deadline: number,
    action: 'DescribeHaVips',
    target: string | undefined,
  ): Promise<HaVipView> {
    const body = await this.#call(
      this.#vpc,
      action,
      { RegionId: this.#o.regionId, 'Filter.1.Key': 'HaVipId', 'Filter.1.Value.1': this.#o.haVipId },
      deadline,
      target,
    );
    const list = (body.HaVips as { HaVip?: unknown } | undefined)?.HaVip;
    const hv = Array.isArray(list)
      ? (list as Record<string, unknown>[]).find((h) => h && h.HaVipId === this.#o.haVipId)
      : undefined;
    if (!hv) {
      throw this.#failed(
        action,
        target ?? '-',
        'InvalidHaVipId.NotFound',
        `HaVip ${this.#o.haVipId} is not in region ${this.#o.regionId}`,
      );
    }
    const associated = (hv.AssociatedInstances as { associatedInstance?: unknown } | undefined)
      ?.associatedInstance;
    return {
      status: typeof hv.Status === 'string' ? hv.Status : '',
      master:
        typeof hv.MasterInstanceId === 'string' && hv.MasterInstanceId ? hv.MasterInstanceId : undefined,
      associated: Array.isArray(associated)
        ? associated.filter((x): x is string => typeof x === 'string')
        : [],
    };
  }

  async #waitForStable(view: HaVipView, deadline: number, target: string): Promise<HaVipView> {
    return isStable(view) ? view : this.#waitFor(deadline, target, isStable);
  }

  /** Polls DescribeHaVips until `done`, within verifyTimeoutMs and the deadline. */
  async #waitFor(deadline: number, target: string, done: (v: HaVipView) => boolean): Promise<HaVipView> {
    const phaseDeadline = Math.min(deadline, Date.now() + this.#o.verifyTimeoutMs);
    for (;;) {
      const view = await this.#describe(phaseDeadline, 'DescribeHaVips', target);
      if (done(view)) return view;
      // A poll that would start with almost no time left could only time out, and a timed-out
      // read would surface as a transient API error instead of "not verified" (a sleep that
      // overshoots under load made that happen): stop here instead, before and after the pause.
      const tooLate = (pauseMs: number) => Date.now() + pauseMs + MIN_POLL_MS >= phaseDeadline;
      if (tooLate(this.#o.pollIntervalMs)) throw this.#notVerified(target, view);
      await sleep(this.#o.pollIntervalMs);
      if (tooLate(0)) throw this.#notVerified(target, view);
    }
  }

  #notVerified(target: string, view: HaVipView): VipNotVerifiedError {
    return new VipNotVerifiedError(
      `VIP ${this.address} not verified on ${target}: HaVip ${this.#o.haVipId} is ${view.status}, master ${view.master ?? 'none'}, associated [${view.associated.join(', ')}]`,
      {
        provider: this.provider,
        haVipId: this.#o.haVipId,
        instanceId: target,
        status: view.status,
        master: view.master ?? null,
      },
    );
  }

  /** One API call with retries inside the deadline; failures become the typed errors of lib/errors.ts. */
  async #call(
    rpc: AliyunRpc,
    action: string,
    params: Record<string, string>,
    deadline: number,
    instanceId: string | undefined,
  ): Promise<Record<string, unknown>> {
    try {
      return await retryWithin(
        async () => {
          const left = deadline - Date.now();
          if (left <= 0)
            throw new AliyunCallError(
              action,
              'RequestTimeout',
              'the deadline passed before the call',
              true,
              false,
            );
          this.#apiCalls++;
          return rpc.call(action, params, Math.min(this.#o.requestTimeoutMs, left));
        },
        {
          deadline,
          baseMs: this.#o.retryBaseMs,
          maxMs: this.#o.retryMaxMs,
          minAttemptMs: 50,
          isRetryable: (err) => err instanceof AliyunCallError && err.retryable,
          onRetry: ({ attempt, delayMs, error }) =>
            this.#log({
              level: 'warn',
              msg: 'retrying Alibaba API call',
              action,
              attempt,
              delayMs,
              error: describe(error),
            }),
        },
      );
    } catch (err) {
      if (!(err instanceof AliyunCallError)) throw err;
      this.#log({
        level: 'warn',
        msg: 'Alibaba API call failed',
        action,
        code: err.code,
        error: err.message,
      });
      const message = `Failed to move VIP ${this.address} to ${instanceId ?? '-'} (${action}): ${err.code}: ${err.message}`;
      const details = {
        provider: this.provider,
        action,
        code: err.code,
        haVipId: this.#o.haVipId,
        ...(instanceId ? { instanceId } : {}),
        ...(err.requestId ? { requestId: err.requestId } : {}),
      };
      // Deliberately no `cause`: only code + redacted message survive the boundary.
      if (err.retryable) {
        throw err.throttled
          ? new ProviderThrottledError(message, details)
          : new ProviderTransientError(message, details);
      }
      throw new VipMoveFailedError(message, details);
    }
  }

  #failed(action: string, instanceId: string, code: string, msg: string): FailoverError {
    return new VipMoveFailedError(
      `Failed to move VIP ${this.address} to ${instanceId} (${action}): ${code}: ${this.#vpc.redact(msg)}`,
      {
        provider: this.provider,
        action,
        code,
        haVipId: this.#o.haVipId,
        instanceId,
      },
    );
  }
}

function isStable(v: HaVipView): boolean {
  return v.status === 'InUse' || v.status === 'Available';
}

function readInvocationResult(
  body: Record<string, unknown>,
  instanceId: string,
):
  | {
      recordStatus: string;
      invocationStatus: string;
      exitCode: number | undefined;
      errorCode: string;
      errorInfo: string;
    }
  | undefined {
  const inv = body.Invocation as { InvocationResults?: { InvocationResult?: unknown } } | undefined;
  const rows = inv?.InvocationResults?.InvocationResult;
  if (!Array.isArray(rows)) return undefined;
  const row = (rows as Record<string, unknown>[]).find((r) => r && r.InstanceId === instanceId);
  if (!row) return undefined;
  const str = (k: string) => (typeof row[k] === 'string' ? (row[k] as string) : '');
  const exit = Number(row.ExitCode);
  return {
    recordStatus: str('InvokeRecordStatus'),
    invocationStatus: str('InvocationStatus'),
    exitCode: row.ExitCode === null || row.ExitCode === undefined || Number.isNaN(exit) ? undefined : exit,
    errorCode: str('ErrorCode'),
    errorInfo: str('ErrorInfo'),
  };
}

/**
 * A ClientToken per (move, action, instance): retries of one call share it (the service answers a
 * repeat once), different calls of the same move do not collide. At most 64 ASCII characters.
 */
function deriveToken(base: string | undefined, action: string, instanceId: string): string {
  const seed = base ?? randomUUID();
  return createHash('sha256').update(`${seed}\n${action}\n${instanceId}`).digest('hex').slice(0, 40);
}

function describe(err: unknown): string {
  if (err instanceof AliyunCallError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
