import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defineTask } from '../../functions/define-task.ts';
import { PROJECT_ROOT } from '../../infra/local-cloud/packaged-functions.ts';
import { resetRuntime } from '../../lib/runtime.ts';

const ctx = (requestId: string) =>
  ({
    awsRequestId: requestId,
    functionName: 'mysql-failover-dev-probe',
    getRemainingTimeInMillis: () => 10_000,
  }) as never;

describe('logs', () => {
  const saved = { ...process.env };
  afterEach(() => {
    vi.restoreAllMocks();
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    resetRuntime();
  });

  it('are one JSON object per line with timestamp, level and the request id of their own invocation', async () => {
    Object.assign(process.env, {
      FAILOVER_CONFIG_FILE: join(PROJECT_ROOT, 'config/clusters.example.json'),
      STATE_TABLE: 'table',
      FAILOVER_QUIET: '0',
    });
    resetRuntime();
    const lines: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    const task = defineTask('Probe', async (rt, event: { n: number }) => {
      rt.log({ type: 'step', n: event.n });
      await new Promise((r) => setTimeout(r, 20 - event.n * 10));
      rt.log({ level: 'warn', type: 'late', n: event.n });
      if (event.n === 1) throw new Error('boom');
      return event.n;
    });
    // Two invocations at once in one process (as the local cloud runs them): no mixing.
    const results = await Promise.allSettled([
      task.handler({ n: 0 }, ctx('req-A')),
      task.handler({ n: 1 }, ctx('req-B')),
    ]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: 0 });
    expect(results[1]?.status).toBe('rejected');
    const parsed = lines.map((l) => {
      expect(l.endsWith('\n')).toBe(true);
      return JSON.parse(l) as Record<string, unknown>;
    });
    for (const e of parsed) {
      expect(e.timestamp).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(e.function).toBe('mysql-failover-dev-probe');
      expect(['req-A', 'req-B']).toContain(e.requestId);
    }
    const byRequest = (id: string) =>
      parsed.filter((e) => e.requestId === id).map((e) => `${e.level}:${e.type}`);
    expect(byRequest('req-A')).toEqual(['info:step', 'warn:late']);
    expect(byRequest('req-B')).toEqual(['info:step', 'warn:late', 'error:task-failed']);
  });
});
