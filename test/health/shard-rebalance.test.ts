import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clustersOfShard, shardOf } from '../../lib/health/shards.ts';
import { createRuntime } from '../../lib/runtime.ts';
import { type LiveEnv, sleep, startLiveEnv } from './live-env.ts';

/**
 * Going from one health-check shard to two (the schedule's fan-out changing while invocations
 * run): each cluster moves to the shard its name hashes to without a gap in its probing and never
 * with two probers at once (the cluster's lease), checked at the servers.
 */
describe('shard rebalance', () => {
  let env: LiveEnv;
  let blackhole: Server;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    blackhole = createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', () => r()));
    env = await startLiveEnv({ name: 'rebalance', probePaths: true });
  });

  afterAll(async () => {
    await env?.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => (blackhole ? blackhole.close(() => r()) : r()));
  });

  it('hands each cluster from the single invocation to its shard without a gap or a second prober', async () => {
    const port = (blackhole.address() as { port: number }).port;
    const doc = JSON.parse(readFileSync(env.cloud.configFile, 'utf8')) as {
      clusters: Array<Record<string, unknown>>;
    };
    const real = doc.clusters[0]!;
    // A second cluster on the other shard of two (its nodes never answer: AllUnreachable, no action).
    const other = ['other-a', 'other-b', 'other-c', 'other-d'].find(
      (n) => shardOf(n, 2) !== shardOf(env.name, 2),
    )!;
    doc.clusters.push({
      name: other,
      primary: 'h1',
      nodes: [
        { id: 'h1', host: '127.0.0.1', port },
        { id: 'h2', host: '127.0.0.1', port },
      ],
      credentials: real.credentials,
      vip: { provider: 'none' },
    });
    writeFileSync(env.cloud.configFile, JSON.stringify(doc));
    const rt = createRuntime(process.env, { log: (e) => env.logs.push(e) });
    const shard0 = clustersOfShard(rt.config.clusters, { shard: 0, of: 2 });
    const shard1 = clustersOfShard(rt.config.clusters, { shard: 1, of: 2 });
    expect([shard0.length, shard1.length]).toEqual([1, 1]);

    env.paths!.resetStats();
    const single = env.startMonitor(5000, { owner: 'single', rt });
    await sleep(1500);
    const s0 = env.startMonitor(9000, { owner: 'shard-0', rt, clusters: shard0 });
    const s1 = env.startMonitor(9000, { owner: 'shard-1', rt, clusters: shard1 });
    await Promise.all([single.done, s0.done, s1.done]);

    for (const [name, owner, notOwner] of [
      [shard0[0]!.name, s0, s1],
      [shard1[0]!.name, s1, s0],
    ] as const) {
      expect(notOwner.rounds.filter((r) => r.cluster === name)).toEqual([]);
      const before = single.rounds.filter((r) => r.cluster === name);
      const after = owner.rounds.filter((r) => r.cluster === name);
      expect(before.length).toBeGreaterThanOrEqual(2);
      expect(after.length).toBeGreaterThanOrEqual(2);
      const last = before.at(-1)!;
      const first = after[0]!;
      // Never two probers: the shard's first round starts after the single invocation's last ended.
      expect(first.startedAt).toBeGreaterThanOrEqual(last.endedAt);
      // No gap: within about one interval (plus the hung cluster's 1 s timeout round).
      expect(first.startedAt - last.startedAt).toBeLessThan(name === other ? 2700 : 1700);
    }
    // At the servers of the real cluster: never two probe connections to one node at once.
    for (const id of ['db1', 'db2', 'db3']) expect(env.paths!.stats(id).maxOpen).toBe(1);
  });
});
