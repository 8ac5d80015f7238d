/**
 * Ports: the small interfaces the failover logic needs from the world. Adapters in
 * lib/adapters implement them against mysql2, DynamoDB, EC2 and Alibaba VPC.
 */

/** Result of a verified VIP move. */
export interface VipMoveResult {
  provider: string;
  /** The VIP address (or overlay /32) that moved. */
  address: string;
  /** Node id that holds the VIP after the move, as verified through the provider API. */
  holder: string;
  /** True when the VIP was already on `holder` and no mutating call was made. */
  alreadyThere: boolean;
  /** Provider API calls made (mutating + verifying), for the audit record. */
  apiCalls: number;
  ms: number;
}

export interface VipMoveOptions {
  /** The node that held the VIP before (the failed primary), if known. */
  fromNodeId?: string;
  /** Whether the old holder is believed dead (Alibaba: Force detach of the MASTER). */
  oldHolderDead?: boolean;
  /** Epoch ms after which the move gives up with a typed error. */
  deadline: number;
  /** Idempotency token for providers that take one (Alibaba ClientToken). */
  clientToken?: string;
  /**
   * The move is on the write path (the VIP is taken from an old primary that did not take the SQL
   * fence, and nobody is promoted until it is verified): send the mutating call at once instead of
   * reading the holder first. The verification after it is unchanged. Providers whose mutating
   * call is not idempotent for the current holder ignore it.
   */
  mutateFirst?: boolean;
}

/**
 * Moves a cluster's virtual IP between its nodes through a cloud provider's API.
 * Implementations are idempotent: moving to the current holder is a verified no-op.
 * Errors: ProviderThrottledError / ProviderTransientError (retryable, after the adapter's
 * own retries ran out), VipMoveFailedError (permanent), VipNotVerifiedError (the provider
 * never showed the new holder before the deadline). Messages never contain secrets.
 */
export interface VipMover {
  readonly provider: string;
  readonly address: string;
  /** Node id that the provider says holds the VIP now, or undefined. */
  currentHolder(): Promise<string | undefined>;
  moveTo(nodeId: string, options: VipMoveOptions): Promise<VipMoveResult>;
}

/** What the state table holds per cluster (item pk=CLUSTER#<name>, sk=STATE). */
export interface ClusterState {
  cluster: string;
  primaryId: string;
  /** Incremented by exactly one conditional write per failover; every step checks it. */
  epoch: number;
  analysis: string;
  description: string;
  /** Short per-node summary for the status report. */
  topology: Array<{
    nodeId: string;
    role: string;
    reachable: boolean;
    /** gtid_binlog_pos (primary) or gtid_current_pos, as last seen; kept while the node is unreachable. */
    gtid?: string;
    /** When the prober last reached the node (epoch ms): the time `gtid` was read. */
    seenAt?: number;
    lagSeconds?: number | null;
  }>;
  counters: { probes: number; stateChanges: number; failovers: number; blockedFailovers: number };
  failoverInProgress?: {
    epoch: number;
    executionName: string;
    startedAt: number;
    failedPrimary: string;
    /**
     * Set by the cleanup (FailoverFailed, SwitchoverAborted, ExecutionEnded) before it decides
     * anything: from then on no step of this execution makes an irreversible change.
     */
    revokedAt?: number;
  };
  lastFailover?: {
    epoch: number;
    status: 'succeeded' | 'failed';
    from: string;
    to?: string;
    startedAt: number;
    endedAt: number;
    error?: { name: string; message: string };
  };
  /** No automatic failover before this time (anti-flapping) unless acknowledged. */
  blockedUntil?: number;
  /** Old primaries that must be rejoined before they serve again. */
  needsRejoin?: string[];
  updatedAt: number;
}

export interface FailoverStep {
  name: string;
  startedAt: number;
  endedAt: number;
  result: 'ok' | 'skipped' | 'error';
  detail?: Record<string, unknown>;
  error?: { name: string; message: string };
}

export interface FailoverRecord {
  cluster: string;
  epoch: number;
  kind: 'failover' | 'switchover';
  incidentId: string;
  failedPrimary: string;
  status: 'running' | 'succeeded' | 'failed';
  startedAt: number;
  endedAt?: number;
  newPrimary?: string;
  steps: FailoverStep[];
  error?: { name: string; message: string };
}

export interface ClusterEvent {
  cluster: string;
  at: number;
  type: string;
  message: string;
  data?: Record<string, unknown>;
}

/** The state table. Conditional writes make the epoch and the lease safe under concurrency. */
export interface StateStore {
  getClusterState(cluster: string): Promise<ClusterState | undefined>;
  /** Creates the state item when absent; returns the stored one. */
  initClusterState(initial: ClusterState): Promise<ClusterState>;
  /** Writes analysis/topology/counters; never touches epoch, primary or failover fields. */
  putHealth(
    cluster: string,
    health: Pick<ClusterState, 'analysis' | 'description' | 'topology' | 'counters' | 'updatedAt'>,
  ): Promise<void>;
  /**
   * Lease for one prober per cluster; true when `owner` holds it until `now + ttlMs`.
   *
   * With `heartbeat`, the lease is linked to that invocation heartbeat (renewHeartbeat): it is
   * held only while the heartbeat is, so the holder renews one heartbeat for all its clusters
   * instead of each lease. A lease whose heartbeat lapsed is taken by revoking that heartbeat
   * first (for good: its invocation can never renew it again), then the lease, both conditional.
   * The returned expiresAt is then the earlier of the lease's and its heartbeat's.
   */
  acquireLease(
    cluster: string,
    owner: string,
    now: number,
    ttlMs: number,
    heartbeat?: string,
  ): Promise<{ held: boolean; expiresAt: number }>;
  releaseLease(cluster: string, owner: string): Promise<void>;
  /**
   * Reads a cluster's lease (consistent): its holder and effective expiry (the earlier of the
   * lease's and its linked heartbeat's; a revoked or missing heartbeat counts as lapsed);
   * expiresAt 0 when released, undefined owner when no invocation ever held it.
   */
  readLease(cluster: string): Promise<{ owner?: string; expiresAt: number }>;
  /**
   * Renews an invocation's heartbeat (created on the first call) until `now + ttlMs`; held false
   * once another invocation revoked it after it lapsed (its leases are then gone).
   */
  renewHeartbeat(key: string, now: number, ttlMs: number): Promise<{ held: boolean; expiresAt: number }>;
  /**
   * Claims epoch `expectedEpoch + 1` for a failover, when the stored epoch is `expectedEpoch`
   * and no failover is in progress. Idempotent for the same execution name.
   */
  beginFailover(input: {
    cluster: string;
    expectedEpoch: number;
    executionName: string;
    failedPrimary: string;
    incidentId: string;
    kind: 'failover' | 'switchover';
    now: number;
    ignoreBlock: boolean;
  }): Promise<{ epoch: number; alreadyClaimed: boolean }>;
  appendStep(cluster: string, epoch: number, step: FailoverStep): Promise<void>;
  getFailover(cluster: string, epoch: number): Promise<FailoverRecord | undefined>;
  /**
   * Ends the failover of `epoch` (idempotent). When `newPrimary` is given (it was promoted) it
   * becomes the truth and the old primary needs rejoin, whatever the status (a failed post hook
   * can fail a failover after the promotion).
   */
  endFailover(input: {
    cluster: string;
    epoch: number;
    status: 'succeeded' | 'failed';
    newPrimary?: string;
    oldPrimary: string;
    now: number;
    blockedUntil: number;
    error?: { name: string; message: string };
  }): Promise<void>;
  /**
   * Revokes the claim of `executionName` on epoch `epoch` (conditional: it still holds it); the
   * claim stays in place until endFailover, but the irreversible steps refuse it from now on.
   * True when the claim is revoked (now or before); false when the execution holds no claim.
   */
  revokeClaim(cluster: string, epoch: number, executionName: string, now: number): Promise<boolean>;
  setBlockedUntil(cluster: string, blockedUntil: number | null): Promise<void>;
  /**
   * Removes the anti-flap block only if the state is still what the caller read: the same epoch,
   * the same blockedUntil and no failover in progress (a failover ending in between sets its own
   * block, which must stay). False when the condition failed; nothing was changed then.
   */
  clearBlock(cluster: string, expected: { epoch: number; blockedUntil: number }): Promise<boolean>;
  /** Removes `nodeId` from needsRejoin (a rejoined node); false when it was not listed. */
  removeNeedsRejoin(cluster: string, nodeId: string): Promise<boolean>;
  putEvent(event: ClusterEvent, ttlSeconds: number): Promise<void>;
  listEvents(cluster: string, limit: number): Promise<ClusterEvent[]>;
}
