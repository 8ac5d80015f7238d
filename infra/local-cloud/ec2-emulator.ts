/**
 * A local EC2 Query API endpoint (node:http) that the real @aws-sdk/client-ec2 talks to: SigV4 is
 * verified with the configured secret, the VIP-related and STONITH actions (StopInstances,
 * DescribeInstances) are validated as EC2 validates them,
 * and faults (latency, throttling, 5xx, hangs) can be injected per action.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EC2_ACTIONS } from './ec2/actions.ts';
import { Ec2Model } from './ec2/model.ts';
import { EC2_API_VERSION, Ec2ApiError, errorXml, type Params, successXml } from './ec2/query.ts';
import { FaultInjector } from './fault-injection.ts';
import { verifySigV4 } from './sigv4.ts';

export type {
  Ec2ChangeEvent,
  Ec2ChangeListener,
  Ec2Instance,
  InstanceStateName,
  NetworkInterfaceSpec,
  RouteTableSpec,
  SubnetSpec,
} from './ec2/model.ts';
export { Ec2Model } from './ec2/model.ts';

export interface Ec2EmulatorOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: '127.0.0.1';
  credentials: { accessKeyId: string; secretAccessKey: string };
  region?: string;
  /** Delay before an assignment or route change becomes visible (default 50 ms). */
  propagationMs?: number;
  /** How long StopInstances leaves an instance 'stopping' (default 500 ms; Force: forceStopMs). */
  stopMs?: number;
  /** The same for StopInstances with Force=true (default 100 ms). */
  forceStopMs?: number;
}

export interface Ec2Emulator {
  /** Endpoint for `new EC2Client({ endpoint })`. */
  url: string;
  model: Ec2Model;
  faults: FaultInjector;
  close(): Promise<void>;
}

const MAX_BODY = 1 << 20;

/**
 * Starts the emulator on loopback. Seed `model` with subnets, interfaces and route tables, point an
 * EC2Client at `url` with the same credentials and region, and close it in afterAll.
 */
export async function startEc2Emulator(opts: Ec2EmulatorOptions): Promise<Ec2Emulator> {
  const region = opts.region ?? 'us-east-1';
  const model = new Ec2Model({
    ...(opts.propagationMs === undefined ? {} : { propagationMs: opts.propagationMs }),
    ...(opts.stopMs === undefined ? {} : { stopMs: opts.stopMs }),
    ...(opts.forceStopMs === undefined ? {} : { forceStopMs: opts.forceStopMs }),
  });
  const faults = new FaultInjector();
  const credentials = [opts.credentials];

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent)
        send(res, 500, errorXml('InternalError', 'An internal error has occurred', randomUUID()));
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const fail = (code: string, message: string, status: number) =>
      send(res, status, errorXml(code, message, requestId), requestId);

    const body = await readBody(req);
    if (body === undefined) {
      fail('RequestEntityTooLarge', 'Request body is too large', 413);
      return;
    }
    const denied = verifySigV4(
      { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body },
      { service: 'ec2', region, credentials },
    );
    if (denied) {
      fail(denied.code, denied.message, denied.status);
      return;
    }

    const params = parseParams(req, body);
    const action = params.get('Action');
    if (!action) {
      fail('MissingAction', 'The request must contain the parameter Action', 400);
      return;
    }

    const gone = new Promise<void>((resolve) => res.once('close', resolve));
    const verdict = await faults.admit(action, gone);
    switch (verdict.kind) {
      case 'drop':
        res.destroy();
        return;
      case 'throttle':
        fail('RequestLimitExceeded', 'Request limit exceeded.', 503);
        return;
      case 'server-error':
        fail('InternalError', 'An internal error has occurred', 500);
        return;
      case 'error':
        fail(verdict.code, verdict.message, verdict.status);
        return;
      case 'pass':
        break;
    }

    const handler = EC2_ACTIONS[action];
    if (!handler) {
      fail('InvalidAction', `The action ${action} is not valid for this web service.`, 400);
      return;
    }
    if (params.get('Version') !== EC2_API_VERSION) {
      fail('MissingParameter', 'The request must contain the parameter Version', 400);
      return;
    }
    try {
      send(res, 200, successXml(action, requestId, handler(model, params)), requestId);
    } catch (err) {
      if (!(err instanceof Ec2ApiError)) throw err;
      fail(err.code, err.message, err.status);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    model,
    faults,
    async close() {
      faults.close();
      model.dispose();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function send(res: ServerResponse, status: number, xml: string, requestId?: string): void {
  if (res.destroyed) return;
  const headers: Record<string, string | number> = {
    'content-type': 'text/xml;charset=UTF-8',
    'content-length': Buffer.byteLength(xml),
    date: new Date().toUTCString(),
    server: 'AmazonEC2',
  };
  if (requestId) headers['x-amzn-requestid'] = requestId;
  res.writeHead(status, headers);
  res.end(xml);
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** EC2 takes parameters from the query string (GET) or the form body (POST, what the SDK sends). */
function parseParams(req: IncomingMessage, body: Buffer): Params {
  const params: Params = new Map();
  const q = (req.url ?? '').indexOf('?');
  if (q >= 0) for (const [k, v] of new URLSearchParams((req.url ?? '').slice(q + 1))) params.set(k, v);
  const type = req.headers['content-type'] ?? '';
  if (req.method === 'POST' && type.startsWith('application/x-www-form-urlencoded')) {
    for (const [k, v] of new URLSearchParams(body.toString('utf8'))) params.set(k, v);
  }
  return params;
}
