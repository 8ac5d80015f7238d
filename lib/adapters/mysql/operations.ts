/**
 * Named MySQL/MariaDB operations (orchestrator's `inst.*`): what the failover steps, switchover
 * and rejoin ask of a node, in their words (followPrimary, applyRelayLog, setReadOnly, ...).
 * The SQL lives in the node's dialect (./dialect); this layer runs it on a session, in order,
 * and turns driver failures into typed errors that never carry SQL text or a password.
 *
 *   const inst = await openInst(session, 'db2');      // detects MariaDB / MySQL 5.7 / 8.0 / 8.4
 *   await inst.stopReplicationIo();
 *   if ((await inst.applyRelayLog(received, 30)) === 'timeout') throw new RelayLogTimeoutError(...);
 */

import {
  FailoverError,
  MissingPrivilegeError,
  MysqlOperationError,
  NodeUnreachableError,
  NotAReplicaError,
  ReplicationNotRunningError,
  redact,
  SemiSyncUnavailableError,
} from '../../errors.ts';
import { classifyError } from './connection.ts';
import { detectFlavor } from './dialect/flavor.ts';
import { type ProbeReading, probeBatch, runProbeBatch } from './dialect/probe-batch.ts';
import { sqlStringLiteral } from './dialect/sql-text.ts';
import type {
  BinlogStatus,
  ClientSession,
  Dialect,
  FollowOptions,
  GtidPositions,
  NormalizedReplicaStatus,
  QuoteMode,
  Read,
  Row,
  SemiSyncNames,
  SemiSyncState,
  ServerSettings,
  SourceSpec,
  Statement,
  WaitOutcome,
} from './dialect/types.ts';

/** What the operations need from a connection; AdminSession (./connection.ts) is one. */
export interface SqlSession {
  query<T = Row>(sql: string, params?: unknown[], timeoutMs?: number): Promise<T[]>;
  /** Constant statements as one round trip, one row list each (AdminSession.queryBatch). */
  queryBatch?(statements: readonly string[], timeoutMs?: number): Promise<Row[][]>;
  /**
   * A second connection to the same server with the same login, for an operation that must act
   * while this one waits (the fence kills sessions while its read_only waits). Optional: without
   * it such operations fall back to one connection.
   */
  openSibling?(): Promise<SqlSession & { close(): Promise<void> }>;
}

/** Time for polling waits; the default is the real clock. */
export interface OpsClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: OpsClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

export interface FollowPrimaryOptions extends Partial<FollowOptions> {
  /** Register as a semi-sync replica (the setting must be ON before the IO thread connects). */
  semiSync?: boolean;
}

/** What {@link Inst.readProbeFacts} returns: the probe's NodeProbe fields, plus the server's clock. */
export type ProbeFacts = ProbeReading;

/** What {@link Inst.resumeApplier} did: whether it restarted the applier, the delay it lifted. */
export interface ApplierResume {
  restarted: boolean;
  liftedDelaySeconds: number;
  /** The relay log position it resumed from (`file:pos`). */
  from?: string;
}

/** What a fence did: sessions killed, and how many read_only attempts it took. */
export interface FenceResult {
  killed: number;
  attempts: number;
}

/**
 * How long a pending STOP of the IO thread must have run before it counts as in effect: its stop
 * flag is its first act, microseconds in; the margin covers the stage being set just before.
 */
const IO_STOP_SETTLE_MS = 50;
/** Bound for waiting on a pending IO stop (it takes 2 s against a hung source; see the dialect). */
const IO_STOP_WAIT_MS = 10_000;

/** Replica IO errors that no retry cures: waiting for the threads would only burn the timeout. */
const FATAL_IO_ERRNOS = new Set([
  1236, // source purged what we need / not in its binlog
  1593, // fatal replica error (same server id or uuid)
  1950, // MariaDB gtid_strict_mode out-of-order
]);

/** The named operations on one node. Build it with {@link openInst} (detects the dialect) or directly. */
/** How long the fence waits to see its read_only statement waiting before it kills anyway. */
const DOOR_GATE_MS = 200;

/** The server answered and refused to wait for a metadata lock (lock_wait_timeout). */
function isLockWait(err: unknown): boolean {
  return err instanceof FailoverError && err.details.code === 'ER_LOCK_WAIT_TIMEOUT';
}

/**
 * How often {@link Inst.killClientSessions} lists the sessions again before it ends the commits
 * waiting for a semi-sync ACK: clients whose connection was killed reconnect within milliseconds.
 */
const KILL_PASSES = 4;

export class Inst {
  constructor(
    private readonly session: SqlSession,
    readonly nodeId: string,
    readonly dialect: Dialect,
    readonly quote: QuoteMode,
    private readonly clock: OpsClock = realClock,
  ) {}

  // ---------------------------------------------------------------- plumbing

  private async send(operation: string, stmt: Statement): Promise<Row[]> {
    try {
      return await this.session.query<Row>(stmt.sql, [...stmt.params], stmt.timeoutMs);
    } catch (err) {
      throw translate(err, this.nodeId, operation, stmt.secrets ?? []);
    }
  }

  private async read<T>(operation: string, r: Read<T>): Promise<T> {
    const rows = await this.send(operation, r);
    try {
      return r.parse(Array.isArray(rows) ? rows : []);
    } catch (err) {
      throw new MysqlOperationError(
        `${operation} on ${this.nodeId}: unexpected result: ${(err as Error).message}`,
        {
          nodeId: this.nodeId,
          operation,
        },
      );
    }
  }

  // ---------------------------------------------------------------- replica status

  /** The node's replica status in one shape for every flavor; undefined when it replicates from nobody. */
  readReplicaStatus(): Promise<NormalizedReplicaStatus | undefined> {
    return this.read('readReplicaStatus', this.dialect.readReplicaStatus());
  }

  /** Like readReplicaStatus, but a node that is not a replica is an error. */
  async requireReplicaStatus(operation: string): Promise<NormalizedReplicaStatus> {
    const st = await this.readReplicaStatus();
    if (st === undefined) {
      throw new NotAReplicaError(`${operation} on ${this.nodeId}: the node replicates from no source`, {
        nodeId: this.nodeId,
      });
    }
    return st;
  }

  /**
   * Waits until both replication threads run. Fails fast on an IO error no retry cures
   * (1236 purged/not in binlog, 1593, 1950) and on an SQL thread stopped by an error.
   *
   * @throws ReplicationNotRunningError with the last IO and SQL errors.
   */
  async waitReplicationRunning(timeoutMs: number, pollMs = 50): Promise<NormalizedReplicaStatus> {
    const deadline = this.clock.now() + timeoutMs;
    for (;;) {
      const st = await this.requireReplicaStatus('waitReplicationRunning');
      if (st.ioState === 'Yes' && st.sqlRunning) return st;
      const fatal =
        (st.ioState !== 'Yes' && FATAL_IO_ERRNOS.has(st.lastIoErrno)) ||
        (!st.sqlRunning && st.lastSqlErrno !== 0);
      if (fatal || this.clock.now() >= deadline) {
        throw new ReplicationNotRunningError(
          `Replication on ${this.nodeId} ${fatal ? 'stopped with an error' : `not running after ${timeoutMs} ms`}: ` +
            `IO=${st.ioState} (${st.lastIoErrno}: ${st.lastIoError}) SQL=${st.sqlRunning ? 'Yes' : 'No'} ` +
            `(${st.lastSqlErrno}: ${st.lastSqlError})`,
          {
            nodeId: this.nodeId,
            ioState: st.ioState,
            lastIoErrno: st.lastIoErrno,
            sqlRunning: st.sqlRunning,
            lastSqlErrno: st.lastSqlErrno,
          },
        );
      }
      await this.clock.sleep(pollMs);
    }
  }

  // ---------------------------------------------------------------- follow, start, stop, reset

  /**
   * Points the node at `source` with GTID auto-positioning (1 s connect retry and heartbeat by
   * default) and starts replication. Idempotent: a repeat re-points to the same source.
   */
  async followPrimary(source: SourceSpec, opts: FollowPrimaryOptions = {}): Promise<void> {
    const follow: FollowOptions = {
      connectRetrySeconds: opts.connectRetrySeconds ?? 1,
      heartbeatPeriodSeconds: opts.heartbeatPeriodSeconds ?? 1,
      ...(opts.noDelay === undefined ? {} : { noDelay: opts.noDelay }),
      ...(opts.sha2Auth === undefined ? {} : { sha2Auth: opts.sha2Auth }),
    };
    // Build before stopping anything: a bad host or password fails here and changes nothing.
    const change = this.dialect.followSource(source, follow, this.quote);
    await this.send('followPrimary', this.dialect.stopReplication());
    await this.send('followPrimary', change);
    // The IO thread registers as a semi-sync replica only if this is ON when it connects.
    if (opts.semiSync) {
      const names = await this.resolveSemiSync('replica');
      await this.send('followPrimary', this.dialect.setSemiSyncReplica(names, true));
    }
    await this.send('followPrimary', this.dialect.startReplication());
  }

  stopReplication = () => this.send('stopReplication', this.dialect.stopReplication()).then(() => {});
  /** Stops only the receiver: the applier keeps draining the relay log (first step of a promotion). */
  stopReplicationIo = () => this.send('stopReplicationIo', this.dialect.stopReplicationIo()).then(() => {});
  stopReplicationSql = () =>
    this.send('stopReplicationSql', this.dialect.stopReplicationSql()).then(() => {});
  startReplication = () => this.send('startReplication', this.dialect.startReplication()).then(() => {});
  startReplicationIo = () =>
    this.send('startReplicationIo', this.dialect.startReplicationIo()).then(() => {});
  startReplicationSql = () =>
    this.send('startReplicationSql', this.dialect.startReplicationSql()).then(() => {});
  resetReplica = () => this.send('resetReplica', this.dialect.resetReplica()).then(() => {});
  resetReplicaAll = () => this.send('resetReplicaAll', this.dialect.resetReplicaAll()).then(() => {});

  // ---------------------------------------------------------------- GTIDs

  readGtidPosition(): Promise<GtidPositions> {
    return this.read('readGtidPosition', this.dialect.readGtidPositions());
  }

  /** SHOW BINARY LOG STATUS (MySQL 8.2+) / SHOW MASTER STATUS; undefined when the binary log is off. */
  readBinlogStatus(): Promise<BinlogStatus | undefined> {
    return this.read('readBinlogStatus', this.dialect.readBinlogStatus());
  }

  /**
   * Waits until the node has executed `target` (its flavor's GTID notation): the relay log is
   * applied up to there. Stop the IO thread first, or the target keeps moving. An empty target
   * is reached at once. A timeout is an outcome, not an error: the caller decides.
   */
  async applyRelayLog(target: string, timeoutSeconds: number): Promise<WaitOutcome> {
    if (target.trim() === '') return 'reached';
    return this.read('applyRelayLog', this.dialect.waitForGtid(target, timeoutSeconds));
  }

  /**
   * Collects on this node what `source` (another replica, ahead of it) has: follows `source`
   * with auto-positioning, applies up to `until`, waits, then stops and drops the relay log,
   * whatever happened: a retried step can never apply what the receiver fetched past `until`.
   *
   * `until` must hold only what the source got from the primary, so its own errant writes are
   * never copied: on MariaDB its Gtid_IO_Pos (`retrievedGtid`); on MySQL its `receivedGtid`
   * minus its errant set (`gtid.errant`), because Executed_Gtid_Set includes local writes.
   */
  async collectFrom(
    source: SourceSpec,
    until: string,
    timeoutSeconds: number,
    opts: FollowPrimaryOptions = {},
  ) {
    const follow: FollowOptions = {
      connectRetrySeconds: opts.connectRetrySeconds ?? 1,
      heartbeatPeriodSeconds: opts.heartbeatPeriodSeconds ?? 1,
      noDelay: true,
      ...(opts.sha2Auth === undefined ? {} : { sha2Auth: opts.sha2Auth }),
    };
    const change = this.dialect.followSource(source, follow, this.quote);
    const start = this.dialect.startReplicationUntil(until);
    await this.send('collectFrom', this.dialect.stopReplication());
    await this.send('collectFrom', change);
    try {
      await this.send('collectFrom', start);
      return await this.read('collectFrom', this.dialect.waitForGtid(until, timeoutSeconds));
    } finally {
      await this.send('collectFrom', this.dialect.stopReplication());
      await this.send('collectFrom', this.dialect.resetReplica());
    }
  }

  // ---------------------------------------------------------------- fence

  /** read_only (MariaDB) / super_read_only (MySQL) on or off. */
  async setReadOnly(on: boolean): Promise<void> {
    for (const stmt of this.dialect.setReadOnly(on)) await this.send('setReadOnly', stmt);
  }

  readReadOnly(): Promise<{ readOnly: boolean; superReadOnly: boolean }> {
    return this.read('readReadOnly', this.dialect.readReadOnly());
  }

  /** Whether the node refuses writes (read_only, which super_read_only implies). */
  async isReadOnly(): Promise<boolean> {
    return (await this.readReadOnly()).readOnly;
  }

  /**
   * Ends every client session (KILL CONNECTION: the client sees the connection lost, never an
   * acknowledgement), except replication, system threads and this session. Sessions of our own
   * admin account are no exception: it bypasses read_only, and a probe's heartbeat that a frozen
   * server held waits for a semi-sync ACK like any commit, keeping read_only from applying.
   *
   * The order matters: commits waiting for a replica's semi-sync ACK are killed LAST. With binlog
   * group commit only the group's leader waits for the ACK ("Waiting for semi-sync ACK"); the
   * other commits of its group sit in "Commit". Killing the leader ends the wait for the whole
   * group, and every follower whose connection is still open is acknowledged at once (measured
   * on MariaDB 10.11: 6 commits held by a resumed old primary, the waiter killed, the 4 others
   * answered OK within 2 ms; a write acknowledged on the old primary only, lost). A killed
   * follower's socket is shut at once, so it never sees the OK its group's commit sends later.
   * So: every other session first, listed again until none is left (clients reconnect), then
   * the waiters.
   */
  async killClientSessions(opts: { except?: readonly number[] } = {}): Promise<{ killed: number }> {
    const ended = new Set<number>(opts.except ?? []);
    let killed = 0;
    const kill = async (s: ClientSession) => {
      ended.add(s.id);
      try {
        await this.send('killClientSessions', this.dialect.killSession(s.id));
        killed++;
      } catch (err) {
        // Ended on its own between the SELECT and the KILL (ER_NO_SUCH_THREAD): fine. Anything else is not.
        if (!(err instanceof MysqlOperationError && err.details.code === 'ER_NO_SUCH_THREAD')) throw err;
      }
    };
    let waiting: ClientSession[] = [];
    for (let pass = 0; pass < KILL_PASSES; pass++) {
      const open = (await this.read('killClientSessions', this.dialect.listClientSessions())).filter(
        // A killed session that lingers (its commit finishing) has no client to answer any more.
        (s) => !ended.has(s.id) && s.command !== 'Killed',
      );
      waiting = open.filter((s) => s.awaitingReplicaAck);
      const others = open.filter((s) => !s.awaitingReplicaAck);
      if (others.length === 0) break;
      for (const s of others) await kill(s);
    }
    for (const s of waiting) await kill(s);
    return { killed };
  }

  /**
   * `read_only=ON` (super_read_only on MySQL) that holds new writes back while the commits in
   * flight are killed, bounded by `budgetMs`. The first half of {@link fencePrimary}, for callers
   * that end the sessions later themselves (a switchover's grace).
   *
   * Why not a plain read_only=ON: it waits for the backup lock behind every commit in flight, and
   * on an old primary whose replicas left (frozen by a failover, repointed) those commits wait
   * for a semi-sync ACK that never comes. At the semi-sync timeout they fall back to async and
   * are ACKNOWLEDGED, and only then does read_only apply (measured on MariaDB: the statement sat
   * in "Waiting for backup lock" behind "Waiting for semi-sync ACK from slave" for the whole
   * 10 s). Killing the connection ends that wait at once without an acknowledgement.
   *
   * Why killing alone is not enough: a killed commit that later leads a binlog group skips the
   * semi-sync wait, and its group commits at once, acknowledging every member still connected,
   * also one a client sent after the kill on a new connection (measured in the hang-return bench:
   * a client killed, reconnected, and acknowledged 39 ms after its INSERT, a write on the old
   * primary only). So the door is shut first: `read_only=ON` is sent on this connection and WAITS
   * (lock_wait_timeout = the budget), which makes every new write statement wait behind it
   * ("Waiting for backup lock"), and a second connection ({@link SqlSession.openSibling}) kills
   * the sessions in flight ({@link killClientSessions}: the semi-sync waiters last) until it
   * applies. The held-back writes then fail on read_only. Without a second connection: attempts
   * that never wait (lock_wait_timeout=0), with kills in between.
   *
   * Timeline (fence of an old primary that resumed with commits held):
   *
   *   this conn   SET GLOBAL read_only=ON ......waits for the commits in flight......| applied
   *   new writes        |INSERT -> "Waiting for backup lock" ..........................| refused
   *   sibling            |list, KILL followers, list again, KILL ACK waiters|
   *
   * @param opts.graceMs how long commits in flight may finish on their own before their sessions
   *   are killed (0 for a failover: nothing the old primary acknowledges from now on is safe).
   * @param opts.budgetMs give up when read_only has not applied by then (default 2500 ms).
   * @throws MysqlOperationError when read_only did not apply within the budget.
   */
  async applyReadOnly(opts: { graceMs?: number; budgetMs?: number } = {}): Promise<FenceResult> {
    const started = this.clock.now();
    const budgetMs = Math.max(opts.budgetMs ?? 2500, opts.graceMs ?? 0);
    const graceUntil = started + (opts.graceMs ?? 0);
    await this.send('applyReadOnly', this.dialect.noLockWait());
    let killed = 0;
    let attempts = 0;
    const notApplied = () =>
      new MysqlOperationError(
        `read_only=ON did not apply on ${this.nodeId} within ${budgetMs} ms (${attempts} attempts, ${killed} sessions killed): a commit or lock kept it waiting`,
        { nodeId: this.nodeId, operation: 'applyReadOnly', attempts, killed },
      );
    for (;;) {
      attempts++;
      try {
        await this.setReadOnly(true);
        return { killed, attempts };
      } catch (err) {
        // The driver's classification reads "Lock wait timeout" as a timeout (NodeUnreachableError):
        // the code is what tells the server answered and refused to wait.
        if (!isLockWait(err)) throw err;
        if (this.clock.now() - started >= budgetMs) throw notApplied();
      }
      if (this.clock.now() < graceUntil) {
        await this.clock.sleep(20);
        continue;
      }
      const sibling = await this.session.openSibling?.().catch(() => undefined);
      if (sibling) {
        try {
          attempts++;
          const r = await this.readOnlyBehindDoor(sibling, started + budgetMs);
          killed += r.killed;
          if (r.applied) return { killed, attempts };
          throw notApplied();
        } finally {
          await sibling.close();
        }
      }
      killed += (await this.killClientSessions()).killed;
    }
  }

  /**
   * The door of {@link applyReadOnly}: read_only=ON waiting on this connection until `deadline`,
   * sessions killed from `sibling` meanwhile. Whether it applied, and how many were killed.
   */
  private async readOnlyBehindDoor(
    sibling: SqlSession,
    deadline: number,
  ): Promise<{ applied: boolean; killed: number }> {
    const doorId = await this.read('applyReadOnly', this.dialect.connectionId());
    const waitMs = Math.max(1000, deadline - this.clock.now());
    await this.send('applyReadOnly', this.dialect.lockWait(waitMs / 1000));
    let settled = false;
    const door = (async () => {
      try {
        for (const stmt of this.dialect.setReadOnly(true))
          await this.send('applyReadOnly', { ...stmt, timeoutMs: waitMs + 1000 });
        return { applied: true as const };
      } catch (err) {
        return { applied: false as const, err };
      } finally {
        settled = true;
        // Back to never waiting: the rest of the fence on this connection must not block.
        await this.send('applyReadOnly', this.dialect.noLockWait()).catch(() => undefined);
      }
    })();
    const killer = new Inst(sibling, this.nodeId, this.dialect, this.quote, this.clock);
    let killed = 0;
    // Kill only once the door is shut: the read_only statement waits in the process list (or
    // already applied); a write that started before it is a session in flight, killed below.
    const shut = async () =>
      (await killer.read('applyReadOnly', killer.dialect.listClientSessions())).some(
        (s) => s.id === doorId && s.state !== '',
      );
    const gateUntil = Math.min(deadline, this.clock.now() + DOOR_GATE_MS);
    while (!settled && this.clock.now() < gateUntil && !(await shut())) await this.clock.sleep(5);
    while (!settled && this.clock.now() < deadline) {
      killed += (await killer.killClientSessions({ except: [doorId] })).killed;
      if (!settled) await this.clock.sleep(20);
    }
    const r = await door;
    if (!r.applied && !isLockWait(r.err)) throw r.err;
    return { applied: r.applied, killed };
  }

  /**
   * Fences a node that must not take writes: {@link applyReadOnly} (new writes held back behind
   * the waiting read_only, the sessions in flight killed until it applies, the commits waiting for
   * a semi-sync ACK last; bounded by `budgetMs`), then every remaining client session ended.
   * No commit held at the call is acknowledged. Idempotent.
   */
  async fencePrimary(opts: { graceMs?: number; budgetMs?: number } = {}): Promise<FenceResult> {
    const r = await this.applyReadOnly(opts);
    return { killed: r.killed + (await this.killClientSessions()).killed, attempts: r.attempts };
  }

  /** {@link fencePrimary} with no grace and the default budget. */
  fence(): Promise<FenceResult> {
    return this.fencePrimary({ graceMs: 0 });
  }

  // ---------------------------------------------------------------- failover moves

  /**
   * A failover's freeze of one survivor: stops its IO thread and says whether this call stopped a
   * running one ('stopped'), found it stopped already ('already-stopped': by an operator, or by an
   * earlier freeze) or found no replication ('no-replication'). Only 'stopped' (and 'stopping')
   * nodes are restarted when the failover ends without a promotion.
   *
   * Against a hung source the stop takes 2 s (MariaDB signals the receiver, which sits in a socket
   * read, and waits for it in 2 s rounds; measured 2.00 s whatever the source's phase). What makes
   * the freeze safe is not that wait but its first instant: the stop flag, which the receiver
   * checks after every read before it queues or acknowledges an event. So:
   * - 'stopping': a stop of this thread is in effect already (an earlier freeze): nothing sent.
   * - with `returnWithinMs`, 'pending' when the stop has not returned by then. The statement
   *   keeps running on the server after this session closes; confirm it from another session
   *   with {@link awaitIoFreeze}.
   */
  async freezeReplicationIo(
    opts: { returnWithinMs?: number } = {},
  ): Promise<'stopped' | 'already-stopped' | 'no-replication' | 'stopping' | 'pending'> {
    const r = await this.readReplicaStatus();
    if (!r) return 'no-replication';
    if (r.ioState !== 'No' && (await this.ioStopInEffect())) return 'stopping';
    const stop = this.stopReplicationIo();
    const done = r.ioState === 'No' ? 'already-stopped' : 'stopped';
    if (opts.returnWithinMs === undefined) {
      await stop;
      return done;
    }
    stop.catch(() => undefined);
    const returned = await Promise.race([
      stop.then(() => true),
      this.clock.sleep(opts.returnWithinMs).then(() => false),
    ]);
    return returned ? done : 'pending';
  }

  /**
   * True when a STOP of the IO thread is in effect although it has not returned: it has run for
   * at least `settleMs` (its stop flag is set: the flag is the statement's first act) and the
   * receiver is not queueing an event (one it read before the flag was set would be in the relay
   * log, and in the received GTIDs, once it is done). From then on nothing more is queued or
   * acknowledged: what the node received is final although the thread has not exited. False
   * where the dialect cannot tell (callers wait for the stop then).
   */
  async ioStopInEffect(settleMs = IO_STOP_SETTLE_MS): Promise<boolean> {
    const r = this.dialect.readIoStop?.();
    if (!r) return false;
    const st = await this.read('ioStopInEffect', r);
    return (
      st.stopMs !== undefined &&
      st.stopMs >= settleMs &&
      st.ioThread !== undefined &&
      !/^queueing/i.test(st.ioThread)
    );
  }

  /**
   * After {@link freezeReplicationIo} answered 'pending' on another session: waits until the IO
   * thread stopped ('stopped') or its stop is in effect ('stopping'), at most `timeoutMs`.
   *
   * @throws MysqlOperationError when neither happens in time.
   */
  async awaitIoFreeze(timeoutMs = IO_STOP_WAIT_MS): Promise<'stopped' | 'stopping'> {
    const deadline = this.clock.now() + timeoutMs;
    for (;;) {
      const r = await this.readReplicaStatus();
      if (!r || r.ioState === 'No') return 'stopped';
      if (await this.ioStopInEffect()) return 'stopping';
      if (this.clock.now() >= deadline)
        throw new MysqlOperationError(
          `The IO thread on ${this.nodeId} neither stopped nor showed a stop in effect within ${timeoutMs} ms.`,
          { nodeId: this.nodeId, operation: 'awaitIoFreeze' },
        );
      await this.clock.sleep(20);
    }
  }

  /**
   * Waits until a pending stop of the IO thread has returned (the thread exited): what needs the
   * thread gone (CHANGE MASTER, a restart) waits here rather than queue behind the stop.
   *
   * @throws MysqlOperationError when it still runs after `timeoutMs`.
   */
  async waitIoStopped(timeoutMs = IO_STOP_WAIT_MS): Promise<void> {
    const deadline = this.clock.now() + timeoutMs;
    for (;;) {
      const r = await this.readReplicaStatus();
      if (!r || r.ioState === 'No') return;
      if (this.clock.now() >= deadline)
        throw new MysqlOperationError(
          `The IO thread on ${this.nodeId} still runs ${timeoutMs} ms after its stop was issued.`,
          { nodeId: this.nodeId, operation: 'waitIoStopped' },
        );
      await this.clock.sleep(25);
    }
  }

  /**
   * Undoes a failover's freeze on a replica that was not promoted: makes sure it replicates from
   * `source` (the old primary) again with both threads started. Idempotent: a replica already
   * replicating from `source` with both threads running is left alone. Returns what it did.
   */
  async restartReplicationIo(
    source: SourceSpec,
  ): Promise<'running' | 'restarted' | 'repointed' | 'no-replication'> {
    let r = await this.readReplicaStatus();
    if (!r) return 'no-replication';
    // A freeze's stop still pending reads as running, and would leave the thread stopped.
    if (r.ioState !== 'No' && (await this.ioStopInEffect(0))) {
      await this.waitIoStopped();
      r = await this.readReplicaStatus();
      if (!r) return 'no-replication';
    }
    if (r.sourceHost !== source.host || r.sourcePort !== source.port) {
      // A catch-up's collection left it pointing at another replica (relay log reset).
      await this.followPrimary(source);
      return 'repointed';
    }
    if (r.ioState !== 'No' && r.sqlRunning) return 'running';
    // Both threads stopped (an applier an operator stopped, then the freeze): a plain START SLAVE
    // would discard the relay log (see freezeAndDrain) and refetch it from a source that may be
    // dead. Keep the relay log, the applier's place in it and its delay.
    if (r.ioState === 'No' && !r.sqlRunning && r.lastSqlErrno === 0) {
      const place = await this.applierPlace();
      await this.restartApplier(place?.delay ?? 0);
      await this.startReplicationIo();
      return 'restarted';
    }
    await this.startReplication();
    return 'restarted';
  }

  /**
   * Stops the IO thread (the source is gone) and makes sure the applier runs, so a following
   * {@link applyRelayLog} drains what was received. A stop that a freeze issued and that is in
   * effect ({@link ioStopInEffect}) is not waited for: what the node received is final already
   * (its received GTIDs are read after). An applier stopped by an error is left alone (the wait
   * then times out and says so). Undefined when the node replicates from nobody.
   */
  async freezeAndDrain(): Promise<(NormalizedReplicaStatus & { applier: ApplierResume }) | undefined> {
    const before = await this.readReplicaStatus();
    if (before === undefined) return undefined;
    if (before.ioState === 'No' || !(await this.ioStopInEffect())) await this.stopReplicationIo();
    const after = await this.readReplicaStatus();
    if (!after) return undefined;
    // A stopped or delayed applier resumes with its relay log kept and no delay: the source is
    // gone, what the node received is final. Never a plain START SLAVE SQL_THREAD: with both
    // threads stopped, MariaDB in GTID mode discards the relay log and would refetch it from the
    // dead source (measured: Relay_Log_Space 45693 -> 256 bytes, Gtid_IO_Pos back 200 events).
    const applier = await this.resumeApplier();
    return { ...after, applier };
  }

  /**
   * Makes a stopped or delayed applier run again with no delay, from exactly where it stood in
   * its relay log (CHANGE ... RELAY_LOG_FILE/RELAY_LOG_POS keeps the relay log; it is also the
   * only way to change the delay, which needs both threads stopped, without purging it). An
   * applier stopped by an error is left alone. Needs the IO thread stopped.
   */
  async resumeApplier(): Promise<ApplierResume> {
    const place = await this.applierPlace();
    if (place?.lastSqlErrno !== 0 || (place.sqlRunning && place.delay === 0))
      return { restarted: false, liftedDelaySeconds: 0 };
    if (place.ioRunning) {
      // A pending stop (a freeze's) ends on its own: the applier is restarted once it did.
      if (!(await this.ioStopInEffect(0)))
        throw new MysqlOperationError(`resumeApplier on ${this.nodeId} needs the IO thread stopped first`, {
          nodeId: this.nodeId,
          operation: 'resumeApplier',
        });
      await this.waitIoStopped();
    }
    const from = await this.restartApplier(0);
    return { restarted: true, liftedDelaySeconds: place.delay, ...(from ? { from } : {}) };
  }

  /**
   * Sets the applier's delay (a replica whose delay {@link resumeApplier} lifted gets the
   * operator's back once it applied its relay log), keeping the relay log and the applier's place
   * in it, then (re)starts the SQL thread. Returns the relay log position it resumed from.
   */
  async restartApplier(delaySeconds: number): Promise<string | undefined> {
    const before = await this.applierPlace();
    if (before?.sqlRunning) await this.stopReplicationSql();
    const place = (await this.applierPlace()) ?? before;
    const at = place && place.file !== '' && place.pos > 0 ? place : undefined;
    const delay = Math.max(0, Math.floor(delaySeconds));
    const lit = (v: string) => sqlStringLiteral(v, this.quote, 'relay log file');
    const head =
      this.dialect.name === 'mysql8'
        ? `CHANGE REPLICATION SOURCE TO SOURCE_DELAY=${delay}`
        : `CHANGE MASTER TO MASTER_DELAY=${delay}`;
    await this.send('restartApplier', {
      sql: `${head}${at ? `, RELAY_LOG_FILE=${lit(at.file)}, RELAY_LOG_POS=${at.pos}` : ''}`,
      params: [],
    });
    await this.startReplicationSql();
    return at ? `${at.file}:${at.pos}` : undefined;
  }

  /** The applier's place in its relay log and its delay, from the raw replica status row. */
  private async applierPlace(): Promise<
    | {
        sqlRunning: boolean;
        ioRunning: boolean;
        lastSqlErrno: number;
        delay: number;
        file: string;
        pos: number;
      }
    | undefined
  > {
    const [row] = await this.send('applierPlace', this.dialect.readReplicaStatus());
    if (!row) return undefined;
    const yes = (k: string) => String(row[k] ?? '') === 'Yes';
    return {
      sqlRunning: yes('Slave_SQL_Running') || yes('Replica_SQL_Running'),
      ioRunning: String(row.Slave_IO_Running ?? row.Replica_IO_Running ?? 'No') !== 'No',
      lastSqlErrno: Number(row.Last_SQL_Errno ?? 0) || 0,
      delay: Number(row.SQL_Delay ?? 0) || 0,
      file: String(row.Relay_Log_File ?? ''),
      pos: Math.floor(Number(row.Relay_Log_Pos ?? 0)),
    };
  }

  /**
   * Makes the node a writable primary: no replication configuration, semi-sync per the caller's
   * choice, then writes allowed. `semiSync: false` with `disableSemiSync` switches the semi-sync
   * source OFF explicitly (a node that was primary before may still have it ON): with no replica
   * to acknowledge, every commit would wait the semi-sync timeout.
   */
  async promoteToPrimary(opts: {
    semiSync: boolean;
    semiSyncTimeoutMs: number;
    disableSemiSync?: boolean;
  }): Promise<void> {
    await this.stopReplication();
    await this.resetReplicaAll();
    if (opts.semiSync) await this.enableSemiSyncPrimary({ timeoutMs: opts.semiSyncTimeoutMs });
    else if (opts.disableSemiSync) await this.disableSemiSyncPrimary();
    await this.setReadOnly(false);
  }

  /** Before a former primary follows a source: start from what it executed itself (see the dialect). */
  async adoptOwnGtidHistory(): Promise<void> {
    for (const stmt of this.dialect.adoptOwnGtidHistory()) await this.send('adoptOwnGtidHistory', stmt);
  }

  // ---------------------------------------------------------------- what check verifies

  /** The settings `check` verifies (binary log, GTID mode, read_only, timeouts, filters). */
  readServerSettings(): Promise<ServerSettings> {
    return this.read('readServerSettings', this.dialect.readServerSettings());
  }

  /** SHOW GRANTS FOR CURRENT_USER(), one line per grant. */
  readGrants(): Promise<string[]> {
    return this.read('readGrants', this.dialect.readGrants());
  }

  /** The replica's heartbeat period in seconds (null: not configured or not reported). */
  async readHeartbeatPeriod(status?: NormalizedReplicaStatus): Promise<number | null> {
    const st = status ?? (await this.readReplicaStatus());
    if (typeof st?.heartbeatPeriodSeconds === 'number') return st.heartbeatPeriodSeconds;
    const r = this.dialect.readHeartbeatPeriod();
    return r === undefined ? null : this.read('readHeartbeatPeriod', r);
  }

  // ---------------------------------------------------------------- the prober's reads

  /**
   * Everything a probe round reads from one node, in the decision core's shape (NodeProbe
   * without nodeId, probeMs and the heartbeat write, which stay the prober's), for either
   * flavor: settings, GTID positions (MySQL: gtidBinlogPos = gtidCurrentPos = gtid_executed,
   * gtidSlavePos = ''), semi-sync under the node's names, replica status (heartbeat period and
   * counter from performance_schema on MySQL), plus the server clock for the heartbeat write's
   * deadline. The statements are the prober's batch (dialect/probe-batch.ts): one round trip on
   * a session that sends batches, one statement at a time otherwise.
   */
  async readProbeFacts(opts: { heartbeatLag?: boolean } = {}): Promise<ProbeFacts> {
    const batch = probeBatch(this.dialect, { heartbeatLag: opts.heartbeatLag === true });
    const run = async (statements: readonly string[]) => {
      if (this.session.queryBatch) return this.session.queryBatch(statements);
      const out: Row[][] = [];
      for (const sql of statements) {
        const rows = await this.session.query<Row>(sql);
        out.push(Array.isArray(rows) ? rows : []);
      }
      return out;
    };
    let results: Row[][];
    try {
      results = await runProbeBatch(batch, run);
    } catch (err) {
      throw translate(err, this.nodeId, 'readProbeFacts', []);
    }
    try {
      return batch.parse(results);
    } catch (err) {
      throw new MysqlOperationError(
        `readProbeFacts on ${this.nodeId}: unexpected result: ${(err as Error).message}`,
        { nodeId: this.nodeId, operation: 'readProbeFacts' },
      );
    }
  }

  // ---------------------------------------------------------------- semi-sync

  /**
   * The semi-sync names this node uses for `side`: MariaDB's built-ins, or the installed MySQL
   * plugin family.
   *
   * @throws SemiSyncUnavailableError naming the INSTALL PLUGIN statement when none is installed.
   */
  async resolveSemiSync(side: 'source' | 'replica'): Promise<SemiSyncNames> {
    const installed = await this.read('resolveSemiSync', this.dialect.readSemiSyncPlugins());
    const family = installed[side];
    if (family === undefined) {
      const names = this.dialect.semiSyncNames(this.dialect.preferredSemiSync);
      const plugin = side === 'source' ? names.sourcePlugin : names.replicaPlugin;
      throw new SemiSyncUnavailableError(
        `Semi-sync ${side} plugin is not installed on ${this.nodeId}` +
          (plugin === undefined ? '' : `: INSTALL PLUGIN ${plugin.name} SONAME '${plugin.soname}'`),
        { nodeId: this.nodeId, side },
      );
    }
    return this.dialect.semiSyncNames(family);
  }

  /** Semi-sync AFTER_SYNC on with `timeoutMs` before falling back to async. */
  async enableSemiSyncPrimary(opts: { timeoutMs: number }): Promise<void> {
    const names = await this.resolveSemiSync('source');
    for (const stmt of this.dialect.enableSemiSyncSource(names, opts.timeoutMs)) {
      await this.send('enableSemiSyncPrimary', stmt);
    }
  }

  /** Semi-sync source OFF; nothing to do where its plugin is not installed (it cannot be on). */
  async disableSemiSyncPrimary(): Promise<void> {
    const installed = await this.read('disableSemiSyncPrimary', this.dialect.readSemiSyncPlugins());
    if (installed.source === undefined) return;
    const names = this.dialect.semiSyncNames(installed.source);
    for (const stmt of this.dialect.disableSemiSyncSource(names))
      await this.send('disableSemiSyncPrimary', stmt);
  }

  async setSemiSyncReplica(on: boolean): Promise<void> {
    const names = await this.resolveSemiSync('replica');
    await this.send('setSemiSyncReplica', this.dialect.setSemiSyncReplica(names, on));
  }

  /** Semi-sync settings and status of both sides, under whichever names the node uses. */
  async readSemiSync(): Promise<SemiSyncState> {
    const installed = await this.read('readSemiSync', this.dialect.readSemiSyncPlugins());
    const family = installed.source ?? installed.replica ?? this.dialect.preferredSemiSync;
    const names = this.dialect.semiSyncNames(family);
    const vars = await this.read('readSemiSync', this.dialect.readSemiSyncVariables(names));
    const status = await this.read('readSemiSync', this.dialect.readSemiSyncStatus(names));
    const on = (v: string | undefined) => v === 'ON' || v === '1';
    const timeout = vars.get(names.sourceTimeout);
    return {
      family,
      sourceInstalled: vars.has(names.sourceEnabled),
      replicaInstalled: vars.has(names.replicaEnabled),
      masterEnabled: on(vars.get(names.sourceEnabled)),
      masterActive: status.get(names.sourceStatus) === 'ON',
      masterClients: Number(status.get(names.sourceClients) ?? 0),
      slaveEnabled: on(vars.get(names.replicaEnabled)),
      slaveActive: status.get(names.replicaStatus) === 'ON',
      waitPoint: vars.get(names.sourceWaitPoint) ?? '',
      timeoutMs: timeout === undefined ? null : Number(timeout),
    };
  }
}

/**
 * Detects the node's flavor and version (and the session's sql_mode, for quoting) and returns
 * its named operations.
 *
 * @throws UnsupportedServerError for a server no dialect speaks.
 */
export async function openInst(session: SqlSession, nodeId: string, clock?: OpsClock): Promise<Inst> {
  let row: Row | undefined;
  try {
    [row] = await session.query<Row>(
      'SELECT @@GLOBAL.version AS version, @@GLOBAL.version_comment AS comment, @@SESSION.sql_mode AS sql_mode',
    );
  } catch (err) {
    throw translate(err, nodeId, 'openInst', []);
  }
  const detected = detectFlavor(String(row?.version ?? ''), String(row?.comment ?? ''));
  const quote = { noBackslashEscapes: /NO_BACKSLASH_ESCAPES/i.test(String(row?.sql_mode ?? '')) };
  return new Inst(session, nodeId, detected.dialect, quote, clock);
}

/**
 * Driver error -> typed error. Never keeps the driver error as `cause`: mysql2 errors carry the
 * SQL text (`err.sql`), which may hold the replication password. A syntax error's "near '…'"
 * excerpt of a statement with secrets is dropped whole (it may hold part of one).
 */
export function translate(
  err: unknown,
  nodeId: string,
  operation: string,
  secrets: readonly string[],
): Error {
  if (err instanceof Error && 'transient' in err) return err; // already one of ours
  const c = classifyError(err);
  const e = err as { code?: string; errno?: number };
  let message = c.message;
  if (secrets.length > 0) message = message.replace(/near '[\s\S]*' at line \d+/, "near '<redacted>'");
  message = redact(message, secrets);
  const msg = `${operation} on ${nodeId} failed: ${c.code}: ${message}`;
  const details = { nodeId, operation, code: e.code ?? c.code, errno: e.errno ?? 0 };
  if (c.kind === 'refused' || c.kind === 'timeout' || c.kind === 'unreachable')
    return new NodeUnreachableError(msg, details);
  if (
    c.kind === 'auth' ||
    e.code === 'ER_SPECIFIC_ACCESS_DENIED_ERROR' ||
    e.code === 'ER_DBACCESS_DENIED_ERROR'
  ) {
    return new MissingPrivilegeError(
      `${msg}. Grant the failover admin account the privilege named above.`,
      details,
    );
  }
  return new MysqlOperationError(msg, details);
}
