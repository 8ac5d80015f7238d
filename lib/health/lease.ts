import type { Runtime } from '../runtime.ts';

export const LEASE_TTL_MS = 15_000;
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
/*
 * One heartbeat per invocation instead of one renewal per cluster lease: the invocation renews
 * its heartbeat item every LEASE_RENEW_MS, and each cluster lease it takes is linked to it and
 * runs to the invocation's deadline (+ LEASE_TAIL_MS). A lease is held while both are; so the
 * lease writes of a shard no longer grow with its clusters (one write per 5 s, plus one per
 * cluster per invocation to take and one to release).
 *
 *   holder  |hb|----|hb|----|hb|----X (dies or its store hangs)
 *   guest      read .......... read ........ lapsed: revoke hb, take lease
 *                                   ^hb expires (<= LEASE_TTL_MS after the last renewal)
 *
 * Revoking is final (the holder's renewals are conditional on "not revoked"), so the take-over
 * needs no transaction: after the revoke every lease linked to that heartbeat is free, and the
 * lease's own conditional write (still linked to it) lets only one taker have it.
 */
export class ShardHeartbeat {
  private renewedAt = 0;
  private renewing: Promise<boolean> | undefined;
  private lost = false;
  /** Until when the store says the heartbeat is ours (epoch ms). */
  heldUntil = 0;
  /** Renewals stop while a loop has been stuck longer than this (its cluster must lapse). */
  private readonly progress = new Map<object, number>();

  /**
   * @param rt the runtime (its state store holds the heartbeat item).
   * @param key this invocation (the Lambda request id).
   * @param deadline epoch ms by which this invocation stops probing.
   */
  constructor(
    private readonly rt: Runtime,
    readonly key: string,
    private readonly deadline: number,
  ) {}

  /** False for good once another invocation revoked the heartbeat (after it lapsed). */
  get alive(): boolean {
    return !this.lost;
  }

  /**
   * Renews when due (one write for every lease of the invocation, whoever asks first); false when
   * it was revoked: every lease linked to it is gone, stop probing.
   *
   * @param loop the cluster loop asking: a loop that stops asking (stuck on a hung request) for
   *   LEASE_TTL_MS - LEASE_RENEW_MS stops the renewals, so its cluster (and the invocation's
   *   others) lapse and are taken over instead of staying with a loop that does not probe.
   */
  async renewIfDue(now: number, loop?: object): Promise<boolean> {
    if (this.lost) return false;
    if (loop) this.progress.set(loop, now);
    if (now - this.renewedAt < LEASE_RENEW_MS && this.heldUntil > now) return true;
    for (const at of this.progress.values()) if (now - at > LEASE_TTL_MS - LEASE_RENEW_MS) return true;
    this.renewing ??= (async () => {
      try {
        const ttl = Math.min(LEASE_TTL_MS, this.deadline - now + LEASE_TAIL_MS);
        const r = await this.rt.store.renewHeartbeat(this.key, now, ttl);
        if (!r.held) this.lost = true;
        else {
          this.renewedAt = now;
          this.heldUntil = r.expiresAt;
        }
        return r.held;
      } finally {
        this.renewing = undefined;
      }
    })();
    return this.renewing;
  }

  /** A loop that ended: no longer waited for. */
  done(loop: object): void {
    this.progress.delete(loop);
  }
}

export class ClusterLease {
  private renewedAt = 0;
  private ownUntil = 0;

  /**
   * @param rt the runtime (its state store holds the lease item).
   * @param cluster the cluster the lease is for.
   * @param owner this invocation (the Lambda request id).
   * @param deadline epoch ms by which this invocation stops probing and releases the lease.
   * @param heartbeat the invocation's heartbeat the lease is linked to (renewed instead of the
   *   lease); without it the lease is renewed itself every LEASE_RENEW_MS.
   */
  constructor(
    private readonly rt: Runtime,
    private readonly cluster: string,
    private readonly owner: string,
    private readonly deadline: number,
    private readonly heartbeat?: ShardHeartbeat,
  ) {}

  /** Until when the store says we hold it (epoch ms): past it, another invocation may take it. */
  get heldUntil(): number {
    return this.heartbeat ? Math.min(this.ownUntil, this.heartbeat.heldUntil) : this.ownUntil;
  }

  set heldUntil(v: number) {
    this.ownUntil = v;
  }

  private ttl(now: number): number {
    const toDeadline = this.deadline - now + LEASE_TAIL_MS;
    return this.heartbeat ? toDeadline : Math.min(LEASE_TTL_MS, toDeadline);
  }

  private take(now: number) {
    return this.heartbeat
      ? this.rt.store.acquireLease(this.cluster, this.owner, now, this.ttl(now), this.heartbeat.key)
      : this.rt.store.acquireLease(this.cluster, this.owner, now, this.ttl(now));
  }

  /** Our heartbeat is current before we link a lease to it (a linked lease is held only while it is). */
  private async heartbeatReady(now: number): Promise<boolean> {
    return !this.heartbeat || (await this.heartbeat.renewIfDue(now));
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
    if (!(await this.heartbeatReady(rt.now()))) return false;
    let lease = await this.take(rt.now());
    while (!lease.held) {
      const now = rt.now();
      if (!live() || now + intervalMs >= this.deadline) return false;
      const untilHolderDeadline = lease.expiresAt - LEASE_TAIL_MS - 1500 - now;
      const pause = Math.max(LEASE_POLL_MS, untilHolderDeadline);
      await sleep(Math.min(pause, Math.max(10, this.deadline - intervalMs - now)));
      if (!(await this.heartbeatReady(rt.now()))) return false;
      lease = await this.take(rt.now());
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
    laterMs = 0,
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
          : seen.expiresAt - at + LAPSE_GRACE_MS + laterMs;
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
      if (!(await this.heartbeatReady(at))) return false;
      const taken = await this.take(at);
      if (taken.held) {
        this.renewedAt = at;
        this.heldUntil = taken.expiresAt;
        return true;
      }
      // Someone else was faster, or the holder renewed after all (a read may be shared and a
      // little old: the store's readLease): look again after a poll period, not in a tight loop.
      freeSince = undefined;
      await sleep(Math.min(LEASE_POLL_MS, Math.max(10, last)));
    }
  }

  /** Renews the lease when the renewal period has passed; false when it was lost (stop probing). */
  async renewIfDue(now: number): Promise<boolean> {
    if (this.heartbeat) return this.heartbeat.renewIfDue(now, this);
    if (now - this.renewedAt < LEASE_RENEW_MS) return true;
    const renewed = await this.rt.store.acquireLease(this.cluster, this.owner, now, this.ttl(now));
    if (!renewed.held) return false;
    this.renewedAt = now;
    this.heldUntil = renewed.expiresAt;
    return true;
  }

  /** Releases the lease (the next invocation takes over at once). */
  release(): Promise<void> {
    this.heartbeat?.done(this);
    return this.rt.store.releaseLease(this.cluster, this.owner);
  }
}
