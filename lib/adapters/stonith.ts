/**
 * STONITH ("shoot the other node in the head") through the cloud API: the old primary's instance
 * is stopped, forced (no guest shutdown that a hung kernel could stall), and the stop is confirmed
 * by Describe before the caller promotes anyone.
 *
 *   AWS      StopInstances(InstanceIds=[id], Force=true), then DescribeInstances until 'stopped'
 *   Alibaba  ECS 2014-05-26 StopInstance(InstanceId, ForceStop=true), then DescribeInstanceStatus
 *            until Stopped
 *
 * Every call is retried with backoff within one deadline (throttling, 5xx, timeouts); whatever
 * does not end with the instance stopped by then is a StonithFailedError. Messages carry codes
 * and redacted text only, never a signed URL or a key.
 */
import {
  DescribeInstancesCommand,
  type EC2Client,
  type InstanceStateName,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import type { ClusterConfig } from '../config/schema.ts';
import { StonithFailedError } from '../errors.ts';
import type { SecretResolver } from './secrets.ts';
import { AliyunCallError, AliyunRpc, type RpcRequester } from './vip/aliyun-client.ts';
import { classifyEc2Error, createEc2Client, describeEc2Error } from './vip/aws-secondary-ip.ts';
import { retryWithin, sleep } from './vip/retry.ts';

/** What a stop did. */
export interface StonithResult {
  instanceId: string;
  /** The last state the API showed: 'stopped' / 'Stopped' (or stopping when waitStopped is off). */
  state: string;
  /** From the first call to the confirmation. */
  ms: number;
  apiCalls: number;
}

/** The port FenceOldPrimary uses. */
export interface Stonith {
  /** Stops the node's instance; resolves once the API shows it stopped, throws StonithFailedError. */
  stop(nodeId: string, opts: { deadline: number }): Promise<StonithResult>;
}

interface CommonOptions {
  /** Node id -> instance id. */
  nodes: Record<string, string>;
  /** false: an accepted stop (stopping) is enough. Default true. */
  waitStopped?: boolean;
  /** Time between Describe reads. Default 200. */
  pollMs?: number;
  /** Longest single HTTP attempt. Default 5000. */
  attemptTimeoutMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  log?: (entry: Record<string, unknown>) => void;
}

type ResolvedOptions = Required<Omit<CommonOptions, 'log'>> & {
  log: ((entry: Record<string, unknown>) => void) | undefined;
};

function instanceOf(nodes: Record<string, string>, nodeId: string): string {
  const id = nodes[nodeId];
  if (!id) {
    throw new StonithFailedError(`STONITH of ${nodeId}: no instanceId configured for this node.`, {
      nodeId,
    });
  }
  return id;
}

/** The defaults both providers share. */
function resolveOptions(opts: CommonOptions): ResolvedOptions {
  return {
    nodes: opts.nodes,
    waitStopped: opts.waitStopped ?? true,
    pollMs: opts.pollMs ?? 200,
    attemptTimeoutMs: opts.attemptTimeoutMs ?? 5000,
    retryBaseMs: opts.retryBaseMs ?? 100,
    retryMaxMs: opts.retryMaxMs ?? 1000,
    log: opts.log,
  };
}

/** EC2: StopInstances Force=true + DescribeInstances. */
export class Ec2Stonith implements Stonith {
  readonly #client: EC2Client;
  readonly #o: ResolvedOptions;

  constructor(opts: CommonOptions & { client?: EC2Client; region?: string }) {
    this.#client = opts.client ?? createEc2Client(opts.region === undefined ? {} : { region: opts.region });
    this.#o = resolveOptions(opts);
  }

  async stop(nodeId: string, opts: { deadline: number }): Promise<StonithResult> {
    const instanceId = instanceOf(this.#o.nodes, nodeId);
    const t0 = Date.now();
    let apiCalls = 0;
    const call = async <T>(operation: string, send: (signal: AbortSignal) => Promise<T>): Promise<T> => {
      let attempts = 0;
      try {
        return await retryWithin(
          async () => {
            const budget = Math.min(this.#o.attemptTimeoutMs, opts.deadline - Date.now());
            if (budget <= 0) throw Object.assign(new Error('deadline passed'), { name: 'AbortError' });
            attempts++;
            apiCalls++;
            return await send(AbortSignal.timeout(budget));
          },
          {
            deadline: opts.deadline,
            baseMs: this.#o.retryBaseMs,
            maxMs: this.#o.retryMaxMs,
            minAttemptMs: 50,
            isRetryable: (err) => classifyEc2Error(err) !== 'permanent',
            onRetry: ({ attempt, delayMs, error }) =>
              this.#o.log?.({
                level: 'warn',
                msg: 'retrying EC2 call (STONITH)',
                operation,
                attempt: attempt + 1,
                delayMs,
                error: describeEc2Error(error),
              }),
          },
        );
      } catch (err) {
        const kind = classifyEc2Error(err);
        const e = err as { name?: string };
        throw new StonithFailedError(
          `STONITH of ${nodeId} (${instanceId}) failed (${operation}): ${describeEc2Error(err)}${kind === 'permanent' ? '' : ` (gave up at the deadline after ${attempts} attempt(s))`}`,
          { nodeId, instanceId, operation, code: e.name, attempts, provider: 'aws' },
        );
      }
    };
    const describe = async (): Promise<InstanceStateName | undefined> => {
      const out = await call('DescribeInstances', (abortSignal) =>
        this.#client.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal }),
      );
      const inst = out.Reservations?.flatMap((r) => r.Instances ?? []).find(
        (i) => i.InstanceId === instanceId,
      );
      return inst?.State?.Name;
    };

    let state: string | undefined;
    try {
      const out = await call('StopInstances', (abortSignal) =>
        this.#client.send(new StopInstancesCommand({ InstanceIds: [instanceId], Force: true }), {
          abortSignal,
        }),
      );
      state = out.StoppingInstances?.find((s) => s.InstanceId === instanceId)?.CurrentState?.Name;
    } catch (err) {
      // A terminated instance runs nothing either: that is fenced too.
      if (!(err instanceof StonithFailedError) || err.details.code !== 'IncorrectInstanceState') throw err;
      state = await describe();
      if (state !== 'terminated' && state !== 'stopped') throw err;
    }
    const done = (s: string | undefined) =>
      s === 'stopped' || s === 'terminated' || (!this.#o.waitStopped && s === 'stopping');
    while (!done(state)) {
      if (Date.now() + this.#o.pollMs >= opts.deadline) {
        throw new StonithFailedError(
          `STONITH of ${nodeId} (${instanceId}): the instance was not shown stopped before the deadline (last state: ${state ?? 'unknown'}).`,
          { nodeId, instanceId, state, provider: 'aws', apiCalls },
        );
      }
      await sleep(this.#o.pollMs);
      state = await describe();
    }
    return { instanceId, state: state ?? 'unknown', ms: Date.now() - t0, apiCalls };
  }
}

/** Alibaba ECS: StopInstance ForceStop=true + DescribeInstanceStatus. */
export class AliyunStonith implements Stonith {
  readonly #ecs: AliyunRpc;
  readonly #regionId: string;
  readonly #o: ResolvedOptions;

  constructor(
    opts: CommonOptions & {
      regionId: string;
      accessKeyId: string;
      accessKeySecret: string;
      /** Default https://ecs.<regionId>.aliyuncs.com. */
      endpoint?: string;
      client?: RpcRequester;
    },
  ) {
    this.#regionId = opts.regionId;
    this.#ecs = new AliyunRpc({
      endpoint: opts.endpoint ?? `https://ecs.${opts.regionId}.aliyuncs.com`,
      apiVersion: '2014-05-26',
      accessKeyId: opts.accessKeyId,
      accessKeySecret: opts.accessKeySecret,
      ...(opts.client ? { client: opts.client } : {}),
    });
    this.#o = resolveOptions(opts);
  }

  async stop(nodeId: string, opts: { deadline: number }): Promise<StonithResult> {
    const instanceId = instanceOf(this.#o.nodes, nodeId);
    const t0 = Date.now();
    let apiCalls = 0;
    const fail = (operation: string, err: unknown, attempts: number) => {
      const e = err instanceof AliyunCallError ? err : undefined;
      return new StonithFailedError(
        `STONITH of ${nodeId} (${instanceId}) failed (${operation}): ${e ? `${e.code}: ${e.message}` : this.#ecs.redact(String(err))}${e?.retryable ? ` (gave up at the deadline after ${attempts} attempt(s))` : ''}`,
        {
          nodeId,
          instanceId,
          operation,
          code: e?.code,
          attempts,
          provider: 'aliyun',
          ...(e?.requestId ? { requestId: e.requestId } : {}),
        },
      );
    };
    const call = async (
      action: string,
      params: Record<string, string>,
      retryable: (err: AliyunCallError) => boolean,
    ): Promise<Record<string, unknown>> => {
      let attempts = 0;
      try {
        return await retryWithin(
          async () => {
            const budget = Math.min(this.#o.attemptTimeoutMs, opts.deadline - Date.now());
            if (budget <= 0)
              throw new AliyunCallError(action, 'RequestTimeout', 'deadline passed', true, false);
            attempts++;
            apiCalls++;
            return await this.#ecs.call(action, params, budget);
          },
          {
            deadline: opts.deadline,
            baseMs: this.#o.retryBaseMs,
            maxMs: this.#o.retryMaxMs,
            minAttemptMs: 50,
            isRetryable: (err) => err instanceof AliyunCallError && retryable(err),
            onRetry: ({ attempt, delayMs, error }) =>
              this.#o.log?.({
                level: 'warn',
                msg: 'retrying ECS call (STONITH)',
                operation: action,
                attempt: attempt + 1,
                delayMs,
                error: error instanceof AliyunCallError ? `${error.code}: ${error.message}` : 'error',
              }),
          },
        );
      } catch (err) {
        throw fail(action, err, attempts);
      }
    };
    const status = async (): Promise<string | undefined> => {
      const body = await call(
        'DescribeInstanceStatus',
        { RegionId: this.#regionId, 'InstanceId.1': instanceId },
        (e) => e.retryable,
      );
      const list = (
        body.InstanceStatuses as { InstanceStatus?: Array<{ InstanceId?: string; Status?: string }> }
      )?.InstanceStatus;
      return list?.find((s) => s.InstanceId === instanceId)?.Status;
    };

    let state: string | undefined;
    try {
      // IncorrectInstanceStatus is not retried blindly: it also means "already stopped".
      await call('StopInstance', { InstanceId: instanceId, ForceStop: 'true' }, (e) =>
        e.code === 'IncorrectInstanceStatus' ? false : e.retryable,
      );
    } catch (err) {
      if (!(err instanceof StonithFailedError) || err.details.code !== 'IncorrectInstanceStatus') throw err;
      state = await status();
      // Starting or Pending: it is coming up; the failover must not promote past it.
      if (state !== 'Stopped' && state !== 'Stopping') throw err;
    }
    const done = (s: string | undefined) => s === 'Stopped' || (!this.#o.waitStopped && s === 'Stopping');
    state ??= await status();
    while (!done(state)) {
      if (Date.now() + this.#o.pollMs >= opts.deadline) {
        throw new StonithFailedError(
          `STONITH of ${nodeId} (${instanceId}): the instance was not shown Stopped before the deadline (last status: ${state ?? 'unknown'}).`,
          { nodeId, instanceId, state, provider: 'aliyun', apiCalls },
        );
      }
      await sleep(this.#o.pollMs);
      state = await status();
    }
    return { instanceId, state: state ?? 'unknown', ms: Date.now() - t0, apiCalls };
  }
}

/**
 * The cluster's STONITH adapter, on the vip provider's cloud (EC2 for aws-*, ECS for
 * aliyun-havip with the HaVip's AccessKey), or undefined when failover.stonith is off.
 */
export async function createStonith(
  c: ClusterConfig,
  secrets: SecretResolver,
  log: (entry: Record<string, unknown>) => void,
): Promise<Stonith | undefined> {
  const s = c.failover.stonith;
  if (!s.enabled) return undefined;
  const nodes = Object.fromEntries(c.nodes.flatMap((n) => (n.instanceId ? [[n.id, n.instanceId]] : [])));
  const vip = c.vip;
  switch (vip.provider) {
    case 'none':
      throw new StonithFailedError(`STONITH of ${c.name} needs a cloud: vip.provider is "none".`);
    case 'aws-secondary-ip':
    case 'aws-route-table':
      return new Ec2Stonith({
        nodes,
        waitStopped: s.waitStopped,
        ...(vip.region ? { region: vip.region } : {}),
        log,
      });
    case 'aliyun-havip':
      return new AliyunStonith({
        nodes,
        waitStopped: s.waitStopped,
        regionId: vip.regionId,
        accessKeyId: await secrets.resolve(vip.accessKeyId),
        accessKeySecret: await secrets.resolve(vip.accessKeySecret),
        ...(vip.ecsEndpoint ? { endpoint: vip.ecsEndpoint } : {}),
        log,
      });
  }
}
