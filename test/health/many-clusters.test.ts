import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../lib/runtime.ts';
import { type LiveEnv, startLiveEnv } from './live-env.ts';

/**
 * One deployment watches many clusters. A second cluster whose nodes accept TCP and never
 * answer (every probe waits for its full timeout) must not slow the probing of the first.
 */
describe('probing several clusters', () => {
  let env: LiveEnv;
  let blackhole: Server;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    blackhole = createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', () => r()));
    env = await startLiveEnv({ name: 'fast' });
  });

  afterAll(async () => {
    await env?.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => (blackhole ? blackhole.close(() => r()) : r()));
  });

  it('keeps the one-second cadence on a healthy cluster while another cluster times out on every probe', async () => {
    const port = (blackhole.address() as { port: number }).port;
    const doc = JSON.parse(readFileSync(env.cloud.configFile, 'utf8')) as {
      clusters: Array<Record<string, unknown>>;
    };
    const fast = doc.clusters[0]!;
    doc.clusters.push({
      name: 'hung',
      primary: 'h1',
      nodes: [
        { id: 'h1', host: '127.0.0.1', port },
        { id: 'h2', host: '127.0.0.1', port },
      ],
      credentials: fast.credentials,
      vip: { provider: 'none' },
    });
    writeFileSync(env.cloud.configFile, JSON.stringify(doc));
    const rt = createRuntime(process.env, { log: (e) => env.logs.push(e) });
    expect(rt.config.clusters.map((c) => c.name)).toEqual(['fast', 'hung']);

    const m = env.startMonitor(6500, { rt });
    const results = await m.done;
    const fastRounds = m.rounds.filter((r) => r.cluster === 'fast');
    const hungRounds = m.rounds.filter((r) => r.cluster === 'hung');

    expect(results.map((r) => r.outcome)).toEqual(['probed', 'probed']);
    // The hung cluster: every probe ran into its timeout, nothing reachable, no action.
    expect(hungRounds.length).toBeGreaterThanOrEqual(2);
    for (const r of hungRounds) {
      expect(r.analysis.code).toBe('AllUnreachable');
      expect(r.endedAt - r.startedAt).toBeGreaterThanOrEqual(900);
    }
    expect(results.find((r) => r.cluster === 'hung')?.failoversStarted).toEqual([]);
    // The healthy cluster kept its cadence: about one round a second, all NoProblem.
    expect(fastRounds.length).toBeGreaterThanOrEqual(5);
    for (const r of fastRounds) expect(r.analysis.code).toBe('NoProblem');
    const gaps = fastRounds.slice(1).map((r, i) => r.startedAt - fastRounds[i]!.startedAt);
    expect(Math.max(...gaps)).toBeLessThan(1500);
    expect(env.cloud.sfn.executions()).toEqual([]);
  });
});
