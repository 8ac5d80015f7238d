import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { FailoverBlockedError, StaleEpochError, StateStoreUnavailableError } from '../errors.ts';
import type { ClusterEvent, ClusterState, FailoverRecord, FailoverStep, StateStore } from '../ports.ts';
import { boundedRequests } from './sdk/bounded.ts';

const pk = (cluster: string) => `CLUSTER#${cluster}`;
/** An invocation's heartbeat item (one per health-check invocation, for all the leases it holds). */
const heartbeatPk = (key: string) => `HEARTBEAT#${key}`;
/** Heartbeat items are removed by the table's TTL a day after their last write (epoch seconds). */
/** How long readLease shares one read of a heartbeat among the watchers of its clusters. */
const HEARTBEAT_READ_SHARE_MS = 250;
const heartbeatItemTtl = (now: number) => Math.floor(now / 1000) + 24 * 3600;
const failoverSk = (epoch: number) => `FAILOVER#${String(epoch).padStart(8, '0')}`;

/**
 * The state table on DynamoDB (one table, pk/sk):
 *   CLUSTER#c / STATE            the cluster's state (epoch, primary, analysis, block, ...)
 *   CLUSTER#c / LEASE            the prober lease (linked to its holder's heartbeat)
 *   HEARTBEAT#<invocation> / HEARTBEAT  a health-check invocation's heartbeat, for all its leases
 *   CLUSTER#c / FAILOVER#<epoch> one audit record per failover, steps appended
 *   CLUSTER#c / EVENT#<ts>#<n>   state changes, expiring through the `expiresAt` TTL attribute
 */
/** Bound of one DynamoDB request attempt, request and response (DynamoDB answers in milliseconds). */
export const STORE_REQUEST_TIMEOUT_MS = 2000;

export class DynamoStateStore implements StateStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    private readonly tableName: string,
    options: { client?: DynamoDBClient } = {},
  ) {
    const client =
      options.client ??
      // No request may hang: see boundedRequests (a stuck loop would lapse the whole invocation).
      new DynamoDBClient(boundedRequests(STORE_REQUEST_TIMEOUT_MS));
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  async getClusterState(cluster: string): Promise<ClusterState | undefined> {
    const r = await guard(
      this.doc.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { pk: pk(cluster), sk: 'STATE' },
          ConsistentRead: true,
        }),
      ),
    );
    return r.Item ? stripKeys<ClusterState>(r.Item) : undefined;
  }

  async initClusterState(initial: ClusterState): Promise<ClusterState> {
    try {
      await guard(
        this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: { pk: pk(initial.cluster), sk: 'STATE', ...initial },
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        ),
      );
      return initial;
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      const existing = await this.getClusterState(initial.cluster);
      if (!existing) throw err;
      return existing;
    }
  }

  async putHealth(
    cluster: string,
    h: Pick<ClusterState, 'analysis' | 'description' | 'topology' | 'counters' | 'updatedAt'>,
  ): Promise<void> {
    await guard(
      this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: pk(cluster), sk: 'STATE' },
          UpdateExpression:
            'SET analysis = :a, description = :d, topology = :t, counters = :c, updatedAt = :u',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: {
            ':a': h.analysis,
            ':d': h.description,
            ':t': h.topology,
            ':c': h.counters,
            ':u': h.updatedAt,
          },
        }),
      ),
    );
  }

  async acquireLease(
    cluster: string,
    owner: string,
    now: number,
    ttlMs: number,
    heartbeat?: string,
  ): Promise<{ held: boolean; expiresAt: number }> {
    const expiresAt = now + ttlMs;
    // Takes the lease when `condition` holds; links it to our heartbeat (or unlinks it).
    const take = async (
      condition: string,
      values: Record<string, unknown>,
      names: Record<string, string>,
    ) => {
      try {
        await guard(
          this.doc.send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: { pk: pk(cluster), sk: 'LEASE' },
              UpdateExpression: heartbeat
                ? 'SET #o = :o, leaseExpiresAt = :e, hb = :hb'
                : 'SET #o = :o, leaseExpiresAt = :e REMOVE hb',
              ConditionExpression: condition,
              ExpressionAttributeNames: { '#o': 'owner', ...names },
              ExpressionAttributeValues: {
                ':o': owner,
                ':e': expiresAt,
                ...(heartbeat ? { ':hb': heartbeat } : {}),
                ...values,
              },
            }),
          ),
        );
        return true;
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
        return false;
      }
    };
    if (await take('attribute_not_exists(pk) OR leaseExpiresAt < :now OR #o = :o', { ':now': now }, {}))
      return { held: true, expiresAt };
    const seen = await this.readLeaseItem(cluster);
    if (seen.heartbeat !== undefined && seen.owner !== undefined && seen.leaseExpiresAt > 0) {
      const hb = await this.readHeartbeat(seen.heartbeat);
      const lapsed = !hb || hb.revoked || hb.expiresAt < now;
      // Revoked for good first (its invocation can never renew it again, so it stops probing
      // everything it held through it), then this lease, only while still linked to it: two
      // conditional writes, safe in this order without a transaction.
      if (lapsed && (hb?.revoked || (await this.revokeHeartbeat(seen.heartbeat, now)))) {
        const linked = await take('#o = :x AND hb = :h', { ':x': seen.owner, ':h': seen.heartbeat }, {});
        if (linked) return { held: true, expiresAt };
      }
      return { held: false, expiresAt: Math.min(seen.leaseExpiresAt, hb && !hb.revoked ? hb.expiresAt : 1) };
    }
    return { held: false, expiresAt: seen.leaseExpiresAt };
  }

  private async readLeaseItem(
    cluster: string,
  ): Promise<{ owner?: string; leaseExpiresAt: number; heartbeat?: string }> {
    const r = await guard(
      this.doc.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { pk: pk(cluster), sk: 'LEASE' },
          ConsistentRead: true,
        }),
      ),
    );
    const owner = r.Item?.owner;
    const hb = r.Item?.hb;
    return {
      ...(typeof owner === 'string' ? { owner } : {}),
      leaseExpiresAt: Number(r.Item?.leaseExpiresAt ?? 0),
      ...(typeof hb === 'string' ? { heartbeat: hb } : {}),
    };
  }

  private async readHeartbeat(key: string): Promise<{ expiresAt: number; revoked: boolean } | undefined> {
    const r = await guard(
      this.doc.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { pk: heartbeatPk(key), sk: 'HEARTBEAT' },
          ConsistentRead: true,
        }),
      ),
    );
    if (!r.Item) return undefined;
    return { expiresAt: Number(r.Item.hbExpiresAt ?? 0), revoked: r.Item.revoked === true };
  }

  /** Marks a lapsed (or never written) heartbeat revoked; false when it was renewed meanwhile. */
  private async revokeHeartbeat(key: string, now: number): Promise<boolean> {
    try {
      await guard(
        this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { pk: heartbeatPk(key), sk: 'HEARTBEAT' },
            UpdateExpression: 'SET revoked = :t, expiresAt = :ttl',
            ConditionExpression: 'attribute_not_exists(pk) OR hbExpiresAt < :now OR revoked = :t',
            ExpressionAttributeValues: { ':t': true, ':now': now, ':ttl': heartbeatItemTtl(now) },
          }),
        ),
      );
      return true;
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      return false;
    }
  }

  async renewHeartbeat(
    key: string,
    now: number,
    ttlMs: number,
  ): Promise<{ held: boolean; expiresAt: number }> {
    const expiresAt = now + ttlMs;
    try {
      await guard(
        this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { pk: heartbeatPk(key), sk: 'HEARTBEAT' },
            UpdateExpression: 'SET hbExpiresAt = :e, expiresAt = :ttl',
            ConditionExpression: 'attribute_not_exists(revoked)',
            ExpressionAttributeValues: { ':e': expiresAt, ':ttl': heartbeatItemTtl(now) },
          }),
        ),
      );
      return { held: true, expiresAt };
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      return { held: false, expiresAt: 0 };
    }
  }

  /**
   * Heartbeat reads for readLease, shared for HEARTBEAT_READ_SHARE_MS: the watchers of one
   * holder's clusters all wake at its heartbeat's expiry, so one read serves them all instead of
   * one per cluster. Only waits are decided on it; a take-over reads again (acquireLease).
   */
  private readonly sharedHeartbeatReads = new Map<
    string,
    { at: number; read: Promise<{ expiresAt: number; revoked: boolean } | undefined> }
  >();

  private readHeartbeatShared(key: string): Promise<{ expiresAt: number; revoked: boolean } | undefined> {
    const now = Date.now();
    const hit = this.sharedHeartbeatReads.get(key);
    if (hit && now - hit.at < HEARTBEAT_READ_SHARE_MS) return hit.read;
    for (const [k, v] of this.sharedHeartbeatReads)
      if (now - v.at >= HEARTBEAT_READ_SHARE_MS) this.sharedHeartbeatReads.delete(k);
    const read = this.readHeartbeat(key);
    read.catch(() => this.sharedHeartbeatReads.delete(key));
    this.sharedHeartbeatReads.set(key, { at: now, read });
    return read;
  }

  async readLease(cluster: string): Promise<{ owner?: string; expiresAt: number }> {
    const seen = await this.readLeaseItem(cluster);
    let expiresAt = seen.leaseExpiresAt;
    if (seen.heartbeat !== undefined && expiresAt > 0) {
      const hb = await this.readHeartbeatShared(seen.heartbeat);
      expiresAt = Math.min(expiresAt, hb && !hb.revoked ? hb.expiresAt : 1);
    }
    return { ...(seen.owner !== undefined ? { owner: seen.owner } : {}), expiresAt };
  }

  async releaseLease(cluster: string, owner: string): Promise<void> {
    try {
      await guard(
        this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { pk: pk(cluster), sk: 'LEASE' },
            UpdateExpression: 'SET leaseExpiresAt = :zero',
            ConditionExpression: '#o = :o',
            ExpressionAttributeNames: { '#o': 'owner' },
            ExpressionAttributeValues: { ':o': owner, ':zero': 0 },
          }),
        ),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  async beginFailover(
    input: Parameters<StateStore['beginFailover']>[0],
  ): Promise<{ epoch: number; alreadyClaimed: boolean }> {
    const epoch = input.expectedEpoch + 1;
    const inProgress = {
      epoch,
      executionName: input.executionName,
      startedAt: input.now,
      failedPrimary: input.failedPrimary,
    };
    try {
      await guard(
        this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { pk: pk(input.cluster), sk: 'STATE' },
            UpdateExpression: 'SET epoch = :next, failoverInProgress = :p, updatedAt = :now',
            ConditionExpression: input.ignoreBlock
              ? 'epoch = :expected AND attribute_not_exists(failoverInProgress)'
              : 'epoch = :expected AND attribute_not_exists(failoverInProgress) AND (attribute_not_exists(blockedUntil) OR blockedUntil < :now)',
            ExpressionAttributeValues: {
              ':next': epoch,
              ':expected': input.expectedEpoch,
              ':p': inProgress,
              ':now': input.now,
            },
          }),
        ),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      const state = await this.getClusterState(input.cluster);
      // A retried or duplicated BeginFailover of the same execution: the claim is ours already.
      if (state?.failoverInProgress?.executionName === input.executionName) {
        await this.putFailoverRecord(input, state.failoverInProgress.epoch);
        return { epoch: state.failoverInProgress.epoch, alreadyClaimed: true };
      }
      if (state?.failoverInProgress) {
        throw new StaleEpochError(
          `Failover of ${input.cluster} refused: failover ${state.failoverInProgress.executionName} (epoch ${state.failoverInProgress.epoch}) is in progress.`,
          { cluster: input.cluster, inProgress: state.failoverInProgress },
        );
      }
      if (
        state &&
        state.epoch === input.expectedEpoch &&
        state.blockedUntil &&
        state.blockedUntil >= input.now
      ) {
        throw new FailoverBlockedError(
          `Failover of ${input.cluster} refused: blocked until ${new Date(state.blockedUntil).toISOString()} after the last failover. ` +
            `Run "serverless invoke -f acknowledge --data '{"cluster":"${input.cluster}"}'" after checking the cluster.`,
          { cluster: input.cluster, blockedUntil: state.blockedUntil },
        );
      }
      throw new StaleEpochError(
        `Failover of ${input.cluster} refused: expected epoch ${input.expectedEpoch} but the cluster is at epoch ${state?.epoch ?? 'none'} (another failover already happened).`,
        { cluster: input.cluster, expected: input.expectedEpoch, actual: state?.epoch },
      );
    }
    await this.putFailoverRecord(input, epoch);
    return { epoch, alreadyClaimed: false };
  }

  private async putFailoverRecord(
    input: Parameters<StateStore['beginFailover']>[0],
    epoch: number,
  ): Promise<void> {
    const record: FailoverRecord = {
      cluster: input.cluster,
      epoch,
      kind: input.kind,
      incidentId: input.incidentId,
      failedPrimary: input.failedPrimary,
      status: 'running',
      startedAt: input.now,
      steps: [],
    };
    try {
      await guard(
        this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: { pk: pk(input.cluster), sk: failoverSk(epoch), ...record },
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        ),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  async appendStep(cluster: string, epoch: number, step: FailoverStep): Promise<void> {
    await guard(
      this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: pk(cluster), sk: failoverSk(epoch) },
          UpdateExpression: 'SET steps = list_append(if_not_exists(steps, :empty), :s)',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':s': [step], ':empty': [] },
        }),
      ),
    );
  }

  async getFailover(cluster: string, epoch: number): Promise<FailoverRecord | undefined> {
    const r = await guard(
      this.doc.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { pk: pk(cluster), sk: failoverSk(epoch) },
          ConsistentRead: true,
        }),
      ),
    );
    return r.Item ? stripKeys<FailoverRecord>(r.Item) : undefined;
  }

  async endFailover(input: Parameters<StateStore['endFailover']>[0]): Promise<void> {
    const record = await this.getFailover(input.cluster, input.epoch);
    const last = {
      epoch: input.epoch,
      status: input.status,
      from: input.oldPrimary,
      ...(input.newPrimary ? { to: input.newPrimary } : {}),
      startedAt: record?.startedAt ?? input.now,
      endedAt: input.now,
      ...(input.error ? { error: input.error } : {}),
    };
    const values: Record<string, unknown> = {
      ':e': input.epoch,
      ':last': last,
      ':b': input.blockedUntil,
      ':now': input.now,
      ':one': 1,
      ':zero': 0,
    };
    let set =
      'lastFailover = :last, blockedUntil = :b, updatedAt = :now, counters.failovers = if_not_exists(counters.failovers, :zero) + :one';
    // A promoted candidate is the truth even when the failover counts as failed afterwards
    // (a post hook under policy 'fail'): it is writable and behind the VIP.
    if (input.newPrimary) {
      set += ', primaryId = :np, needsRejoin = list_append(if_not_exists(needsRejoin, :emptyList), :old)';
      values[':np'] = input.newPrimary;
      // Only here: DynamoDB rejects expression values that the expression does not use.
      values[':old'] = [input.oldPrimary];
      values[':emptyList'] = [];
    }
    try {
      // Only the failover of this epoch may end it: a stale or duplicated execution changes nothing.
      await guard(
        this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { pk: pk(input.cluster), sk: 'STATE' },
            UpdateExpression: `SET ${set} REMOVE failoverInProgress`,
            ConditionExpression: 'epoch = :e AND failoverInProgress.epoch = :e',
            ExpressionAttributeValues: values,
          }),
        ),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      return; // already ended (a retried step) or superseded
    }
    await guard(
      this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: pk(input.cluster), sk: failoverSk(input.epoch) },
          UpdateExpression: `SET #s = :s, endedAt = :now${input.newPrimary ? ', newPrimary = :np' : ''}${input.error ? ', #err = :err' : ''}`,
          ExpressionAttributeNames: { '#s': 'status', ...(input.error ? { '#err': 'error' } : {}) },
          ExpressionAttributeValues: {
            ':s': input.status,
            ':now': input.now,
            ...(input.newPrimary ? { ':np': input.newPrimary } : {}),
            ...(input.error ? { ':err': input.error } : {}),
          },
        }),
      ),
    );
  }

  async revokeClaim(cluster: string, epoch: number, executionName: string, now: number): Promise<boolean> {
    try {
      await guard(
        this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { pk: pk(cluster), sk: 'STATE' },
            // A revoke that already landed keeps its time: the cleanup's wait counts from the first.
            UpdateExpression:
              'SET failoverInProgress.revokedAt = if_not_exists(failoverInProgress.revokedAt, :now)',
            ConditionExpression: 'failoverInProgress.epoch = :e AND failoverInProgress.executionName = :n',
            ExpressionAttributeValues: { ':e': epoch, ':n': executionName, ':now': now },
          }),
        ),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  async setBlockedUntil(cluster: string, blockedUntil: number | null): Promise<void> {
    await guard(
      this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: pk(cluster), sk: 'STATE' },
          ...(blockedUntil === null
            ? { UpdateExpression: 'REMOVE blockedUntil' }
            : {
                UpdateExpression: 'SET blockedUntil = :b',
                ExpressionAttributeValues: { ':b': blockedUntil },
              }),
          ConditionExpression: 'attribute_exists(pk)',
        }),
      ),
    );
  }

  async clearBlock(cluster: string, expected: { epoch: number; blockedUntil: number }): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: pk(cluster), sk: 'STATE' },
          UpdateExpression: 'REMOVE blockedUntil',
          ConditionExpression:
            'attribute_exists(pk) AND epoch = :e AND blockedUntil = :b AND attribute_not_exists(failoverInProgress)',
          ExpressionAttributeValues: { ':e': expected.epoch, ':b': expected.blockedUntil },
        }),
      );
      return true;
    } catch (err) {
      if ((err as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw err;
    }
  }

  async removeNeedsRejoin(cluster: string, nodeId: string): Promise<boolean> {
    // DynamoDB cannot remove a list element by value: remove it by index, on the condition that
    // the index still holds it (a failover may change the list meanwhile); repeat for duplicates.
    let removed = false;
    for (let attempt = 0; attempt < 10; attempt++) {
      const state = await this.getClusterState(cluster);
      const index = (state?.needsRejoin ?? []).indexOf(nodeId);
      if (index < 0) return removed;
      try {
        await guard(
          this.doc.send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: { pk: pk(cluster), sk: 'STATE' },
              UpdateExpression: `REMOVE needsRejoin[${index}]`,
              ConditionExpression: `needsRejoin[${index}] = :n`,
              ExpressionAttributeValues: { ':n': nodeId },
            }),
          ),
        );
        removed = true;
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
      }
    }
    throw new Error(`Failed to remove ${nodeId} from needsRejoin of ${cluster}: the list kept changing`);
  }

  private eventSeq = 0;

  async putEvent(event: ClusterEvent, ttlSeconds: number): Promise<void> {
    this.eventSeq = (this.eventSeq + 1) % 1000;
    await guard(
      this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk: pk(event.cluster),
            sk: `EVENT#${String(event.at).padStart(15, '0')}#${String(this.eventSeq).padStart(3, '0')}`,
            ...event,
            expiresAt: Math.floor(event.at / 1000) + ttlSeconds,
          },
        }),
      ),
    );
  }

  async listEvents(cluster: string, limit: number): Promise<ClusterEvent[]> {
    const r = await guard(
      this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :p AND begins_with(sk, :e)',
          ExpressionAttributeValues: { ':p': pk(cluster), ':e': 'EVENT#' },
          ScanIndexForward: false,
          Limit: limit,
        }),
      ),
    );
    return (r.Items ?? []).map((i) => {
      const { expiresAt: _x, ...rest } = stripKeys<ClusterEvent & { expiresAt?: number }>(i);
      return rest;
    });
  }
}

// Throttling after the SDK's own retries, and what a DynamoDB request can end in without an answer.
const TRANSIENT_NAMES = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'LimitExceededException',
  'TransactionConflictException',
  'InternalServerError',
  'ServiceUnavailable',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
]);
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * Translates what the state table cannot have answered (5xx, throttling, timeouts, dropped
 * connections) into StateStoreUnavailableError, which the state machines retry; everything else
 * (a failed condition, a validation error) is rethrown as it is.
 */
export function translateStoreError(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof StateStoreUnavailableError) return err;
  const e = err as Error & { code?: string; $metadata?: { httpStatusCode?: number }; $fault?: string };
  const status = e.$metadata?.httpStatusCode;
  const transient =
    TRANSIENT_NAMES.has(e.name) ||
    (e.code !== undefined && TRANSIENT_CODES.has(e.code)) ||
    (status !== undefined && status >= 500) ||
    (e.$fault === 'server' && !(err instanceof ConditionalCheckFailedException));
  if (!transient) return err;
  return new StateStoreUnavailableError(
    `The state table did not answer (${e.name}${status ? `, HTTP ${status}` : ''}): ${e.message.slice(0, 200)}`,
    { error: e.name, ...(status ? { httpStatusCode: status } : {}) },
    { cause: err },
  );
}

async function guard<T>(request: Promise<T>): Promise<T> {
  try {
    return await request;
  } catch (err) {
    throw translateStoreError(err);
  }
}

function stripKeys<T>(item: Record<string, unknown>): T {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest as T;
}
