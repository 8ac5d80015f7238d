/**
 * The dialect seam: every statement the failover code sends to a MySQL-family server, per
 * flavor and version. A dialect only BUILDS statements and PARSES rows; it never talks to a
 * server. That makes every operation testable at the statement level (the exact SQL) and at
 * the result level (rows shaped like the server's) without a server, and leaves the I/O to
 * the named operations (../operations.ts).
 */
import type { GtidAlgebra } from '../../../core/gtid-set.ts';
import type { ReplicationStatus, SemiSyncStatus } from '../../../core/types.ts';

export type Flavor = 'mariadb' | 'mysql';

/** The three implementations of the table. */
export type DialectName = 'mariadb' | 'mysql8' | 'mysql57';

export interface ServerVersion {
  flavor: Flavor;
  major: number;
  minor: number;
  patch: number;
}

export type Row = Record<string, unknown>;

/** One statement exactly as sent: SQL text and the values for its `?` placeholders. */
export interface Statement {
  sql: string;
  params: readonly unknown[];
  /** Per-statement timeout when the statement itself waits (MASTER_GTID_WAIT, STOP SLAVE). */
  timeoutMs?: number;
  /**
   * Values written into `sql` as literals that must never be logged (the replication
   * password). The operations layer redacts them from every error.
   */
  secrets?: readonly string[];
}

/** A statement that returns rows, and the parser for those rows. */
export interface Read<T> extends Statement {
  parse(rows: readonly Row[]): T;
}

/** The source a replica follows. */
export interface SourceSpec {
  host: string;
  port: number;
  user: string;
  password: string;
}

export interface FollowOptions {
  /** Seconds between reconnect attempts (default server value is 60: far too slow for failover). */
  connectRetrySeconds: number;
  /** Seconds between heartbeats from the source; a stalled counter is a fast death signal. */
  heartbeatPeriodSeconds: number;
  /** Force SQL delay 0 (collecting from another replica must not inherit a delayed setup). */
  noDelay?: boolean;
  /**
   * MySQL 8 only: how the replication account authenticates under caching_sha2_password.
   * 'public-key' asks the source for its RSA key (GET_SOURCE_PUBLIC_KEY=1); 'tls' requires TLS
   * (SOURCE_SSL=1). Default 'public-key'. Ignored by MariaDB and MySQL 5.7.
   */
  sha2Auth?: 'public-key' | 'tls';
}

/** How values are written into SQL text on this session. */
export interface QuoteMode {
  /** @@SESSION.sql_mode has NO_BACKSLASH_ESCAPES: a backslash is an ordinary character. */
  noBackslashEscapes: boolean;
}

/**
 * Replica status normalised to one shape for every flavor. Extends the decision core's
 * ReplicationStatus (so probes keep working) with the GTID facts MySQL needs.
 */
export interface NormalizedReplicaStatus extends ReplicationStatus {
  flavor: Flavor;
  /**
   * Everything this replica has received or applied, in its flavor's notation: MariaDB
   * Gtid_IO_Pos; MySQL Retrieved_Gtid_Set ∪ Executed_Gtid_Set (canonical, one line).
   * On MySQL this includes the node's own local (possibly errant) transactions, since they
   * are in Executed_Gtid_Set: subtract the errant set before using it as a catch-up target.
   */
  receivedGtid: string;
  /** What the receiver fetched: MariaDB Gtid_IO_Pos; MySQL Retrieved_Gtid_Set (canonical). */
  retrievedGtid: string;
  /** What it applied: MariaDB Gtid_Slave_Pos; MySQL Executed_Gtid_Set (canonical). */
  executedGtid: string;
  /** GTID auto-positioning is on (MariaDB Using_Gtid != No; MySQL Auto_Position = 1). */
  autoPosition: boolean;
  /** Source_UUID / Master_UUID (MySQL), Master_Server_Id as text (MariaDB). */
  sourceId: string;
}

/** A node's own GTID state. */
export interface GtidPositions {
  flavor: Flavor;
  /**
   * Everything the node has executed: MySQL @@gtid_executed; MariaDB @@gtid_current_pos
   * (binlogged and replicated transactions alike). Canonical, one line.
   */
  executed: string;
  /** MySQL @@gtid_purged (no longer in any binary log); '' on MariaDB. */
  purged: string;
  /** MariaDB only: @@gtid_binlog_pos, @@gtid_slave_pos. */
  binlog?: string;
  slave?: string;
  /** MariaDB only: @@gtid_binlog_state (last GTID per domain AND server_id), as the server wrote it. */
  binlogState?: string;
  /** MariaDB only: @@server_id (tells the node's own transactions in binlogState). */
  serverId?: number;
}

/** SHOW BINARY LOG STATUS / SHOW MASTER STATUS. */
export interface BinlogStatus {
  file: string;
  position: number;
  /** MySQL Executed_Gtid_Set (canonical); '' on MariaDB (use readGtidPositions there). */
  executedGtid: string;
  /** Binlog_Do_DB / Binlog_Ignore_DB: the binary log filters. */
  doDb?: string;
  ignoreDb?: string;
}

export type WaitOutcome = 'reached' | 'timeout';

/** Names of the semi-sync plugin family in use. */
export type SemiSyncFamily = 'builtin' | 'source-replica' | 'master-slave';

export interface SemiSyncNames {
  family: SemiSyncFamily;
  /** INSTALL PLUGIN names and libraries; undefined for MariaDB's built-in semi-sync. */
  sourcePlugin?: { name: string; soname: string };
  replicaPlugin?: { name: string; soname: string };
  sourceEnabled: string;
  sourceTimeout: string;
  sourceWaitPoint: string;
  replicaEnabled: string;
  sourceStatus: string;
  sourceClients: string;
  replicaStatus: string;
}

/** Semi-sync facts with the names the node uses, enabled/active per side. */
export interface SemiSyncState extends SemiSyncStatus {
  family: SemiSyncFamily;
  /** Variable not present: the plugin for that side is not installed. */
  sourceInstalled: boolean;
  replicaInstalled: boolean;
  waitPoint: string;
  timeoutMs: number | null;
}

/** The server settings `check` verifies, in one shape for every flavor. */
export interface ServerSettings {
  serverId: number;
  version: string;
  versionComment: string;
  readOnly: boolean;
  /** MySQL super_read_only; undefined on MariaDB (no such variable). */
  superReadOnly: boolean | undefined;
  logBin: boolean;
  /** log_slave_updates / log_replica_updates (MySQL 8.0.26+). */
  logReplicaUpdates: boolean;
  /**
   * GTIDs usable for failover: MariaDB gtid_strict_mode=ON; MySQL gtid_mode=ON and
   * enforce_gtid_consistency=ON (auto-positioning needs both).
   */
  gtidStrict: boolean;
  /** The setting(s) behind gtidStrict, as the server names them, for messages. */
  gtidSetting: string;
  binlogFormat: string;
  /** slave_net_timeout / replica_net_timeout (MySQL 8.0.26+), seconds. */
  replicaNetTimeout: number;
  /** replicate_* filters (MariaDB system variables); {} on MySQL, where they are no variables. */
  filters: Record<string, string>;
}

/**
 * A replica's IO thread while a STOP of it may be pending (see Dialect.readIoStop). `stopMs`:
 * how long the oldest pending stop has run (undefined: none runs); `ioThread`: the IO thread's
 * stage (undefined: no IO thread runs).
 */
export interface IoStopState {
  stopMs: number | undefined;
  ioThread: string | undefined;
}

/** A session we may end when fencing. */
export interface ClientSession {
  id: number;
  user: string;
  command: string;
  /**
   * The session's commit is waiting for a replica's semi-sync ACK (MariaDB "Waiting for semi-sync
   * ACK from slave", MySQL "... from replica"). With binlog group commit it is the group's leader:
   * when its wait ends, by an ACK, the timeout or a KILL, every commit of its group is
   * acknowledged to its client.
   */
  awaitingReplicaAck: boolean;
  /** The server's STATE of the session ('' when none). */
  state: string;
}

/** One privilege the admin account needs, and why. */
export interface GrantNeed {
  privilege: string;
  usedFor: string;
}

/** A privilege the admin account needs on one table (not globally), and why. */
export interface TableGrantNeed {
  privilege: string;
  /** `schema.table`, as SHOW GRANTS scopes it (without backquotes). */
  table: string;
  usedFor: string;
}

/** What a rejoining node needs on this flavor: how to wipe its GTID history. */
export interface RejoinVocabulary {
  /** The statement that empties binary logs and GTID history. */
  resetGtidHistory: string;
  /** Whether CLONE INSTANCE exists (MySQL 8.0.17+). */
  clone: boolean;
}

/**
 * Every operation of issue 13's table for one server. Implementations: MariaDB 10.6+/11,
 * MySQL 8.0.23+/8.4 (+8.1-9.x), MySQL 5.7 and 8.0 before 8.0.23.
 */
export interface Dialect {
  readonly name: DialectName;
  readonly version: ServerVersion;
  /** GTID notation of this flavor, for election, completeness and errant checks. */
  readonly gtid: GtidAlgebra;

  // ---- replica status ----
  readReplicaStatus(): Read<NormalizedReplicaStatus | undefined>;

  // ---- follow a source, start/stop/reset ----
  followSource(source: SourceSpec, opts: FollowOptions, quote: QuoteMode): Statement;
  startReplication(): Statement;
  startReplicationIo(): Statement;
  startReplicationSql(): Statement;
  stopReplication(): Statement;
  stopReplicationIo(): Statement;
  stopReplicationSql(): Statement;
  /**
   * Where a pending stop of the IO thread stands, read from another session than the one that
   * issued it. Optional: a dialect without it makes callers wait for the stop to return.
   */
  readIoStop?(): Read<IoStopState>;
  /** Drops relay logs, keeps the source configuration. */
  resetReplica(): Statement;
  /** Forgets the source entirely (promotion). */
  resetReplicaAll(): Statement;

  // ---- GTIDs and binary log ----
  readGtidPositions(): Read<GtidPositions>;
  readBinlogStatus(): Read<BinlogStatus | undefined>;
  /** Waits until the node executed `gtid` (its flavor's notation), at most `timeoutSeconds`. */
  waitForGtid(gtid: string, timeoutSeconds: number): Read<WaitOutcome>;

  // ---- collect from a replica ahead ----
  /** Starts replication that applies up to and including `gtid`, then stops the applier. */
  startReplicationUntil(gtid: string): Statement;

  // ---- fence ----
  /** Statements that make the node refuse writes (`on`) or accept them again. */
  setReadOnly(on: boolean): Statement[];
  readReadOnly(): Read<{ readOnly: boolean; superReadOnly: boolean }>;
  /**
   * Every client session but this one, replication threads and system threads. Our own admin
   * account is no exception: it bypasses read_only, and a probe's heartbeat held by a frozen
   * server waits for a semi-sync ACK like any commit, keeping read_only from applying.
   */
  listClientSessions(): Read<ClientSession[]>;
  killSession(id: number): Statement;
  /**
   * Makes this session's metadata-lock waits fail at once (lock_wait_timeout = 0), so that a
   * read_only statement blocked by a commit in flight fails instead of waiting for it.
   */
  noLockWait(): Statement;
  /** This session's metadata-lock waits last at most `seconds` (lock_wait_timeout). */
  lockWait(seconds: number): Statement;
  /** This session's connection id (the id KILL and the process list use). */
  connectionId(): Read<number>;
  /**
   * Before a node that was a primary follows a source: makes its replication start from what it
   * executed itself (MariaDB: gtid_slave_pos = gtid_current_pos). MySQL auto-positioning uses
   * gtid_executed already: nothing to send.
   */
  adoptOwnGtidHistory(): Statement[];

  // ---- semi-sync ----
  /** Which plugins are installed (MySQL); MariaDB's are built in. */
  readSemiSyncPlugins(): Read<{ source: SemiSyncFamily | undefined; replica: SemiSyncFamily | undefined }>;
  semiSyncNames(family: SemiSyncFamily): SemiSyncNames;
  /** The family a fresh install of this version uses. */
  readonly preferredSemiSync: SemiSyncFamily;
  readSemiSyncVariables(names: SemiSyncNames): Read<Map<string, string>>;
  readSemiSyncStatus(names: SemiSyncNames): Read<Map<string, string>>;
  enableSemiSyncSource(names: SemiSyncNames, timeoutMs: number): Statement[];
  disableSemiSyncSource(names: SemiSyncNames): Statement[];
  setSemiSyncReplica(names: SemiSyncNames, on: boolean): Statement;

  // ---- what `check` verifies ----
  readServerSettings(): Read<ServerSettings>;
  /** SHOW GRANTS FOR CURRENT_USER(), one line per grant. */
  readGrants(): Read<string[]>;
  /**
   * The replica's heartbeat period in seconds, where SHOW ... STATUS does not carry it (MySQL:
   * performance_schema.replication_connection_configuration); undefined where it does (MariaDB's
   * Slave_heartbeat_period, in readReplicaStatus).
   */
  readHeartbeatPeriod(): Read<number | null> | undefined;
  /** The server's clock (epoch seconds, microseconds) and its oldest open transaction's age (s): for the prober. */
  readClockAndLongestTrx(): Read<{ serverNow: number; longestTrxSeconds: number }>;

  // ---- accounts ----
  /** Global privileges of the failover admin account, least that works on this version. */
  adminGrants(): readonly GrantNeed[];
  /** Table privileges of the failover admin account (a global grant of the privilege also covers them). */
  tableGrants(): readonly TableGrantNeed[];
  /** Global privileges of the replication account. */
  replicationGrants(): readonly string[];
  readonly rejoin: RejoinVocabulary;
}
