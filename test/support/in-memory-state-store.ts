import { FailoverBlockedError, StaleEpochError } from '../../lib/errors.ts';
import type {
  ClusterEvent,
  ClusterState,
  FailoverRecord,
  FailoverStep,
  StateStore,
} from '../../lib/ports.ts';

type Method = keyof StateStore;

/**
 * The StateStore port in memory, with the DynamoDB adapter's conditions (the epoch claim, ending
 * only the failover of the current epoch, the lease), for fast unit tests of timelines. `failNext`
 * makes a call fail before it changes anything, as a DynamoDB 5xx or throttle would.
 */
export class InMemoryStateStore implements StateStore {
  readonly states = new Map<string, ClusterState>();
  readonly failovers = new Map<string, FailoverRecord>();
  readonly events: ClusterEvent[] = [];
  readonly calls: Method[] = [];
  private readonly leases = new Map<string, { owner: string; expiresAt: number; heartbeat?: string }>();
  private readonly heartbeats = new Map<string, { expiresAt: number; revoked: boolean }>();
  private readonly faults: Array<{ method: Method; error: () => Error; remaining: number }> = [];

  /** The next `count` calls of `method` throw `error()` before touching anything. */
  failNext(method: Method, error: () => Error, count = 1): void {
    this.faults.push({ method, error, remaining: count });
  }

  private enter(method: Method): void {
    this.calls.push(method);
    const fault = this.faults.find((f) => f.method === method && f.remaining > 0);
    if (fault) {
      fault.remaining--;
      throw fault.error();
    }
  }

  async getClusterState(cluster: string): Promise<ClusterState | undefined> {
    this.enter('getClusterState');
    const s = this.states.get(cluster);
    return s ? structuredClone(s) : undefined;
  }

  async initClusterState(initial: ClusterState): Promise<ClusterState> {
    this.enter('initClusterState');
    const existing = this.states.get(initial.cluster);
    if (existing) return structuredClone(existing);
    this.states.set(initial.cluster, structuredClone(initial));
    return structuredClone(initial);
  }

  async putHealth(
    cluster: string,
    h: Pick<ClusterState, 'analysis' | 'description' | 'topology' | 'counters' | 'updatedAt'>,
  ): Promise<void> {
    this.enter('putHealth');
    const s = this.require(cluster);
    Object.assign(s, structuredClone(h));
  }

  async acquireLease(cluster: string, owner: string, now: number, ttlMs: number, heartbeat?: string) {
    this.enter('acquireLease');
    const take = () => {
      this.leases.set(cluster, { owner, expiresAt: now + ttlMs, ...(heartbeat ? { heartbeat } : {}) });
      return { held: true, expiresAt: now + ttlMs };
    };
    const l = this.leases.get(cluster);
    if (!l || l.expiresAt < now || l.owner === owner) return take();
    if (l.heartbeat !== undefined) {
      const hb = this.heartbeats.get(l.heartbeat);
      if (!hb || hb.revoked || hb.expiresAt < now) {
        this.heartbeats.set(l.heartbeat, { expiresAt: hb?.expiresAt ?? 0, revoked: true });
        return take();
      }
    }
    return { held: false, expiresAt: this.effectiveExpiry(l) };
  }

  private effectiveExpiry(l: { expiresAt: number; heartbeat?: string }): number {
    if (l.heartbeat === undefined || l.expiresAt === 0) return l.expiresAt;
    const hb = this.heartbeats.get(l.heartbeat);
    return Math.min(l.expiresAt, hb ? hb.expiresAt : 1);
  }

  async readLease(cluster: string): Promise<{ owner?: string; expiresAt: number }> {
    this.enter('readLease');
    const l = this.leases.get(cluster);
    return l ? { owner: l.owner, expiresAt: this.effectiveExpiry(l) } : { expiresAt: 0 };
  }

  async releaseLease(cluster: string, owner: string): Promise<void> {
    this.enter('releaseLease');
    const l = this.leases.get(cluster);
    if (l?.owner === owner) l.expiresAt = 0;
  }

  async renewHeartbeat(key: string, now: number, ttlMs: number) {
    this.enter('renewHeartbeat');
    const hb = this.heartbeats.get(key);
    if (hb?.revoked) return { held: false, expiresAt: hb.expiresAt };
    this.heartbeats.set(key, { expiresAt: now + ttlMs, revoked: false });
    return { held: true, expiresAt: now + ttlMs };
  }

  async beginFailover(input: Parameters<StateStore['beginFailover']>[0]) {
    this.enter('beginFailover');
    const s = this.states.get(input.cluster);
    const epoch = input.expectedEpoch + 1;
    const free =
      s &&
      s.epoch === input.expectedEpoch &&
      !s.failoverInProgress &&
      (input.ignoreBlock || !s.blockedUntil || s.blockedUntil < input.now);
    if (!free) {
      if (s?.failoverInProgress?.executionName === input.executionName) {
        this.putRecord(input, s.failoverInProgress.epoch);
        return { epoch: s.failoverInProgress.epoch, alreadyClaimed: true };
      }
      if (s?.failoverInProgress) {
        throw new StaleEpochError(`failover ${s.failoverInProgress.executionName} is in progress`);
      }
      if (s && s.epoch === input.expectedEpoch && s.blockedUntil && s.blockedUntil >= input.now) {
        throw new FailoverBlockedError(`blocked until ${s.blockedUntil}`);
      }
      throw new StaleEpochError(
        `expected epoch ${input.expectedEpoch}, the cluster is at ${s?.epoch ?? 'none'}`,
      );
    }
    s.epoch = epoch;
    s.failoverInProgress = {
      epoch,
      executionName: input.executionName,
      startedAt: input.now,
      failedPrimary: input.failedPrimary,
    };
    s.updatedAt = input.now;
    this.putRecord(input, epoch);
    return { epoch, alreadyClaimed: false };
  }

  private putRecord(input: Parameters<StateStore['beginFailover']>[0], epoch: number): void {
    const key = `${input.cluster}#${epoch}`;
    if (this.failovers.has(key)) return;
    this.failovers.set(key, {
      cluster: input.cluster,
      epoch,
      kind: input.kind,
      incidentId: input.incidentId,
      failedPrimary: input.failedPrimary,
      status: 'running',
      startedAt: input.now,
      steps: [],
    });
  }

  async appendStep(cluster: string, epoch: number, step: FailoverStep): Promise<void> {
    this.enter('appendStep');
    const r = this.failovers.get(`${cluster}#${epoch}`);
    if (!r) throw new Error(`no failover record ${cluster}#${epoch}`);
    r.steps.push(structuredClone(step));
  }

  async getFailover(cluster: string, epoch: number): Promise<FailoverRecord | undefined> {
    this.enter('getFailover');
    const r = this.failovers.get(`${cluster}#${epoch}`);
    return r ? structuredClone(r) : undefined;
  }

  async endFailover(input: Parameters<StateStore['endFailover']>[0]): Promise<void> {
    this.enter('endFailover');
    const s = this.states.get(input.cluster);
    // Only the failover of this epoch may end it (the adapter's condition).
    if (!s || s.epoch !== input.epoch || s.failoverInProgress?.epoch !== input.epoch) return;
    const r = this.failovers.get(`${input.cluster}#${input.epoch}`);
    s.lastFailover = {
      epoch: input.epoch,
      status: input.status,
      from: input.oldPrimary,
      ...(input.newPrimary ? { to: input.newPrimary } : {}),
      startedAt: r?.startedAt ?? input.now,
      endedAt: input.now,
      ...(input.error ? { error: input.error } : {}),
    };
    s.blockedUntil = input.blockedUntil;
    s.updatedAt = input.now;
    s.counters.failovers++;
    if (input.newPrimary) {
      s.primaryId = input.newPrimary;
      s.needsRejoin = [...(s.needsRejoin ?? []), input.oldPrimary];
    }
    delete s.failoverInProgress;
    if (r) {
      r.status = input.status;
      r.endedAt = input.now;
      if (input.newPrimary) r.newPrimary = input.newPrimary;
      if (input.error) r.error = input.error;
    }
  }

  async revokeClaim(cluster: string, epoch: number, executionName: string, now: number): Promise<boolean> {
    this.enter('revokeClaim');
    const p = this.states.get(cluster)?.failoverInProgress;
    if (!p || p.epoch !== epoch || p.executionName !== executionName) return false;
    p.revokedAt ??= now;
    return true;
  }

  async setBlockedUntil(cluster: string, blockedUntil: number | null): Promise<void> {
    this.enter('setBlockedUntil');
    const s = this.require(cluster);
    if (blockedUntil === null) delete s.blockedUntil;
    else s.blockedUntil = blockedUntil;
  }

  async clearBlock(cluster: string, expected: { epoch: number; blockedUntil: number }): Promise<boolean> {
    this.enter('clearBlock');
    const s = this.states.get(cluster);
    if (!s || s.epoch !== expected.epoch || s.blockedUntil !== expected.blockedUntil || s.failoverInProgress)
      return false;
    delete s.blockedUntil;
    return true;
  }

  async removeNeedsRejoin(cluster: string, nodeId: string): Promise<boolean> {
    this.enter('removeNeedsRejoin');
    const s = this.require(cluster);
    const before = s.needsRejoin ?? [];
    s.needsRejoin = before.filter((n) => n !== nodeId);
    return s.needsRejoin.length !== before.length;
  }

  async putEvent(event: ClusterEvent): Promise<void> {
    this.enter('putEvent');
    this.events.push(structuredClone(event));
  }

  async listEvents(cluster: string, limit: number): Promise<ClusterEvent[]> {
    this.enter('listEvents');
    return this.events
      .filter((e) => e.cluster === cluster)
      .sort((a, b) => b.at - a.at)
      .slice(0, limit);
  }

  private require(cluster: string): ClusterState {
    const s = this.states.get(cluster);
    if (!s) throw new Error(`no state for ${cluster}`);
    return s;
  }
}
