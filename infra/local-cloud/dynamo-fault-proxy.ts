/**
 * A fault-injecting proxy in front of dynalite. DynamoDB fails in ways dynalite never does: a 500
 * InternalServerError, throttling (ProvisionedThroughputExceededException), a request that never
 * answers. The proxy answers chosen requests that way, in DynamoDB's wire format (AWS JSON 1.0),
 * and forwards everything else untouched, so the real SDK sees what it would see in AWS.
 */
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type DynamoFaultKind = 'server-error' | 'throttle' | 'hang';

/** Which requests to fail: the operation (`UpdateItem`, ...) and the parsed request body. */
export type DynamoRequestMatcher = (operation: string, body: Record<string, unknown>) => boolean;

export interface DynamoFaults {
  /** Fails the next `count` requests `match` selects with `kind` (SDK retries count as requests). */
  failNext(match: DynamoRequestMatcher, count: number, kind?: DynamoFaultKind): void;
  /** Fails every request `match` selects until `clear()`. */
  failAll(match: DynamoRequestMatcher, kind?: DynamoFaultKind): void;
  clear(): void;
  /** Requests answered with a fault so far. */
  injected(): number;
}

export interface DynamoFaultProxy {
  url: string;
  faults: DynamoFaults;
  close(): Promise<void>;
}

interface Rule {
  match: DynamoRequestMatcher;
  kind: DynamoFaultKind;
  remaining: number;
}

/** Starts the proxy on an ephemeral loopback port, forwarding to `upstream` (dynalite's URL). */
export async function startDynamoFaultProxy(upstream: string): Promise<DynamoFaultProxy> {
  const target = new URL(upstream);
  let rules: Rule[] = [];
  let injected = 0;
  const hung = new Set<ServerResponse>();

  const server = createServer((req, res) => void handle(req, res));
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const operation = String(req.headers['x-amz-target'] ?? '').replace(/^DynamoDB_\d+\./, '');
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(raw.toString('utf8') || '{}') as Record<string, unknown>;
    } catch {
      // Forwarded as it is: dynalite answers the serialization error.
    }
    const rule = rules.find((r) => r.remaining > 0 && r.match(operation, body));
    if (rule) {
      rule.remaining--;
      injected++;
      if (rule.kind === 'hang') {
        hung.add(res);
        res.on('close', () => hung.delete(res));
        return;
      }
      const [status, type, message] =
        rule.kind === 'throttle'
          ? [
              400,
              'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
              'The level of configured provisioned throughput for the table was exceeded.',
            ]
          : [500, 'com.amazon.coral.service#InternalServerError', 'Internal server error'];
      const text = JSON.stringify({ __type: type, message });
      res.writeHead(status, {
        'content-type': 'application/x-amz-json-1.0',
        'content-length': Buffer.byteLength(text),
        'x-amzn-requestid': `fault-${injected}`,
      });
      res.end(text);
      return;
    }
    const up = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 500, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    up.end(raw);
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    faults: {
      failNext: (match, count, kind = 'server-error') => {
        rules.push({ match, kind, remaining: count });
      },
      failAll: (match, kind = 'server-error') => {
        rules.push({ match, kind, remaining: Number.POSITIVE_INFINITY });
      },
      clear: () => {
        rules = [];
        for (const res of hung) res.destroy();
      },
      injected: () => injected,
    },
    close: () =>
      new Promise<void>((r) => {
        for (const res of hung) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
