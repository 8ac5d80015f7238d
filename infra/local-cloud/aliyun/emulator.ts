/**
 * Emulated Alibaba Cloud RPC endpoint on loopback: the VPC API (HaVip, Version 2016-04-28) and
 * the ECS Cloud Assistant API (Version 2014-05-26) on one HTTP server, told apart by Version.
 *
 * It accepts what @alicloud/pop-core 1.8 sends (GET /?query, or POST with the same string as a
 * form body), recomputes the HMAC-SHA1 signature and answers in the gateway's JSON format:
 * success bodies carry RequestId, errors carry Code / Message / RequestId / HostId / Recommend
 * with the gateway's HTTP status. Faults come from the shared FaultInjector.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FaultInjector } from '../fault-injection.ts';
import { createEcsHandlers, ECS_API_VERSION, type EcsEmulatorOptions } from './ecs-emulator.ts';
import type { GuestHost } from './guest-script.ts';
import { AliyunApiError, AliyunModel } from './model.ts';
import { buildStringToSign, computeRpcSignature, parseFormString, signaturesMatch } from './signature.ts';
import { createVpcHandlers, type RpcHandler, type RpcParams, VPC_API_VERSION } from './vpc-emulator.ts';

export type { ModelEvent } from './model.ts';
export { AliyunApiError, AliyunModel, vipBackendFromHaVip } from './model.ts';

export interface AliyunEmulatorOptions {
  port?: number;
  credentials: { accessKeyId: string; accessKeySecret: string };
  regionId?: string;
  /** Duration of Associating / Unassociating (and of a Cloud Assistant command). Default 200. */
  transitionMs?: number;
  /** Associate/Unassociate on the same HaVip within this period is refused with OperationConflict. */
  minCallIntervalMs?: number;
  /** ECS instances per HaVip; 2 per the English AssociateHaVip reference. */
  maxInstancesPerHaVip?: number;
  /** How long a Cloud Assistant command runs; defaults to transitionMs. */
  commandMs?: number;
  /** Really run Cloud Assistant scripts on the instances' hosts (network-namespace mode). */
  guestHost?: GuestHost;
  /** Largest accepted clock skew of Timestamp; the gateway allows 15 minutes. */
  maxSkewMs?: number;
}

export interface AliyunEmulator {
  /** Endpoint for RPCClient (both VPC and ECS). */
  url: string;
  model: AliyunModel;
  faults: FaultInjector;
  /**
   * How an injected 5xx looks: 'json' = 500 {"Code":"InternalError",...} (what the gateway sends),
   * 'empty' = 500 with `{}`, which pop-core resolves as if it were a success.
   */
  serverErrorBody: 'json' | 'empty';
  close(): Promise<void>;
}

const MAX_BODY = 256 * 1024;
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

interface Service {
  name: 'Vpc' | 'Ecs';
  handlers: Record<string, RpcHandler>;
}

/**
 * Starts the emulator on 127.0.0.1. Point RPCClient at `url` with apiVersion '2016-04-28' (VPC)
 * or '2014-05-26' (ECS) and the same credentials; call close() in afterAll.
 */
export async function startAliyunEmulator(opts: AliyunEmulatorOptions): Promise<AliyunEmulator> {
  const model = new AliyunModel({
    ...(opts.regionId === undefined ? {} : { regionId: opts.regionId }),
    ...(opts.transitionMs === undefined ? {} : { transitionMs: opts.transitionMs }),
    ...(opts.minCallIntervalMs === undefined ? {} : { minCallIntervalMs: opts.minCallIntervalMs }),
    ...(opts.maxInstancesPerHaVip === undefined ? {} : { maxInstancesPerHaVip: opts.maxInstancesPerHaVip }),
  });
  const ecsOpts: EcsEmulatorOptions = {
    ...(opts.commandMs === undefined ? {} : { commandMs: opts.commandMs }),
    ...(opts.guestHost === undefined ? {} : { guestHost: opts.guestHost }),
  };
  const services = new Map<string, Service>([
    [VPC_API_VERSION, { name: 'Vpc', handlers: createVpcHandlers(model) }],
    [ECS_API_VERSION, { name: 'Ecs', handlers: createEcsHandlers(model, ecsOpts) }],
  ]);
  const faults = new FaultInjector();
  const maxSkewMs = opts.maxSkewMs ?? 15 * 60_000;
  // Nonces are remembered for as long as a Timestamp is accepted; after that the Timestamp check rejects replays.
  const nonces = new Map<string, number>();

  const emulator: AliyunEmulator = {
    url: '',
    model,
    faults,
    serverErrorBody: 'json',
    close: async () => {},
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent)
        sendError(
          res,
          500,
          'InternalError',
          'The request processing has failed due to some unknown error.',
          'Vpc',
        );
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const body = await readBody(req);
    if (body === undefined) {
      sendError(res, 413, 'RequestEntityTooLarge', 'The request body is too large.', 'Vpc');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const query = url.search.startsWith('?') ? url.search.slice(1) : '';
    const params: Record<string, string> = {
      ...parseFormString(query),
      ...(method === 'POST' ? parseFormString(body) : {}),
    };

    const service = services.get(params.Version ?? '');
    const product = service?.name ?? 'Vpc';
    const fail = (status: number, code: string, message: string) =>
      sendError(res, status, code, message, product);

    if (method !== 'GET' && method !== 'POST') {
      fail(400, 'UnsupportedHTTPMethod', 'Specified http method is not supported.');
      return;
    }
    for (const name of ['Action', 'Version', 'AccessKeyId', 'Signature', 'SignatureNonce', 'Timestamp']) {
      if (!params[name]) {
        fail(400, `Missing${name}`, `${name} is mandatory for this action.`);
        return;
      }
    }
    if (!service) {
      fail(400, 'InvalidVersion', 'Specified parameter Version is not valid.');
      return;
    }
    const action = params.Action!;
    const handler = service.handlers[action];
    if (!handler) {
      fail(404, 'InvalidApi.NotFound', 'Specified api is not found, please check your url and method.');
      return;
    }
    if ((params.SignatureMethod ?? 'HMAC-SHA1') !== 'HMAC-SHA1') {
      fail(400, 'InvalidSignatureMethod', 'Specified signature method is not valid.');
      return;
    }
    const timestamp = params.Timestamp!;
    if (!TIMESTAMP_RE.test(timestamp) || Number.isNaN(Date.parse(timestamp))) {
      fail(400, 'InvalidTimeStamp.Format', 'Specified time stamp or date value is not well formatted.');
      return;
    }
    if (Math.abs(Date.now() - Date.parse(timestamp)) > maxSkewMs) {
      fail(400, 'InvalidTimeStamp.Expired', 'Specified time stamp or date value is expired.');
      return;
    }
    if (params.AccessKeyId !== opts.credentials.accessKeyId) {
      fail(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
      return;
    }
    const expected = computeRpcSignature(method, params, opts.credentials.accessKeySecret);
    if (!signaturesMatch(params.Signature!, expected)) {
      // The gateway echoes its string to sign so callers can debug their canonicalisation; it holds
      // the AccessKeyId but never the secret or the signature.
      fail(
        400,
        'SignatureDoesNotMatch',
        `Specified signature is not matched with our calculation. server string to sign is:${buildStringToSign(method, params)}`,
      );
      return;
    }
    const nonceKey = `${params.AccessKeyId}\n${params.SignatureNonce}`;
    pruneNonces(nonces, maxSkewMs * 2);
    if (nonces.has(nonceKey)) {
      fail(400, 'SignatureNonceUsed', 'Specified signature nonce was used already.');
      return;
    }
    nonces.set(nonceKey, Date.now());

    const gone = new Promise<void>((resolve) => res.once('close', () => resolve()));
    const verdict = await faults.admit(action, gone);
    switch (verdict.kind) {
      case 'drop':
        res.destroy();
        return;
      case 'throttle':
        fail(400, 'Throttling.User', 'Request was denied due to user flow control.');
        return;
      case 'server-error':
        if (emulator.serverErrorBody === 'empty') sendJson(res, 500, {});
        else
          fail(
            500,
            'InternalError',
            'The request processing has failed due to some unknown error, exception or failure.',
          );
        return;
      case 'error':
        fail(verdict.status, verdict.code, verdict.message);
        return;
      case 'pass':
        break;
    }

    const requestId = randomUUID().toUpperCase();
    try {
      sendJson(res, 200, handler(params as RpcParams, { requestId }), requestId);
    } catch (err) {
      if (!(err instanceof AliyunApiError)) throw err;
      sendError(res, err.status, err.code, err.message, product, requestId);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  emulator.url = `http://127.0.0.1:${port}`;
  emulator.close = async () => {
    faults.close();
    model.dispose();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  };
  return emulator;
}

function pruneNonces(nonces: Map<string, number>, keepMs: number): void {
  const cutoff = Date.now() - keepMs;
  for (const [k, at] of nonces) {
    if (at >= cutoff) break;
    nonces.delete(k);
  }
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) tooLarge = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(tooLarge ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, requestId?: string): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json;charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...(requestId ? { 'x-acs-request-id': requestId } : {}),
  });
  res.end(text);
}

function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  product: 'Vpc' | 'Ecs',
  requestId = randomUUID().toUpperCase(),
): void {
  sendJson(
    res,
    status,
    {
      RequestId: requestId,
      HostId: product === 'Vpc' ? 'vpc.aliyuncs.com' : 'ecs.aliyuncs.com',
      Code: code,
      Message: message,
      Recommend: `https://api.aliyun.com/troubleshoot?q=${encodeURIComponent(code)}&product=${product}&requestId=${requestId}`,
    },
    requestId,
  );
}
