import type { Runtime } from '../runtime.ts';

const LEASE_TTL_MS = 15_000;
const LEASE_RENEW_MS = 5_000;
/**
 * A lease never runs more than this past its holder's deadline (when the holder releases it),
 * so a waiting invocation knows when to start polling instead of polling for seconds.
 */
const LEASE_TAIL_MS = 5_000;
const LEASE_POLL_MS = 250;

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
    return true;
  }

  /** Renews the lease when the renewal period has passed; false when it was lost (stop probing). */
  async renewIfDue(now: number): Promise<boolean> {
    if (now - this.renewedAt < LEASE_RENEW_MS) return true;
    const renewed = await this.rt.store.acquireLease(this.cluster, this.owner, now, this.ttl(now));
    if (!renewed.held) return false;
    this.renewedAt = now;
    return true;
  }

  /** Releases the lease (the next invocation takes over at once). */
  release(): Promise<void> {
    return this.rt.store.releaseLease(this.cluster, this.owner);
  }
}
