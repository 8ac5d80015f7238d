import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clustersOfShard, shardOf } from '../../lib/health/shards.ts';
import type { StateStore } from '../../lib/ports.ts';
import { createRuntime, type Runtime } from '../../lib/runtime.ts';
import { waitFor } from '../support/wait-for.ts';
import { type LiveEnv, sleep, startLiveEnv } from './live-env.ts';

/** lease.ts: a lease lives 15 s from its last renewal; a guest takes it 0.5 s after it lapsed. */
const LEASE_TTL_MS = 15_000;
const LAPSE_GRACE_MS = 500;

/**
 * Two shards, each also watching the other's clusters. Shard 0's invocation hangs (every call to
 * its state store stalls, as a hung Lambda's would): shard 1 takes its cluster over once the
 * lease lapses, detects a kill -9 there and fails it over, and hands the cluster back to shard 0's
 * next invocation at its own deadline. Never two probe connections to one node, at the servers.
 */
describe('a dead shard is taken over within the lease TTL', () => {
  let env: LiveEnv;
  let blackhole: Server;
  const sockets = new Set<Socket>();
  const stalled: Array<() => void> = [];
  let hung = false;

  beforeAll(async () => {
    blackhole = createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', () => r()));
    env = await startLiveEnv({ name: 'takeover', probePaths: true });
  });

  afterAll(async () => {
    hung = false;
    for (const go of stalled.splice(0)) go();
    await env?.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => (blackhole ? blackhole.close(() => r()) : r()));
  });

  it("takes over a hung shard's cluster within the TTL, detects a kill -9 in it, and hands it back", async () => {
    const port = (blackhole.address() as { port: number }).port;
    const doc = JSON.parse(readFileSync(env.cloud.configFile, 'utf8')) as {
      clusters: Array<Record<string, unknown>>;
    };
    const real = doc.clusters[0]!;
    // The real cluster is on one shard of two, this one (never answering) on the other.
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
    const homeShard = shardOf(env.name, 2);
    const home = { shard: homeShard, of: 2 };
    const away = { shard: 1 - homeShard, of: 2 };
    const homeClusters = clustersOfShard(rt.config.clusters, home);
    const awayClusters = clustersOfShard(rt.config.clusters, away);
    expect(homeClusters.map((c) => c.name)).toEqual([env.name]);

    // The home shard's runtime: its state store stalls every call once `hung` (released at the end).
    const hangingStore = new Proxy(rt.store, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) =>
          hung
            ? new Promise((resolve, reject) =>
                stalled.push(() =>
                  (v as (...a: unknown[]) => Promise<unknown>).apply(target, args).then(resolve, reject),
                ),
              )
            : (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      },
    }) as StateStore;
    const rtHung = new Proxy(rt, {
      get: (t, p, r) => (p === 'store' ? hangingStore : Reflect.get(t, p, r)),
    }) as Runtime;

    env.paths!.resetStats();
    const a = env.startMonitor(60_000, {
      owner: 'home-1',
      rt: rtHung,
      clusters: homeClusters,
      watch: awayClusters,
    });
    const b = env.startMonitor(45_000, { owner: 'away-1', rt, clusters: awayClusters, watch: homeClusters });
    await waitFor(() => a.rounds.filter((r) => r.cluster === env.name).length >= 3, 10_000, 'home rounds');
    hung = true;
    const hungAt = Date.now();

    await waitFor(
      () => b.rounds.some((r) => r.cluster === env.name),
      LEASE_TTL_MS + 5000,
      'the other shard to take the cluster over',
    );
    const firstGuest = b.rounds.find((r) => r.cluster === env.name)!;
    const lastHome = a.rounds.filter((r) => r.cluster === env.name).at(-1)!;
    // Within the TTL: the lease lapses at most 15 s after the hang (it was renewed before it),
    // and the guest takes it 0.5 s later (plus one read and one write).
    expect(firstGuest.startedAt - hungAt).toBeLessThan(LEASE_TTL_MS + LAPSE_GRACE_MS + 1000);
    // Never two probers: the hung invocation's last round began before the guest's first one.
    expect(a.rounds.filter((r) => r.cluster === env.name && r.startedAt >= firstGuest.startedAt)).toEqual([]);
    expect(lastHome.startedAt).toBeLessThan(firstGuest.startedAt);
    expect(env.logs.some((e) => e.type === 'cluster-taken-over' && e.cluster === env.name)).toBe(true);

    // A kill -9 in the taken-over cluster is detected and failed over by the guest.
    await waitFor(() => b.rounds.at(-1)?.analysis.code === 'NoProblem', 5000, 'the guest to see NoProblem');
    const killedAt = Date.now();
    await env.cluster.crash('db1');
    await waitFor(
      () => b.rounds.some((r) => r.cluster === env.name && r.decision.kind === 'confirmed'),
      5000,
      'the guest to confirm the crash',
    );
    const confirmed = b.rounds.find((r) => r.cluster === env.name && r.decision.kind === 'confirmed')!;
    expect(confirmed.analysis.code).toBe('DeadPrimary');
    expect(confirmed.owner).toBe('away-1');
    expect(confirmed.endedAt - killedAt).toBeLessThan(2000);
    console.log(
      `takeover ${firstGuest.startedAt - hungAt} ms after the hang; kill -9 confirmed ${confirmed.endedAt - killedAt} ms after it`,
    );
    await waitFor(
      () => env.cloud.sfn.executions().some((e) => e.status !== 'RUNNING'),
      60_000,
      'the failover to end',
    );
    expect(env.cloud.sfn.executions().map((e) => e.status)).toEqual(['SUCCEEDED']);

    // The home shard is alive again (its next invocation): it takes the cluster back when the
    // guest's invocation ends and releases it, without a gap or a second prober.
    const a2 = env.startMonitor(30_000, { owner: 'home-2', rt, clusters: homeClusters, watch: awayClusters });
    await b.done;
    await waitFor(
      () => a2.rounds.some((r) => r.cluster === env.name),
      5000,
      'the home shard to take it back',
    );
    const lastGuest = b.rounds.filter((r) => r.cluster === env.name).at(-1)!;
    const back = a2.rounds.find((r) => r.cluster === env.name)!;
    expect(back.startedAt).toBeGreaterThanOrEqual(lastGuest.endedAt);
    // Within about one interval, as at every hand-over between invocations (the home polls).
    expect(back.startedAt - lastGuest.startedAt).toBeLessThan(1700);
    await sleep(1500);

    // The hung invocation, once its store answers again, finds its lease taken and stops.
    hung = false;
    for (const go of stalled.splice(0)) go();
    const results = await a.stop();
    expect(results.find((r) => r.cluster === env.name)?.outcome).toBe('probed');
    expect(a.rounds.filter((r) => r.cluster === env.name && r.startedAt >= firstGuest.startedAt)).toEqual([]);
    await a2.stop();
    // At the servers of the real cluster: never two probe connections to one node at once.
    for (const id of ['db1', 'db2', 'db3']) expect(env.paths!.stats(id).maxOpen).toBe(1);
  }, 150_000);
});
