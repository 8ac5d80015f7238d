/**
 * Which health-check shard watches which cluster. The schedule fans out to K invocations, each
 * with `{ shard: i, of: K }`; a cluster belongs to the shard its name hashes to, so adding a
 * cluster moves no other cluster, and each cluster's own lease still guarantees one prober at a
 * time while K changes (the new owner waits for the old one's lease, as at every hand-over).
 * The leases of one invocation are held through one heartbeat (lease.ts ShardHeartbeat).
 */

/** One health-check invocation's share of the clusters. */
export interface ShardAssignment {
  shard: number;
  of: number;
}

/** The whole deployment in one invocation (no fan-out). */
export const SINGLE_SHARD: ShardAssignment = { shard: 0, of: 1 };

/** The most shards one deployment may fan out to (EventBridge rules and concurrency stay sane). */
export const MAX_SHARDS = 64;

/** FNV-1a of the name: stable across deployments, runtimes and config order. */
function hash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The shard (0..of-1) a cluster belongs to. */
export function shardOf(cluster: string, of: number): number {
  return of <= 1 ? 0 : hash(cluster) % of;
}

/** The clusters of `all` that shard `a` watches. */
export function clustersOfShard<T extends { name: string }>(all: readonly T[], a: ShardAssignment): T[] {
  return all.filter((c) => shardOf(c.name, a.of) === a.shard);
}

/**
 * The shard whose clusters shard `a` watches for a lapsed lease (a dead or hung invocation):
 * the previous one, in a ring. One watcher per cluster, not K - 1: the lease reads stay at about
 * one per cluster every 10 s whatever K is.
 */
export function watchedShard(a: ShardAssignment): ShardAssignment {
  return { shard: (a.shard + a.of - 1) % a.of, of: a.of };
}

/**
 * The shard two back in the ring, watched too (with 3 shards or more) and taken over a little
 * later than its nearer watcher would (monitor.ts WATCH_LATER_GRACE_MS): when two neighbouring
 * shards die at once, the one behind them still takes both over. Three in a row dying at once is
 * not covered (the third's clusters wait for their own shard's next invocation).
 */
export function secondWatchedShard(a: ShardAssignment): ShardAssignment | undefined {
  return a.of > 2 ? { shard: (a.shard + a.of - 2) % a.of, of: a.of } : undefined;
}

/**
 * Reads the shard from a health-check event: a scheduled event without one (the plain
 * `rate(1 minute)` schedule, a manual invoke) watches every cluster.
 *
 * @throws Error naming what is wrong when the event carries a shard that is not valid.
 */
export function parseShard(event: unknown): ShardAssignment {
  if (typeof event !== 'object' || event === null || !('shard' in event || 'of' in event))
    return SINGLE_SHARD;
  const { shard, of } = event as { shard?: unknown; of?: unknown };
  if (!Number.isInteger(of) || (of as number) < 1 || (of as number) > MAX_SHARDS)
    throw new Error(
      `healthCheck event: "of" must be the number of shards, a whole number from 1 to ${MAX_SHARDS} (got ${JSON.stringify(of)}). Send {"shard": i, "of": K} or no shard at all.`,
    );
  if (!Number.isInteger(shard) || (shard as number) < 0 || (shard as number) >= (of as number))
    throw new Error(
      `healthCheck event: "shard" must be a whole number from 0 to ${(of as number) - 1} (got ${JSON.stringify(shard)}). Send {"shard": i, "of": K}.`,
    );
  return { shard: shard as number, of: of as number };
}
