import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../infra/local-cloud/local-cloud.ts';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import type { ClusterConfig } from '../../lib/config/schema.ts';
import { ClusterLease, LEASE_TTL_MS, ShardHeartbeat } from '../../lib/health/lease.ts';
import { runHealthCheck, WATCH_LATER_GRACE_MS } from '../../lib/health/monitor.ts';
import { clustersOfShard, secondWatchedShard, shardOf, watchedShard } from '../../lib/health/shards.ts';
import type { StateStore } from '../../lib/ports.ts';
import type { Runtime } from '../../lib/runtime.ts';
import { InMemoryStateStore } from '../support/in-memory-state-store.ts';

/**
 * One heartbeat per invocation instead of one renewal per cluster lease (lease.ts ShardHeartbeat):
 * the conditional writes against dynalite (the state table as deployed), the write count on a
 * simulated clock, and two neighbouring shards dying at once.
 */
function simulated(store: StateStore) {
  let clock = 1_000_000;
  const rt = { store, now: () => clock } as unknown as Runtime;
  const sleep = async (ms: number) => {
    clock += Math.max(1, ms);
  };
  return { rt, sleep, now: () => clock, advance: (ms: number) => (clock += ms) };
}

describe('leases linked to an invocation heartbeat, in DynamoDB', () => {
  let server: ReturnType<typeof dynalite>;
  let store: DynamoStateStore;
  let heartbeatGets = 0;

  beforeAll(async () => {
    server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
    const { port } = server.address() as { port: number };
    const client = new DynamoDBClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    });
    await client.send(
      new CreateTableCommand({
        TableName: 'state',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    // Counts GetItem requests for heartbeat items (the watchers' reads).
    client.middlewareStack.add(
      (next) => async (args) => {
        const input = (args as { input?: { Key?: { pk?: { S?: string } } } }).input;
        if (input?.Key?.pk?.S?.startsWith('HEARTBEAT#')) heartbeatGets++;
        return next(args);
      },
      { step: 'build', name: 'countHeartbeatReads' },
    );
    store = new DynamoStateStore('state', { client });
  });

  afterAll(async () => {
    await new Promise<void>((res) => server?.close(() => res()));
  });

  it('holds every linked lease while the heartbeat is renewed, and hands all of them over once it lapses', async () => {
    const t0 = Date.now();
    expect(await store.renewHeartbeat('inv-A', t0, 15_000)).toEqual({ held: true, expiresAt: t0 + 15_000 });
    for (const c of ['h1', 'h2', 'h3'])
      expect((await store.acquireLease(c, 'inv-A', t0, 65_000, 'inv-A')).held).toBe(true);

    // Renewed: nobody else takes a linked lease, and its expiry is the heartbeat's, not the lease's.
    const t1 = t0 + 10_000;
    await store.renewHeartbeat('inv-A', t1, 15_000);
    expect(await store.acquireLease('h1', 'inv-B', t1 + 5000, 65_000, 'inv-B')).toEqual({
      held: false,
      expiresAt: t1 + 15_000,
    });
    expect(await store.readLease('h2')).toEqual({ owner: 'inv-A', expiresAt: t1 + 15_000 });

    // A's renewals stop (its invocation died): past the heartbeat's expiry B takes h1. That
    // revokes A's heartbeat for good, so A's late renewal fails and its other leases are free.
    const t2 = t1 + 15_001;
    // (Takers write their own heartbeat before they link a lease to it: ClusterLease does.)
    for (const inv of ['inv-B', 'inv-C']) await store.renewHeartbeat(inv, t2, 15_000);
    expect(await store.acquireLease('h1', 'inv-B', t2, 65_000, 'inv-B')).toEqual({
      held: true,
      expiresAt: t2 + 65_000,
    });
    expect((await store.renewHeartbeat('inv-A', t1 + 5000, 15_000)).held).toBe(false);
    expect((await store.readLease('h2')).expiresAt).toBeLessThan(t2);
    // Two takers race for h2 (two watchers of a dead shard): one holds it.
    const [b, c] = await Promise.all([
      store.acquireLease('h2', 'inv-B', t2, 65_000, 'inv-B'),
      store.acquireLease('h2', 'inv-C', t2, 65_000, 'inv-C'),
    ]);
    expect([b.held, c.held].filter(Boolean)).toHaveLength(1);
    expect((await store.readLease('h2')).owner).toBe(b.held ? 'inv-B' : 'inv-C');
    // A, alive again, cannot renew (its leases are gone), nor take h1 from B's live heartbeat...
    expect((await store.renewHeartbeat('inv-A', t2 + 1000, 15_000)).held).toBe(false);
    expect((await store.acquireLease('h1', 'inv-A', t2 + 1000, 65_000, 'inv-A')).held).toBe(false);
    // ... and a release by the holder leaves the lease free at once.
    await store.releaseLease('h1', 'inv-B');
    expect(await store.readLease('h1')).toEqual({ owner: 'inv-B', expiresAt: 0 });
    expect((await store.acquireLease('h1', 'inv-D', t2 + 2000, 65_000, 'inv-D')).held).toBe(true);
  });

  it("reads a holder's heartbeat once for all the clusters its watchers look at together", async () => {
    const now = Date.now();
    await store.renewHeartbeat('inv-W', now, 15_000);
    const names = ['w1', 'w2', 'w3', 'w4'];
    for (const c of names) await store.acquireLease(c, 'inv-W', now, 65_000, 'inv-W');
    heartbeatGets = 0;
    const seen = await Promise.all(names.map((c) => store.readLease(c)));
    expect(seen.every((l) => l.owner === 'inv-W' && l.expiresAt === now + 15_000)).toBe(true);
    expect(heartbeatGets).toBe(1);
  });

  it('treats a lease linked to a heartbeat that was never written as lapsed', async () => {
    const now = Date.now();
    await store.acquireLease('orphan', 'inv-X', now, 65_000, 'inv-X-never-written');
    expect((await store.readLease('orphan')).expiresAt).toBeLessThan(now);
    expect((await store.acquireLease('orphan', 'inv-Y', now, 65_000, 'inv-Y')).held).toBe(true);
  });
});

describe('the lease writes of one invocation', () => {
  it('do not grow with its clusters: one heartbeat write per 5 s, one take and one release per cluster', async () => {
    const store = new InMemoryStateStore();
    const sim = simulated(store);
    const deadline = sim.now() + 65_000;
    const hb = new ShardHeartbeat(sim.rt, 'inv-1', deadline);
    const leases = Array.from(
      { length: 20 },
      (_, i) => new ClusterLease(sim.rt, `c${i}`, 'inv-1', deadline, hb),
    );
    for (const l of leases) expect(await l.acquire(1000, () => true, sim.sleep)).toBe(true);
    // 60 rounds of 1 s, every cluster renewing when due.
    for (let round = 0; round < 60; round++) {
      sim.advance(1000);
      for (const l of leases) {
        expect(await l.renewIfDue(sim.now())).toBe(true);
        expect(l.heldUntil).toBeGreaterThan(sim.now() + 5000);
      }
    }
    for (const l of leases) await l.release();
    const count = (m: string) => store.calls.filter((c) => c === m).length;
    expect(count('acquireLease')).toBe(20);
    expect(count('releaseLease')).toBe(20);
    // 61 s: a renewal every 5 s (13), where per-cluster leases wrote 20 x 12.
    expect(count('renewHeartbeat')).toBeLessThanOrEqual(14);
    console.log(
      `20 clusters, 61 s: ${count('renewHeartbeat')} heartbeat writes + ${count('acquireLease')} takes + ${count('releaseLease')} releases`,
    );
  });

  it('stops renewing while one of its loops is stuck, so that cluster lapses and is taken over', async () => {
    const store = new InMemoryStateStore();
    const sim = simulated(store);
    const deadline = sim.now() + 65_000;
    const hb = new ShardHeartbeat(sim.rt, 'inv-1', deadline);
    const stuck = new ClusterLease(sim.rt, 'stuck', 'inv-1', deadline, hb);
    const fine = new ClusterLease(sim.rt, 'fine', 'inv-1', deadline, hb);
    await stuck.acquire(1000, () => true, sim.sleep);
    await fine.acquire(1000, () => true, sim.sleep);
    await stuck.renewIfDue(sim.now());
    // Only `fine` keeps asking; `stuck` hangs on a request.
    for (let i = 0; i < 30; i++) {
      sim.advance(1000);
      await fine.renewIfDue(sim.now());
    }
    expect(fine.heldUntil).toBeLessThan(sim.now());
    const guest = new ClusterLease(
      sim.rt,
      'stuck',
      'inv-2#guest',
      sim.now() + 60_000,
      new ShardHeartbeat(sim.rt, 'inv-2', sim.now() + 60_000),
    );
    expect(await guest.takeLapsed(1000, () => true, sim.sleep)).toBe(true);
    // The stuck loop, when its request returns, finds the heartbeat revoked and stops.
    expect(await stuck.renewIfDue(sim.now())).toBe(false);
    expect(hb.alive).toBe(false);
  });
});

describe('two neighbouring shards dying at once', () => {
  it('leaves every cluster of both with a live watcher (3 shards or more)', () => {
    const clusters = Array.from({ length: 60 }, (_, i) => ({ name: `orders-${i}` }));
    for (const of of [3, 4, 7]) {
      for (let dead = 0; dead < of; dead++) {
        const dead2 = (dead + 1) % of;
        const alive = Array.from({ length: of }, (_, shard) => ({ shard, of })).filter(
          (a) => a.shard !== dead && a.shard !== dead2,
        );
        const watchedByAlive = new Set(
          alive.flatMap((a) =>
            [watchedShard(a), secondWatchedShard(a)].flatMap((w) =>
              w ? clustersOfShard(clusters, w).map((c) => c.name) : [],
            ),
          ),
        );
        for (const c of clusters)
          if ([dead, dead2].includes(shardOf(c.name, of))) expect(watchedByAlive.has(c.name)).toBe(true);
      }
    }
  });

  it('has the shard behind them take over the clusters of both within the lease TTL', async () => {
    const store = new InMemoryStateStore();
    const sim = simulated(store);
    const start = sim.now();
    // Shards 0 and 1 of 3 each hold their cluster through their heartbeat; both die at once.
    for (const [cluster, inv] of [
      ['of-shard-0', 'shard0-inv'],
      ['of-shard-1', 'shard1-inv'],
    ] as const) {
      const hb = new ShardHeartbeat(sim.rt, inv, start + 60_000);
      const l = new ClusterLease(sim.rt, cluster, inv, start + 60_000, hb);
      expect(await l.acquire(1000, () => true, sim.sleep)).toBe(true);
    }
    const diedAt = sim.now();
    // Shard 2 watches shard 1 (its previous) and, later, shard 0 (two back).
    const hb2 = new ShardHeartbeat(sim.rt, 'shard2-inv', start + 120_000);
    const far = new ClusterLease(sim.rt, 'of-shard-0', 'shard2-inv#guest', start + 120_000, hb2);
    expect(await far.takeLapsed(1000, () => true, sim.sleep, WATCH_LATER_GRACE_MS)).toBe(true);
    const farAt = sim.now() - diedAt;
    // The heartbeats lapse LEASE_TTL_MS after their last renewal; the far one waits its grace more.
    expect(farAt).toBe(LEASE_TTL_MS + 500 + WATCH_LATER_GRACE_MS);
    const near = new ClusterLease(sim.rt, 'of-shard-1', 'shard2-inv#guest', start + 120_000, hb2);
    expect(await near.takeLapsed(1000, () => true, sim.sleep)).toBe(true);
    const nearAt = sim.now() - diedAt;
    // Already lapsed when read: taken at once.
    expect(nearAt).toBe(farAt);
    expect((await store.readLease('of-shard-0')).owner).toBe('shard2-inv#guest');
    expect((await store.readLease('of-shard-1')).owner).toBe('shard2-inv#guest');
    console.log(`two dead neighbours: both clusters taken over ${farAt} ms after they died`);
  });
});

describe('an invocation that only watches', () => {
  it('ends by its deadline while the watched shards (near and two back) stay alive', async () => {
    const store = new InMemoryStateStore();
    const logs: Array<Record<string, unknown>> = [];
    const rt = {
      store,
      now: () => Date.now(),
      log: (e: Record<string, unknown>) => logs.push(e),
    } as unknown as Runtime;
    const cluster = (name: string) => ({ name, detection: { intervalMs: 200 } }) as unknown as ClusterConfig;
    // The watched clusters' holder renews its heartbeat throughout.
    const holderHb = new ShardHeartbeat(rt, 'holder', Date.now() + 10_000);
    for (const name of ['near', 'far'])
      await new ClusterLease(rt, name, 'holder', Date.now() + 10_000, holderHb).acquire(
        200,
        () => true,
        async () => {},
      );
    const renewals = setInterval(() => void holderHb.renewIfDue(Date.now()), 100);
    try {
      const started = Date.now();
      const results = await runHealthCheck(rt, {
        owner: 'watcher',
        deadline: started + 1500,
        clusters: [],
        watch: [cluster('near')],
        watchLater: [cluster('far')],
      });
      expect(Date.now() - started).toBeLessThan(1500 + 500);
      expect(results.map((r) => r.outcome)).toEqual(['watched', 'watched']);
      expect((await store.readLease('near')).owner).toBe('holder');
      expect((await store.readLease('far')).owner).toBe('holder');
    } finally {
      clearInterval(renewals);
    }
  });
});
