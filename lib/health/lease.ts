import type { Runtime } from '../runtime.ts';

const LEASE_TTL_MS = 15_000;
const LEASE_RENEW_MS = 5_000;
/**
 * A lease never runs more than this past its holder's deadline (when the holder releases it),
 * so a waiting invocation knows when to start polling instead of polling for seconds.
 */
const LEASE_TAIL_MS = 5_000;
const LEASE_POLL_MS = 250;
/** Appended to a guest's owner (another shard's invocation holding the lease after a lapse). */
export const GUEST_OWNER_SUFFIX = '#guest';
/** A guest takes a lapsed lease this long after its expiry (clock skew between invocations). */
const LAPSE_GRACE_MS = 500;
/** A released (or never held) lease is the home shard's for this long before a guest takes it. */
export const RELEASED_GRACE_MS = 2000;
/**
 * A holder that could not renew closes its probe connections this long before its lease
 * expires (monitor.ts): a guest that takes the lapsed lease never meets them at the servers.
 */
export const SELF_FENCE_MS = 1000;

/*
 * Lease hand-over between scheduled invocations (rate 1 minute, each probing ~65 s):
 *
 *   inv A  |--probing------------------------------------|release
 *   inv B                                 |sleep...|poll.|--probing---- ...
 *          0s                            60s            66s
 *
 * A's lease expires LEASE_TAIL_MS after A's deadline (A renews it with that bound), so B sleeps
 * until shortly before A's deadline and then polls every 250 ms: neither a gap nor two probers,
 * and a handful of conditional writes per hand-over instead of a poll every 250 ms for 6 s.
 * A crashed prober's lease expires after at most LEASE_TTL_MS.
 */
export class ClusterLease {
  private renewedAt = 0;
  /** Until when the store says we hold it (epoch ms): past it, another invocation may take it. */
  heldUntil = 0;

  /**
   * @param rt the runtime (its state store holds the lease item).
   * @param cluster the cluster the lease is for.
   * @param owner this invocation (the Lambda request id).
   * @param deadline epoch ms by which this invocation stops probing and releases the lease.
   */
  constructor(
    private readonly rt: Runtime,
    private readonly cluster: string,
    private readonly owner: string,
    private readonly deadline: number,
  ) {}

  private ttl(now: number): number {
    return Math.min(LEASE_TTL_MS, this.deadline - now + LEASE_TAIL_MS);
  }

  /**
   * Takes the lease, waiting for the current holder's hand-over when there is one.
   *
   * @returns false when it stays held elsewhere until too close to our deadline (or `live()`
   *   turns false): this invocation then does not probe the cluster.
   */
  async acquire(
    intervalMs: number,
    live: () => boolean,
    sleep: (ms: number) => Promise<void>,
  ): Promise<boolean> {
    const { rt } = this;
    let lease = await rt.store.acquireLease(this.cluster, this.owner, rt.now(), this.ttl(rt.now()));
    while (!lease.held) {
      const now = rt.now();
      if (!live() || now + intervalMs >= this.deadline) return false;
      const untilHolderDeadline = lease.expiresAt - LEASE_TAIL_MS - 1500 - now;
      const pause = Math.max(LEASE_POLL_MS, untilHolderDeadline);
      await sleep(Math.min(pause, Math.max(10, this.deadline - intervalMs - now)));
      lease = await rt.store.acquireLease(this.cluster, this.owner, rt.now(), this.ttl(rt.now()));
    }
    this.renewedAt = rt.now();
    this.heldUntil = lease.expiresAt;
    return true;
  }

  /**
   * A guest's take-over (a cluster outside this invocation's shard): waits until the cluster's
   * lease lapsed, i.e. its holder stopped renewing it (died, hung) without releasing it, and takes
   * it. A released lease (expiresAt 0, a hand-over between invocations) or one never held is left
   * to the home shard for {@link RELEASED_GRACE_MS}: its next invocation polls every 250 ms and
   * takes it first. Reads the lease once per expiry (about every 10 s while the holder renews),
   * never writes until it has lapsed.
   *
   * @returns true once this invocation holds the lease; false at the deadline or when `live()` turns false.
   */
  async takeLapsed(
    intervalMs: number,
    live: () => boolean,
    sleep: (ms: number) => Promise<void>,
  ): Promise<boolean> {
    const { rt } = this;
    let freeSince: number | undefined;
    for (;;) {
      const now = rt.now();
      if (!live() || now + intervalMs >= this.deadline) return false;
      const last = this.deadline - intervalMs - now;
      const seen = await rt.store.readLease(this.cluster);
      const at = rt.now();
      if (seen.expiresAt > at) {
        freeSince = undefined;
        // Another guest (this shard's previous invocation) hands it over at its deadline, LEASE_TAIL_MS
        // before its lease expires: be there as a waiting home invocation is, instead of at the expiry.
        const wait = seen.owner?.endsWith(GUEST_OWNER_SUFFIX)
          ? Math.max(LEASE_POLL_MS, seen.expiresAt - LEASE_TAIL_MS - 1500 - at)
          : seen.expiresAt - at + LAPSE_GRACE_MS;
        await sleep(Math.min(wait, last));
        continue;
      }
      // Lapsed while held: the holder is gone. Released or never held: give its home the grace.
      const lapsed = seen.expiresAt > 0;
      if (!lapsed && (freeSince === undefined || at - freeSince < RELEASED_GRACE_MS)) {
        freeSince ??= at;
        await sleep(Math.min(freeSince + RELEASED_GRACE_MS - at, last));
        continue;
      }
      const taken = await rt.store.acquireLease(this.cluster, this.owner, at, this.ttl(at));
      if (taken.held) {
        this.renewedAt = at;
        this.heldUntil = taken.expiresAt;
        return true;
      }
      freeSince = undefined;
    }
  }

  /** Renews the lease when the renewal period has passed; false when it was lost (stop probing). */
  async renewIfDue(now: number): Promise<boolean> {
    if (now - this.renewedAt < LEASE_RENEW_MS) return true;
    const renewed = await this.rt.store.acquireLease(this.cluster, this.owner, now, this.ttl(now));
    if (!renewed.held) return false;
    this.renewedAt = now;
    this.heldUntil = renewed.expiresAt;
    return true;
  }

  /** Releases the lease (the next invocation takes over at once). */
  release(): Promise<void> {
    return this.rt.store.releaseLease(this.cluster, this.owner);
  }
}
