/**
 * VipMover for AWS with the VIP as a secondary private IPv4 address (one subnet, one AZ): a move is
 * AssignPrivateIpAddresses(AllowReassignment) on the target ENI, confirmed by DescribeNetworkInterfaces
 * because EC2 remaps asynchronously. Also holds the EC2 call plumbing the route-table mover shares.
 */
import {
  AssignPrivateIpAddressesCommand,
  DescribeNetworkInterfacesCommand,
  EC2Client,
  type NetworkInterface,
} from '@aws-sdk/client-ec2';
import {
  ConfigError,
  type FailoverError,
  ProviderThrottledError,
  ProviderTransientError,
  redact,
  VipMoveFailedError,
  VipNotVerifiedError,
} from '../../errors.ts';
import type { VipMoveOptions, VipMoveResult, VipMover } from '../../ports.ts';
import { retryWithin, sleep } from './retry.ts';

/** Options both AWS movers take. */
export interface AwsVipMoverCommonOptions {
  /** Node id -> ENI id. */
  nodes: Record<string, string>;
  /** Build it with `createEc2Client` (SDK retries off); default: one built for `region`. */
  client?: EC2Client;
  region?: string;
  /** Longest wait for Describe* to show the move, within the move's deadline. Default 15000. */
  verifyTimeoutMs?: number;
  /** Time between verification reads. Default 50 (see DEFAULTS). */
  pollMs?: number;
  /** Longest single HTTP attempt, so a hung call leaves time for another. Default 5000. */
  attemptTimeoutMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  log?: (entry: Record<string, unknown>) => void;
}

export interface Ec2ClientOptions {
  region?: string;
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  connectionTimeoutMs?: number;
}

/**
 * Builds an EC2Client for the movers: SDK retries off (maxAttempts 1) so the mover's own deadline
 * governs every retry, and a bounded connect time.
 */
export function createEc2Client(opts: Ec2ClientOptions = {}): EC2Client {
  return new EC2Client({
    maxAttempts: 1,
    requestHandler: { connectionTimeout: opts.connectionTimeoutMs ?? 3000 },
    ...(opts.region === undefined ? {} : { region: opts.region }),
    ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }),
    ...(opts.credentials === undefined ? {} : { credentials: opts.credentials }),
  });
}

const THROTTLE_CODES = new Set([
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
]);

type Ec2FailureKind = 'throttled' | 'transient' | 'permanent';

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $fault?: string;
  $metadata?: { httpStatusCode?: number };
}

/** Classifies an SDK or network error: throttling, transient (5xx, network, timeout) or permanent. */
export function classifyEc2Error(err: unknown): Ec2FailureKind {
  const e = (err ?? {}) as SdkErrorShape;
  if (e.name && THROTTLE_CODES.has(e.name)) return 'throttled';
  const status = e.$metadata?.httpStatusCode;
  if ((status !== undefined && status >= 500) || e.$fault === 'server') return 'transient';
  if (e.name === 'AbortError' || e.name === 'TimeoutError' || e.name === 'RequestTimeout') return 'transient';
  if (e.code && NETWORK_CODES.has(e.code)) return 'transient';
  return 'permanent';
}

/** `Code: message` of an SDK error, secrets and signatures removed. */
export function describeEc2Error(err: unknown): string {
  const e = (err ?? {}) as SdkErrorShape;
  const code = e.name === 'AbortError' ? 'Timeout' : (e.name ?? 'Error');
  const msg = e.name === 'AbortError' ? 'no answer before the deadline' : (e.message ?? String(err));
  return redact(`${code}: ${msg}`);
}

/** Context that names a failed operation in error messages. */
export interface Ec2CallContext {
  provider: string;
  /** Prefix such as "Failed to move VIP 10.0.1.50 to eni-0ab". */
  what: string;
  operation: string;
  details: Record<string, unknown>;
}

/** Turns a (final) SDK error into the typed error the state machine understands. */
export function translateEc2Error(err: unknown, ctx: Ec2CallContext, attempts: number): FailoverError {
  const kind = classifyEc2Error(err);
  const after = kind === 'permanent' ? '' : ` (gave up at the deadline after ${attempts} attempt(s))`;
  const message = `${ctx.what} (${ctx.operation}): ${describeEc2Error(err)}${after}`;
  const e = (err ?? {}) as SdkErrorShape;
  const details = {
    ...ctx.details,
    provider: ctx.provider,
    operation: ctx.operation,
    code: e.name,
    attempts,
  };
  if (kind === 'throttled') return new ProviderThrottledError(message, details, { cause: err });
  if (kind === 'transient') return new ProviderTransientError(message, details, { cause: err });
  return new VipMoveFailedError(message, details, { cause: err });
}

/**
 * Sends EC2 commands with per-attempt timeouts and deadline-bounded retries, counting attempts for
 * the audit record. One instance per move.
 */
export class Ec2CallRunner {
  apiCalls = 0;

  constructor(
    private readonly client: EC2Client,
    private readonly opts: {
      attemptTimeoutMs: number;
      retryBaseMs: number;
      retryMaxMs: number;
      log: ((entry: Record<string, unknown>) => void) | undefined;
    },
  ) {}

  /** Runs `send` until it succeeds or `deadline`; throws the translated error otherwise. */
  async run<T>(
    ctx: Ec2CallContext,
    deadline: number,
    send: (client: EC2Client, abortSignal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    let attempts = 0;
    try {
      return await retryWithin(
        async () => {
          const budget = Math.min(this.opts.attemptTimeoutMs, deadline - Date.now());
          if (budget <= 0) throw Object.assign(new Error('deadline passed'), { name: 'AbortError' });
          attempts++;
          this.apiCalls++;
          return send(this.client, AbortSignal.timeout(budget));
        },
        {
          deadline,
          baseMs: this.opts.retryBaseMs,
          maxMs: this.opts.retryMaxMs,
          minAttemptMs: 50,
          isRetryable: (err) => classifyEc2Error(err) !== 'permanent',
          onRetry: ({ attempt, delayMs, error }) =>
            this.opts.log?.({
              level: 'warn',
              msg: 'retrying EC2 call',
              provider: ctx.provider,
              operation: ctx.operation,
              attempt: attempt + 1,
              delayMs,
              error: describeEc2Error(error),
            }),
        },
      );
    } catch (err) {
      throw translateEc2Error(err, ctx, attempts);
    }
  }
}

/**
 * Reads until `done(value)` holds or the deadline passes. After the mutating call, a read that keeps
 * failing with a retryable error (throttling, 5xx, timeout) ends like an unconfirmed read: the
 * provider did not show the new holder in time. Permanent read errors are rethrown.
 */
export async function verifyWithin<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  opts: { initial: T; deadline: number; pollMs: number },
): Promise<{ verified: boolean; seen: T; lastError: FailoverError | undefined }> {
  let seen = opts.initial;
  let lastError: FailoverError | undefined;
  for (;;) {
    try {
      seen = await read();
      lastError = undefined;
      if (done(seen)) return { verified: true, seen, lastError };
    } catch (err) {
      if (!(err instanceof ProviderThrottledError || err instanceof ProviderTransientError)) throw err;
      lastError = err;
    }
    if (Date.now() + opts.pollMs >= opts.deadline) return { verified: false, seen, lastError };
    await sleep(opts.pollMs);
  }
}

/**
 * Verification with one re-drive: polls until `done` for the first half of the budget; if the
 * provider still does not show the move, re-issues the (idempotent) mutating call once and polls
 * until the deadline. A remap the provider accepted but lost is cured within the same step instead
 * of ending the failover: VipNotVerifiedError stays terminal for the state machine, so the one
 * retry that is worth making happens here, where it costs one API call rather than an execution.
 */
export async function verifyWithRedrive<T>(opts: {
  read: () => Promise<T>;
  done: (value: T) => boolean;
  redrive: () => Promise<void>;
  initial: T;
  deadline: number;
  pollMs: number;
  onRedrive?: (seen: T) => void;
}): Promise<{ verified: boolean; seen: T; lastError: FailoverError | undefined; redriven: boolean }> {
  const half = Date.now() + Math.floor((opts.deadline - Date.now()) / 2);
  const first = await verifyWithin(opts.read, opts.done, {
    initial: opts.initial,
    deadline: half,
    pollMs: opts.pollMs,
  });
  if (first.verified || Date.now() + opts.pollMs >= opts.deadline) return { ...first, redriven: false };
  opts.onRedrive?.(first.seen);
  await opts.redrive();
  const second = await verifyWithin(opts.read, opts.done, {
    initial: first.seen,
    deadline: opts.deadline,
    pollMs: opts.pollMs,
  });
  return { ...second, redriven: true };
}

const DEFAULTS = {
  verifyTimeoutMs: 15_000,
  // The failover's first write waits for this verification (FenceOldPrimary), so the gap between
  // the remap becoming visible and our seeing it is RTO: a read every pollMs + one round trip.
  // EC2 throttles Describe* per account with a token bucket (non-mutating actions: a burst of 100,
  // refilled at 20/s); ~10 reads over a 1 s remap stay far inside it.
  pollMs: 50,
  attemptTimeoutMs: 5000,
  retryBaseMs: 100,
  retryMaxMs: 2000,
};

/** Resolved common settings of an AWS mover. */
export function resolveCommon(opts: AwsVipMoverCommonOptions) {
  return {
    client: opts.client ?? createEc2Client(opts.region === undefined ? {} : { region: opts.region }),
    verifyTimeoutMs: opts.verifyTimeoutMs ?? DEFAULTS.verifyTimeoutMs,
    pollMs: opts.pollMs ?? DEFAULTS.pollMs,
    attemptTimeoutMs: opts.attemptTimeoutMs ?? DEFAULTS.attemptTimeoutMs,
    retryBaseMs: opts.retryBaseMs ?? DEFAULTS.retryBaseMs,
    retryMaxMs: opts.retryMaxMs ?? DEFAULTS.retryMaxMs,
    log: opts.log,
  };
}

/** Looks up a node's ENI, or throws ConfigError naming the node. */
export function eniOf(nodes: Record<string, string>, nodeId: string, provider: string): string {
  const eni = nodes[nodeId];
  if (!eni)
    throw new ConfigError(`No network interface configured for node ${nodeId} (${provider})`, { nodeId });
  return eni;
}

/** Node id whose ENI is `eni`, if any. */
export function nodeOf(nodes: Record<string, string>, eni: string | undefined): string | undefined {
  if (eni === undefined) return undefined;
  for (const [node, id] of Object.entries(nodes)) if (id === eni) return node;
  return undefined;
}

export interface AwsSecondaryIpVipMoverOptions extends AwsVipMoverCommonOptions {
  /** The VIP: a secondary private IPv4 address in the nodes' subnet. */
  address: string;
}

/** Moves a secondary private IP between the ENIs of a cluster's nodes. */
export class AwsSecondaryIpVipMover implements VipMover {
  readonly provider = 'aws-secondary-ip';
  readonly address: string;
  readonly #nodes: Record<string, string>;
  readonly #cfg: ReturnType<typeof resolveCommon>;

  constructor(opts: AwsSecondaryIpVipMoverOptions) {
    this.address = opts.address;
    this.#nodes = { ...opts.nodes };
    this.#cfg = resolveCommon(opts);
  }

  async currentHolder(): Promise<string | undefined> {
    const runner = this.#runner();
    const eni = await this.#readHolder(runner, Date.now() + this.#cfg.verifyTimeoutMs, {
      what: `Failed to read the holder of VIP ${this.address}`,
    });
    const node = nodeOf(this.#nodes, eni);
    if (eni !== undefined && node === undefined) {
      this.#cfg.log?.({
        level: 'warn',
        msg: 'VIP held by an ENI of no configured node',
        address: this.address,
        eni,
      });
    }
    return node;
  }

  async moveTo(nodeId: string, options: VipMoveOptions): Promise<VipMoveResult> {
    const started = Date.now();
    const target = eniOf(this.#nodes, nodeId, this.provider);
    const runner = this.#runner();
    const what = `Failed to move VIP ${this.address} to ${target}`;
    const result = (alreadyThere: boolean): VipMoveResult => ({
      provider: this.provider,
      address: this.address,
      holder: nodeId,
      alreadyThere,
      apiCalls: runner.apiCalls,
      ms: Date.now() - started,
    });

    // On the write path the read-before (one Describe round trip) is skipped: the assignment is
    // sent at once. Should EC2 refuse it because the target holds the address already (a retried
    // step), the read after the refusal finds it there.
    const before = options.mutateFirst
      ? undefined
      : await this.#readHolder(runner, options.deadline, { what, target });
    if (!options.mutateFirst && before === target) {
      this.#cfg.log?.({
        level: 'info',
        msg: 'VIP already on target',
        address: this.address,
        nodeId,
        eni: target,
      });
      return result(true);
    }

    const assign = () =>
      runner.run(
        {
          provider: this.provider,
          what,
          operation: 'AssignPrivateIpAddresses',
          details: { address: this.address, target, nodeId, from: before },
        },
        options.deadline,
        (client, abortSignal) =>
          client.send(
            new AssignPrivateIpAddressesCommand({
              NetworkInterfaceId: target,
              PrivateIpAddresses: [this.address],
              AllowReassignment: true,
            }),
            { abortSignal },
          ),
      );
    try {
      await assign();
    } catch (err) {
      // Without the read-before, a refusal may only mean the address is on the target already
      // (a retried step): that is the verified no-op of the contract.
      if (!options.mutateFirst || !(err instanceof VipMoveFailedError)) throw err;
      const holder = await this.#readHolder(runner, options.deadline, { what, target });
      if (holder !== target) throw err;
      return result(true);
    }
    this.#cfg.log?.({
      level: 'info',
      msg: 'VIP assignment accepted',
      address: this.address,
      nodeId,
      eni: target,
      from: before,
    });

    const verifyDeadline = Math.min(options.deadline, Date.now() + this.#cfg.verifyTimeoutMs);
    const check = await verifyWithRedrive({
      read: () => this.#readHolder(runner, verifyDeadline, { what, target }),
      done: (holder) => holder === target,
      redrive: async () => {
        await assign();
      },
      initial: before,
      deadline: verifyDeadline,
      pollMs: this.#cfg.pollMs,
      onRedrive: (seen) =>
        this.#cfg.log?.({
          level: 'warn',
          msg: 'VIP not visible on target yet: re-issuing the assignment once',
          address: this.address,
          nodeId,
          eni: target,
          seen,
        }),
    });
    if (check.verified) return result(false);
    throw new VipNotVerifiedError(
      `VIP ${this.address} not verified on ${target} (node ${nodeId}) before the deadline: DescribeNetworkInterfaces shows ${check.seen ?? 'no holder'}${check.lastError ? ` (last read failed: ${check.lastError.message})` : ''}`,
      {
        provider: this.provider,
        address: this.address,
        target,
        nodeId,
        seen: check.seen,
        redriven: check.redriven,
        apiCalls: runner.apiCalls,
      },
      check.lastError ? { cause: check.lastError } : undefined,
    );
  }

  #runner(): Ec2CallRunner {
    return new Ec2CallRunner(this.#cfg.client, this.#cfg);
  }

  /** ENI that holds the address as a secondary IP per DescribeNetworkInterfaces. */
  async #readHolder(
    runner: Ec2CallRunner,
    deadline: number,
    ctx: { what: string; target?: string },
  ): Promise<string | undefined> {
    let nextToken: string | undefined;
    do {
      const token = nextToken;
      const page = await runner.run(
        {
          provider: this.provider,
          what: ctx.what,
          operation: 'DescribeNetworkInterfaces',
          details: { address: this.address, target: ctx.target },
        },
        deadline,
        (client, abortSignal) =>
          client.send(
            new DescribeNetworkInterfacesCommand({
              Filters: [{ Name: 'addresses.private-ip-address', Values: [this.address] }],
              ...(token === undefined ? {} : { NextToken: token }),
            }),
            { abortSignal },
          ),
      );
      const holder = (page.NetworkInterfaces ?? []).find((ni) => holdsAsSecondary(ni, this.address));
      if (holder?.NetworkInterfaceId) return holder.NetworkInterfaceId;
      nextToken = page.NextToken;
    } while (nextToken);
    return undefined;
  }
}

function holdsAsSecondary(ni: NetworkInterface, address: string): boolean {
  return (ni.PrivateIpAddresses ?? []).some((a) => a.PrivateIpAddress === address && a.Primary !== true);
}
