/**
 * A tiny EventBridge for the local cloud: PutEvents (AWS JSON 1.1) records every entry so tests
 * can assert on the events the failover publishes; rules (as the packaged template declares them)
 * match events by their event pattern and deliver them to their Lambda targets, asynchronously
 * and with the two retries an asynchronous Lambda invocation gets. AWS services' own events (Step
 * Functions status changes) come in through `deliver`.
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

/** An event as EventBridge hands it to a target. */
export interface BusEvent {
  version: string;
  id: string;
  'detail-type': string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: Record<string, unknown>;
}

export interface EventRule {
  name: string;
  /** The rule's EventPattern (exact values, prefix, anything-but, exists, nested objects). */
  pattern: Record<string, unknown>;
  /** The Lambda target, invoked with the event. */
  target: (event: BusEvent) => Promise<unknown>;
}

/** One delivery of an event to a rule's target (all attempts). */
export interface Delivery {
  rule: string;
  eventId: string;
  detailType: string;
  attempts: number;
  status: 'pending' | 'ok' | 'failed';
  error?: string;
}

export interface EventBridgeEmulator {
  url: string;
  events(): RecordedEvent[];
  /** Adds a rule; matching events (PutEvents or `deliver`) go to its target. */
  addRule(rule: EventRule): void;
  /** An AWS service's event on the default bus (e.g. a Step Functions status change). */
  deliver(event: BusEvent): void;
  deliveries(): Delivery[];
  /** Resolves when every delivery started so far has ended. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** Retries of an asynchronous Lambda invocation after a failed one, and the pause before each. */
const ASYNC_RETRIES = 2;
const RETRY_DELAY_MS = 1000;

/** Whether `event` matches an EventBridge event `pattern` (the subset the project's rules use). */
export function matchesPattern(event: unknown, pattern: Record<string, unknown>): boolean {
  if (typeof event !== 'object' || event === null) return false;
  const obj = event as Record<string, unknown>;
  for (const [key, expected] of Object.entries(pattern)) {
    const actual = obj[key];
    if (Array.isArray(expected)) {
      const values = Array.isArray(actual) ? actual : [actual];
      if (!expected.some((e) => values.some((v) => matchesValue(v, e)))) return false;
    } else if (typeof expected === 'object' && expected !== null) {
      if (!matchesPattern(actual, expected as Record<string, unknown>)) return false;
    } else {
      return false; // EventBridge requires arrays at the leaves
    }
  }
  return true;
}

function matchesValue(value: unknown, expected: unknown): boolean {
  if (typeof expected !== 'object' || expected === null) return value === expected;
  const rule = expected as Record<string, unknown>;
  if ('prefix' in rule) return typeof value === 'string' && value.startsWith(String(rule.prefix));
  if ('exists' in rule) return (value !== undefined) === rule.exists;
  if ('anything-but' in rule) {
    const but = rule['anything-but'];
    return value !== undefined && !(Array.isArray(but) ? but : [but]).includes(value);
  }
  return false;
}

/** Starts the emulator on an ephemeral loopback port. */
export async function startEventBridgeEmulator(): Promise<EventBridgeEmulator> {
  const recorded: RecordedEvent[] = [];
  const rules: EventRule[] = [];
  const deliveries: Delivery[] = [];
  const inFlight = new Set<Promise<void>>();
  let closed = false;
  const deliver = (event: BusEvent): void => {
    for (const rule of rules) {
      if (!matchesPattern(event, rule.pattern)) continue;
      const delivery: Delivery = {
        rule: rule.name,
        eventId: event.id,
        detailType: event['detail-type'],
        attempts: 0,
        status: 'pending',
      };
      deliveries.push(delivery);
      const run = (async () => {
        for (let attempt = 0; attempt <= ASYNC_RETRIES && !closed; attempt++) {
          if (attempt > 0) await new Promise((r) => setTimeout(r, RETRY_DELAY_MS));
          delivery.attempts++;
          try {
            await rule.target(structuredClone(event));
            delivery.status = 'ok';
            delete delivery.error;
            return;
          } catch (err) {
            delivery.error = `${(err as Error).name}: ${(err as Error).message}`;
          }
        }
        delivery.status = 'failed';
      })();
      inFlight.add(run);
      void run.finally(() => inFlight.delete(run));
    }
  };
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
        deliver({
          version: '0',
          id,
          'detail-type': e.DetailType ?? '',
          source: e.Source ?? '',
          account: '000000000000',
          time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
          region: 'us-east-1',
          resources: [],
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
    addRule: (rule) => {
      rules.push(rule);
    },
    deliver,
    deliveries: () => deliveries.map((d) => ({ ...d })),
    idle: async () => {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    close: () =>
      new Promise<void>((r) => {
        closed = true;
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
