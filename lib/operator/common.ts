/**
 * Helpers shared by the operator actions (switchover, rejoin, check, acknowledge, plan):
 * request validation, node lookup with a useful error, and report formatting.
 */
import type { z } from 'zod';
import { formatIssues } from '../config/load-config.ts';
import type { ClusterConfig, NodeConfig } from '../config/schema.ts';
import { InvalidRequestError } from '../errors.ts';

// The operator errors live in lib/errors.ts with every other error (the state machines' contract);
// re-exported here for the operator modules that import them from this file.
export {
  OperatorRefusedError,
  SwitchoverCatchUpTimeoutError,
  SwitchoverPreCheckFailedError,
} from '../errors.ts';

/** Events written by operator actions live as long as the health check's (14 days). */
export const EVENT_TTL_SECONDS = 14 * 24 * 3600;

/**
 * Validates an operator request with `schema`; throws InvalidRequestError whose message names
 * each bad field and shows the expected shape, so the operator can fix the invoke at once.
 */
export function parseRequest<T>(action: string, schema: z.ZodType<T>, event: unknown, usage: string): T {
  const parsed = schema.safeParse(event ?? {});
  if (!parsed.success) {
    throw new InvalidRequestError(
      `Invalid ${action} request (nothing was changed):\n${formatIssues(parsed.error.issues)}\nExpected: ${usage}`,
      { action },
    );
  }
  return parsed.data;
}

/** The node's config, or InvalidRequestError listing the cluster's nodes. */
export function requireNode(c: ClusterConfig, id: string): NodeConfig {
  const n = c.nodes.find((x) => x.id === id);
  if (!n) {
    throw new InvalidRequestError(
      `Node "${id}" is not in cluster ${c.name} (nodes: ${c.nodes.map((x) => x.id).join(', ')}). Nothing was changed.`,
      { cluster: c.name, nodeId: id },
    );
  }
  return n;
}

/** A fixed-width text table for reports. */
export function formatTable(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) =>
    r
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [fmt(head), ...rows.map(fmt)];
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
