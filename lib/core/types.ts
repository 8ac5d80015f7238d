/**
 * The facts the decision core works on. Adapters (lib/adapters/mysql) fill these in from
 * real servers; the core (analyze, confirm, elect, plan) only reads them. Nothing here
 * knows about SQL, SDKs or clocks: time arrives as `takenAt` / `now` parameters.
 */

/** How a probe of one node failed, as far as the prober can tell. */
export type ProbeErrorKind =
  /** TCP refused / reset: the process is gone (crash) — unambiguous. */
  | 'refused'
  /** Connect or query timed out: hung server or network partition — ambiguous. */
  | 'timeout'
  /**
   * No route to the host (EHOSTUNREACH, ENETUNREACH, EHOSTDOWN): a network fault or a host that
   * is down, never proof that the process is gone — ambiguous, like a timeout.
   */
  | 'unreachable'
  /** Authentication or privilege error: the server is up, our account is wrong. */
  | 'auth'
  | 'other';

export interface ProbeError {
  kind: ProbeErrorKind;
  /** Driver error code, e.g. ECONNREFUSED, ETIMEDOUT, ER_ACCESS_DENIED_ERROR. */
  code: string;
  message: string;
}

/** Replication state of a replica (SHOW SLAVE STATUS, SHOW ALL SLAVES STATUS). */
export interface ReplicationStatus {
  sourceHost: string;
  sourcePort: number;
  /** Slave_IO_Running: 'Yes' | 'No' | 'Connecting' / 'Preparing'. */
  ioState: 'Yes' | 'No' | 'Connecting' | 'Preparing';
  sqlRunning: boolean;
  lastIoErrno: number;
  lastIoError: string;
  lastSqlErrno: number;
  lastSqlError: string;
  secondsBehindMaster: number | null;
  /**
   * What this replica has RECEIVED from its source: MariaDB Gtid_IO_Pos (per-domain positions);
   * MySQL Retrieved_Gtid_Set ∪ Executed_Gtid_Set (a GTID set, canonical one-line form).
   */
  gtidIoPos: string;
  /**
   * Slave_received_heartbeats from SHOW ALL SLAVES STATUS (MySQL: COUNT_RECEIVED_HEARTBEATS of
   * performance_schema.replication_connection_status); grows while the source is alive.
   */
  heartbeatsReceived: number | null;
  /**
   * Slave_heartbeat_period in seconds (SHOW ALL SLAVES STATUS): how long a quiet source may send
   * nothing at all. Silence shorter than this proves nothing. Undefined/null when not reported.
   */
  heartbeatPeriodSeconds?: number | null;
  usingGtid: string;
  /**
   * MySQL Retrieved_Gtid_Set (canonical): what the receiver fetched, never a local write. On
   * MySQL `gtidIoPos` is Retrieved ∪ Executed, so the errant check needs this one; without it
   * the election notes that it could not check. MariaDB probes leave it out (Gtid_IO_Pos is it).
   */
  retrievedGtid?: string;
  /** Flavor of the server that reported this status, when the dialect's parser filled it. */
  flavor?: 'mariadb' | 'mysql';
}

export interface SemiSyncStatus {
  /** rpl_semi_sync_master_enabled */
  masterEnabled: boolean;
  /** Rpl_semi_sync_master_status: ON while the primary really waits for acks. */
  masterActive: boolean;
  /** Rpl_semi_sync_master_clients */
  masterClients: number;
  /** rpl_semi_sync_slave_enabled */
  slaveEnabled: boolean;
  /** Rpl_semi_sync_slave_status */
  slaveActive: boolean;
}

/** One node as seen by one probe. */
export interface NodeProbe {
  nodeId: string;
  reachable: boolean;
  error?: ProbeError;
  /** Round trip of the probe in milliseconds. */
  probeMs: number;
  /**
   * The server family, detected per node (@@version): it says how to read the GTID fields
   * (MariaDB domain-server-seq positions; MySQL GTID sets). Absent in probes recorded before
   * the prober spoke MySQL: read those as MariaDB.
   */
  flavor?: 'mariadb' | 'mysql';
  serverId?: number;
  version?: string;
  readOnly?: boolean;
  /** MySQL super_read_only (read_only for accounts with SUPER / CONNECTION_ADMIN too); absent on MariaDB. */
  superReadOnly?: boolean;
  /** The primary probe writes a heartbeat row; true when that write committed. */
  writable?: boolean;
  /** Lag measured from the heartbeat table (pt-heartbeat style), in ms, replicas only. */
  heartbeatLagMs?: number | null;
  logBin?: boolean;
  logSlaveUpdates?: boolean;
  /** MariaDB @@gtid_binlog_pos; MySQL @@gtid_executed (a GTID set, canonical one-line form). */
  gtidBinlogPos?: string;
  /** MariaDB @@gtid_current_pos; MySQL @@gtid_executed (a GTID set, canonical one-line form). */
  gtidCurrentPos?: string;
  /** MariaDB @@gtid_slave_pos; '' on MySQL. */
  gtidSlavePos?: string;
  /** Undefined when the node is not configured as a replica. */
  replication?: ReplicationStatus;
  semiSync?: SemiSyncStatus;
  /** Age in seconds of the oldest open transaction (information_schema.innodb_trx). */
  longestTrxSeconds?: number;
}

/** Everything one probe round saw of one cluster. */
export interface ClusterSnapshot {
  cluster: string;
  /** Epoch milliseconds at which the round started. */
  takenAt: number;
  /** The node the state table believes is the primary. */
  primaryId: string;
  nodes: NodeProbe[];
}

/** Named states of a cluster, after orchestrator's analysis codes. */
export type AnalysisCode =
  | 'NoProblem'
  | 'DeadPrimary'
  | 'DeadPrimaryAndSomeReplicas'
  | 'UnreachablePrimary'
  | 'AllUnreachable'
  | 'PrimaryNotWritable'
  | 'ReplicaDown'
  | 'ReplicationStopped'
  | 'ReplicaLagging'
  | 'SemiSyncDegraded'
  | 'LongRunningTransaction';

export type Evidence =
  /** Refused connections and every reachable replica reports the source down: a crash. */
  | 'unambiguous'
  /** Timeouts or stalled positions: a hang or a partition, needs the full window. */
  | 'ambiguous';

export interface Finding {
  code: AnalysisCode;
  /** One line for people. */
  description: string;
  nodeId?: string;
}

export interface Analysis {
  cluster: string;
  takenAt: number;
  /** The most severe finding's code; NoProblem when there is none. */
  code: AnalysisCode;
  description: string;
  /** Whether this code may lead to an automatic failover (after confirmation). */
  actionable: boolean;
  evidence?: Evidence;
  findings: Finding[];
  primaryId: string;
}

export type PromotionRule = 'prefer' | 'neutral' | 'must_not';

export type FailoverMode = 'auto' | 'elect' | 'fail';

export interface ElectionPolicy {
  mode: FailoverMode;
  /** Node ids in configured order (ties broken by this order). */
  order: string[];
  rules: Record<string, PromotionRule>;
  /**
   * Replicas further behind than this (seconds) are not eligible: behind the freshest survivor,
   * and behind the primary as last seen (its position and the time of that probe).
   */
  maxLagSeconds: number;
  /** An operator forced the failover: lag is reported but vetoes nobody. */
  ignoreLag?: boolean;
}

export interface CandidateVerdict {
  nodeId: string;
  eligible: boolean;
  /** Why the node was or was not chosen, for the report. */
  reasons: string[];
}

export type Election =
  | { kind: 'candidate'; nodeId: string; receivedGtid: string; verdicts: CandidateVerdict[] }
  | { kind: 'veto'; reason: string; verdicts: CandidateVerdict[] };
