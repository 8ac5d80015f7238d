/**
 * A tiny Lambda Invoke endpoint for the local cloud: maps function names (or ARNs) to
 * in-process handlers, so tests can register hook functions, make them fail, and see what
 * the failover does. `Invoke` (RequestResponse) and `GetFunction` are emulated.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type LambdaHandler = (event: unknown) => Promise<unknown> | unknown;

export interface LambdaEmulator {
  url: string;
  /** Registers (or replaces) the handler of a function name. */
  register(name: string, handler: LambdaHandler): void;
  /** Every invocation, in order. */
  invocations(): Array<{ name: string; at: number; event: unknown; ok: boolean }>;
  close(): Promise<void>;
}

const INVOKE = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;

/** `my-fn`, `arn:aws:lambda:r:acct:function:my-fn[:qualifier]` -> `my-fn`. */
function functionNameOf(raw: string): string {
  const name = decodeURIComponent(raw);
  const m = /:function:([^:]+)/.exec(name);
  return m?.[1] ?? name;
}

/** Starts the emulator on an ephemeral loopback port. */
export async function startLambdaEmulator(): Promise<LambdaEmulator> {
  const handlers = new Map<string, LambdaHandler>();
  const calls: Array<{ name: string; at: number; event: unknown; ok: boolean }> = [];
  const server = createServer((req, res) => void handle(req, res));
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const path = (req.url ?? '').split('?')[0] ?? '';
    const m = INVOKE.exec(path);
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    // GetFunction (what `check` asks to see that a hook exists).
    const get = /^\/2015-03-31\/functions\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && get) {
      const fn = functionNameOf(get[1] ?? '');
      if (handlers.has(fn)) json(200, { Configuration: { FunctionName: fn, State: 'Active' } });
      else
        json(
          404,
          { Type: 'User', message: `Function not found: ${fn}` },
          { 'x-amzn-errortype': 'ResourceNotFoundException' },
        );
      return;
    }
    if (req.method !== 'POST' || !m) {
      json(
        404,
        { Type: 'User', message: `${req.method} ${path} is not emulated` },
        { 'x-amzn-errortype': 'ResourceNotFoundException' },
      );
      return;
    }
    const name = functionNameOf(m[1] ?? '');
    const handler = handlers.get(name);
    if (!handler) {
      json(
        404,
        { Type: 'User', message: `Function not found: ${name}` },
        { 'x-amzn-errortype': 'ResourceNotFoundException' },
      );
      return;
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const event: unknown = text ? JSON.parse(text) : {};
    try {
      const out = await handler(event);
      calls.push({ name, at: Date.now(), event, ok: true });
      json(200, out ?? null, { 'x-amz-executed-version': '$LATEST' });
    } catch (err) {
      calls.push({ name, at: Date.now(), event, ok: false });
      const e = err as Error;
      // The service answers 200 with X-Amz-Function-Error for an error thrown by the function.
      json(200, { errorType: e.name, errorMessage: e.message }, { 'x-amz-function-error': 'Unhandled' });
    }
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    register: (name, handler) => handlers.set(name, handler),
    invocations: () => calls.map((c) => ({ ...c })),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
