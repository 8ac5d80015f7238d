import { describe, expect, it } from 'vitest';
import { ClusterLease, GUEST_OWNER_SUFFIX, RELEASED_GRACE_MS } from '../../lib/health/lease.ts';
import type { StateStore } from '../../lib/ports.ts';
import type { Runtime } from '../../lib/runtime.ts';
import { InMemoryStateStore } from '../support/in-memory-state-store.ts';

/**
 * A guest's take-over of another shard's cluster (ClusterLease.takeLapsed) on a simulated clock:
 * how often it reads while the home renews, when it takes a lapsed lease, and that it leaves a
 * released lease to the home shard for the grace period.
 */
function simulated(store: StateStore) {
  let clock = 1_000_000;
  const rt = { store, now: () => clock } as unknown as Runtime;
  const sleep = async (ms: number) => {
    clock += Math.max(1, ms);
  };
  return { rt, sleep, now: () => clock, advance: (ms: number) => (clock += ms) };
}

describe('a guest taking over a lapsed lease', () => {
  it('reads about once per 10 s while the home renews, and takes the lease 0.5 s after it lapses', async () => {
    const store = new InMemoryStateStore();
    const sim = simulated(store);
    const start = sim.now();
    const diesAt = start + 60_000;
    // The home renews every 5 s with a 15 s TTL until it dies (no release).
    const realAcquire = store.acquireLease.bind(store);
    const realRead = store.readLease.bind(store);
    let lastRenewal = -Infinity;
    store.readLease = async (cluster) => {
      const now = sim.now();
      const due = Math.min(now, diesAt);
      const renewal = start + Math.floor((due - start) / 5000) * 5000;
      if (renewal > lastRenewal) {
        await realAcquire(cluster, 'home', renewal, 15_000);
        lastRenewal = renewal;
      }
      return realRead(cluster);
    };
    let guestWrites = 0;
    store.acquireLease = async (...args) => {
      if (args[1] === 'guest') guestWrites++;
      return realAcquire(...args);
    };
    const guest = new ClusterLease(sim.rt, 'c1', 'guest', start + 120_000);
    const taken = await guest.takeLapsed(1000, () => true, sim.sleep);
    expect(taken).toBe(true);
    const reads = store.calls.filter((c) => c === 'readLease').length;
    // The home's last renewal was at 60 s: the lease lapsed at 75 s, taken 0.5 s later.
    expect(sim.now() - start).toBe(75_500);
    // 60 s of a live home cost ~6 reads, not one per second (and no write until the lapse).
    expect(reads).toBeLessThanOrEqual(9);
    console.log(`guest: ${reads} lease reads over 75 s of a live home, 1 write to take it over`);
    expect(guestWrites).toBe(1);
    expect(guest.heldUntil).toBe(start + 75_500 + 15_000);
  });

  it("takes a cluster from this shard's previous invocation (a guest too) about 2 s after its deadline", async () => {
    const store = new InMemoryStateStore();
    const sim = simulated(store);
    const start = sim.now();
    const deadline = start + 30_000;
    const realAcquire = store.acquireLease.bind(store);
    const realRead = store.readLease.bind(store);
    const g1 = `g1${GUEST_OWNER_SUFFIX}`;
    let released = false;
    let lastRenewal = -Infinity;
    // The previous guest renews every 5 s with a TTL ending 5 s past its deadline, and releases at it.
    store.readLease = async (cluster) => {
      const now = sim.now();
      if (now >= deadline && !released) {
        await store.releaseLease(cluster, g1);
        released = true;
      }
      const renewal = start + Math.floor((Math.min(now, deadline - 1) - start) / 5000) * 5000;
      if (!released && renewal > lastRenewal) {
        await realAcquire(cluster, g1, renewal, Math.min(15_000, deadline - renewal + 5000));
        lastRenewal = renewal;
      }
      return realRead(cluster);
    };
    const g2 = new ClusterLease(sim.rt, 'c1', `g2${GUEST_OWNER_SUFFIX}`, start + 90_000);
    expect(await g2.takeLapsed(1000, () => true, sim.sleep)).toBe(true);
    // Not at the old lease's expiry (deadline + 5 s): the release, plus the home's 2 s.
    expect(sim.now() - deadline).toBeGreaterThanOrEqual(RELEASED_GRACE_MS);
    expect(sim.now() - deadline).toBeLessThan(RELEASED_GRACE_MS + 500);
    expect(store.calls.filter((c) => c === 'readLease').length).toBeLessThanOrEqual(20);
  });

  it('leaves a released lease to the home shard for the grace period, and takes it when nobody does', async () => {
    const store = new InMemoryStateStore();
    const sim = simulated(store);
    await store.acquireLease('c1', 'home-1', sim.now(), 15_000);
    await store.releaseLease('c1', 'home-1');
    // The home's next invocation takes it 250 ms later, inside the grace: the guest leaves it.
    const realRead = store.readLease.bind(store);
    let reads = 0;
    store.readLease = async (cluster) => {
      reads++;
      if (reads === 2) await store.acquireLease(cluster, 'home-2', sim.now(), 15_000);
      return realRead(cluster);
    };
    const guest = new ClusterLease(sim.rt, 'c1', 'guest', sim.now() + 10_000);
    expect(await guest.takeLapsed(1000, () => true, sim.sleep)).toBe(false);
    expect((await realRead('c1')).owner).toBe('home-2');

    // Released and nobody takes it: the guest does, after the grace.
    const store2 = new InMemoryStateStore();
    const sim2 = simulated(store2);
    await store2.acquireLease('c1', 'home-1', sim2.now(), 15_000);
    await store2.releaseLease('c1', 'home-1');
    const t0 = sim2.now();
    const guest2 = new ClusterLease(sim2.rt, 'c1', 'guest', t0 + 60_000);
    expect(await guest2.takeLapsed(1000, () => true, sim2.sleep)).toBe(true);
    expect(sim2.now() - t0).toBe(RELEASED_GRACE_MS);
    expect((await store2.readLease('c1')).owner).toBe('guest');
  });
});
