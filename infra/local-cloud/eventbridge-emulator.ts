/**
 * A tiny EventBridge endpoint for the local cloud: PutEvents (AWS JSON 1.1) records every
 * entry so tests can assert on the events the failover publishes. No rules, no targets.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedEvent {
  id: string;
  at: number;
  eventBusName: string;
  source: string;
  detailType: string;
  detail: Record<string, unknown>;
}

export interface EventBridgeEmulator {
  url: string;
  events(): RecordedEvent[];
  close(): Promise<void>;
}

/** Starts the emulator on an ephemeral loopback port. */
export async function startEventBridgeEmulator(): Promise<EventBridgeEmulator> {
  const recorded: RecordedEvent[] = [];
  const server = createServer((req, res) => void handle(req, res));
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const send = (status: number, body: unknown, type?: string) => {
      res.writeHead(status, {
        'content-type': 'application/x-amz-json-1.1',
        ...(type ? { 'x-amzn-errortype': type } : {}),
      });
      res.end(JSON.stringify(body));
    };
    const target = String(req.headers['x-amz-target'] ?? '');
    if (target !== 'AWSEvents.PutEvents') {
      send(
        400,
        { __type: 'UnknownOperationException', message: `${target} is not emulated` },
        'UnknownOperationException',
      );
      return;
    }
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as {
        Entries?: Array<{ EventBusName?: string; Source?: string; DetailType?: string; Detail?: string }>;
      };
      const entries = (body.Entries ?? []).map((e) => {
        const id = randomUUID();
        recorded.push({
          id,
          at: Date.now(),
          eventBusName: e.EventBusName ?? 'default',
          source: e.Source ?? '',
          detailType: e.DetailType ?? '',
          detail: JSON.parse(e.Detail ?? '{}') as Record<string, unknown>,
        });
        return { EventId: id };
      });
      send(200, { FailedEntryCount: 0, Entries: entries });
    } catch (err) {
      send(400, { __type: 'ValidationException', message: (err as Error).message }, 'ValidationException');
    }
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    events: () => recorded.map((e) => structuredClone(e)),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
