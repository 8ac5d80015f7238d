/**
 * What one probe round reads from one node, per dialect, as ONE batch of statements: the health
 * check sends them as a single multi-statement query over its own held connection (one round
 * trip instead of four), other callers may send them one by one. Pure: statements and a parser
 * of their result sets, no I/O (like the rest of the dialect seam).
 *
 * Every statement is a constant of this file (no value from a user, a config or a server is ever
 * written into the text): that is what makes sending them as one multi-statement query safe.
 */
import { mysqlGtidAlgebra } from '../../../core/gtid-set.ts';
import type { ReplicationStatus, SemiSyncStatus } from '../../../core/types.ts';
import { parseMariadbReplicaRow } from './mariadb.ts';
import { atLeast, parseMysqlReplicaRow } from './mysql.ts';
import { flag, nameValueRows, nullableNum, num, str } from './rows.ts';
import type { Dialect, Flavor, NormalizedReplicaStatus, Row } from './types.ts';

/** The probe's reading of one node (NodeProbe's fields without nodeId, probeMs and the heartbeat write). */
export interface ProbeReading {
  flavor: Flavor;
  serverId: number;
  version: string;
  readOnly: boolean;
  /** MySQL super_read_only; undefined on MariaDB (no such variable). */
  superReadOnly?: boolean;
  logBin: boolean;
  logSlaveUpdates: boolean;
  /** MariaDB @@gtid_binlog_pos; MySQL @@gtid_executed (canonical, one line). */
  gtidBinlogPos: string;
  /** MariaDB @@gtid_current_pos; MySQL @@gtid_executed (canonical, one line). */
  gtidCurrentPos: string;
  /** MariaDB @@gtid_slave_pos; '' on MySQL (no such notion). */
  gtidSlavePos: string;
  semiSync: SemiSyncStatus;
  longestTrxSeconds: number;
  /** UNIX_TIMESTAMP(SYSDATE(6)) when the variables were read: bounds the heartbeat write. */
  serverNow: number;
  replication?: NormalizedReplicaStatus;
  /** Replication heartbeat lag in ms (only when asked for; null: no heartbeat row readable). */
  heartbeatLagMs?: number | null;
}

export interface ProbeBatchOptions {
  /** Read the heartbeat table's lag (replicas: the primary writes it). */
  heartbeatLag: boolean;
}

export interface ProbeBatch {
  statements: readonly string[];
  /**
   * How many statements at the end are optional: they read tables that may be missing (the
   * heartbeat table before the primary's first write) or need a grant an operator may not have
   * given (MySQL performance_schema). See {@link runProbeBatch}.
   */
  optional: number;
  /** Parses the result sets, one per statement sent (the optional ones may be missing). */
  parse(results: readonly (readonly Row[])[]): ProbeReading;
}

/** Errors an optional statement may fail with; any other error is the probe's answer. */
export const OPTIONAL_STATEMENT_ERRORS: ReadonlySet<string> = new Set([
  'ER_NO_SUCH_TABLE',
  'ER_BAD_DB_ERROR',
  'ER_TABLEACCESS_DENIED_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
]);

/**
 * Sends `batch` through `run` (one round trip on a batching session). The server stops at the
 * first failing statement, so when an optional statement fails with one of
 * {@link OPTIONAL_STATEMENT_ERRORS} the batch is sent again without the last optional statement,
 * and so on: the node answered, and a missing heartbeat table is no reason to lose the rest.
 * Any other error is thrown as it came (a timeout stays a timeout).
 */
export async function runProbeBatch(
  batch: ProbeBatch,
  run: (statements: readonly string[]) => Promise<Row[][]>,
): Promise<Row[][]> {
  const required = batch.statements.length - batch.optional;
  for (let n = batch.statements.length; ; n--) {
    try {
      return await run(n === batch.statements.length ? batch.statements : batch.statements.slice(0, n));
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (n === required || typeof code !== 'string' || !OPTIONAL_STATEMENT_ERRORS.has(code)) throw err;
    }
  }
}

const HEARTBEAT_LAG =
  'SELECT TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) AS lag_us FROM failover_meta.heartbeat WHERE id = 1';

const LONGEST_TRX =
  '(SELECT COALESCE(MAX(TIMESTAMPDIFF(SECOND, trx_started, NOW())), 0) FROM information_schema.innodb_trx) AS longest_trx';

function parseLag(rows: readonly Row[] | undefined): number | null {
  const v = rows?.[0]?.lag_us;
  return v === null || v === undefined ? null : Math.round(Number(v) / 1000);
}

/** The batch for `dialect`'s server. */
export function probeBatch(dialect: Dialect, opts: ProbeBatchOptions): ProbeBatch {
  return dialect.version.flavor === 'mariadb' ? mariadbBatch(opts) : mysqlBatch(dialect, opts);
}

/**
 * MariaDB 10.6+/11: the statements the prober has always sent (mariadb-lab.md), now in one batch.
 * Semi-sync is built in, so its variables are plain @@ reads.
 */
function mariadbBatch(opts: ProbeBatchOptions): ProbeBatch {
  const statements = [
    'SELECT @@server_id AS server_id, @@version AS version, @@read_only AS read_only, @@log_bin AS log_bin, ' +
      '@@log_slave_updates AS log_slave_updates, @@gtid_binlog_pos AS gtid_binlog_pos, ' +
      '@@gtid_current_pos AS gtid_current_pos, @@gtid_slave_pos AS gtid_slave_pos, ' +
      '@@rpl_semi_sync_master_enabled AS sm_enabled, @@rpl_semi_sync_slave_enabled AS ss_enabled, ' +
      `UNIX_TIMESTAMP(SYSDATE(6)) AS server_now, ${LONGEST_TRX}`,
    'SHOW GLOBAL STATUS WHERE Variable_name IN ' +
      "('Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_clients', 'Rpl_semi_sync_slave_status')",
    'SHOW ALL SLAVES STATUS',
    ...(opts.heartbeatLag ? [HEARTBEAT_LAG] : []),
  ];
  return {
    statements,
    optional: opts.heartbeatLag ? 1 : 0,
    parse: (results) => {
      const v = results[0]?.[0];
      if (v === undefined) throw new Error('empty variables row');
      const st = nameValueRows(results[1] ?? []);
      const rows = results[2] ?? [];
      const row = rows.find((r) => str(r.Connection_name) === '') ?? rows[0];
      const reading: ProbeReading = {
        flavor: 'mariadb',
        serverId: num(v.server_id),
        version: str(v.version),
        readOnly: flag(v.read_only),
        logBin: flag(v.log_bin),
        logSlaveUpdates: flag(v.log_slave_updates),
        gtidBinlogPos: str(v.gtid_binlog_pos),
        gtidCurrentPos: str(v.gtid_current_pos),
        gtidSlavePos: str(v.gtid_slave_pos),
        semiSync: {
          masterEnabled: flag(v.sm_enabled),
          masterActive: flag(st.get('Rpl_semi_sync_master_status')),
          masterClients: num(st.get('Rpl_semi_sync_master_clients')),
          slaveEnabled: flag(v.ss_enabled),
          slaveActive: flag(st.get('Rpl_semi_sync_slave_status')),
        },
        longestTrxSeconds: num(v.longest_trx),
        serverNow: Number(v.server_now),
      };
      if (row !== undefined) reading.replication = parseMariadbReplicaRow(row);
      if (opts.heartbeatLag) reading.heartbeatLagMs = parseLag(results[3]);
      return reading;
    },
  };
}

/**
 * MySQL 5.7.8+, 8.0, 8.4: settings and @@gtid_executed in one SELECT; semi-sync through SHOW
 * (a plugin's variables do not exist until it is installed, and `@@name` of a missing variable is
 * an error); SHOW REPLICA STATUS (8.0.22+) or SHOW SLAVE STATUS; the receiver's heartbeat period
 * and counter from performance_schema, since SHOW REPLICA STATUS has neither (Reference Manual
 * 8.4 29.12.11.5 and 29.12.11.13, 5.7 25.12.11.1 and 25.12.11.2). The counter is what tells a
 * quiet primary from a dead one in the hang analysis, as MariaDB's Slave_received_heartbeats.
 */
function mysqlBatch(dialect: Dialect, opts: ProbeBatchOptions): ProbeBatch {
  const v = dialect.version;
  // 8.0.26 renamed log_slave_updates (Reference Manual 8.0, "Changes in MySQL 8.0.26").
  const logReplicaUpdates = atLeast(v, 8, 0, 26) ? 'log_replica_updates' : 'log_slave_updates';
  // 8.0.26 added the source/replica plugins; 8.4 removed the master/slave ones. Both may be
  // installed in between (an upgraded server): ask for every name this version may have.
  const families: Array<'source-replica' | 'master-slave'> = [];
  if (atLeast(v, 8, 0, 26)) families.push('source-replica');
  if (!atLeast(v, 8, 4, 0)) families.push('master-slave');
  const names = families.map((f) =>
    f === 'source-replica'
      ? {
          sourceEnabled: 'rpl_semi_sync_source_enabled',
          replicaEnabled: 'rpl_semi_sync_replica_enabled',
          sourceStatus: 'Rpl_semi_sync_source_status',
          sourceClients: 'Rpl_semi_sync_source_clients',
          replicaStatus: 'Rpl_semi_sync_replica_status',
        }
      : {
          sourceEnabled: 'rpl_semi_sync_master_enabled',
          replicaEnabled: 'rpl_semi_sync_slave_enabled',
          sourceStatus: 'Rpl_semi_sync_master_status',
          sourceClients: 'Rpl_semi_sync_master_clients',
          replicaStatus: 'Rpl_semi_sync_slave_status',
        },
  );
  const list = (xs: string[]) => xs.map((x) => `'${x}'`).join(', ');
  const modern = dialect.name === 'mysql8';
  const statements = [
    'SELECT @@server_id AS server_id, @@version AS version, @@read_only AS read_only, ' +
      `@@super_read_only AS super_read_only, @@log_bin AS log_bin, @@${logReplicaUpdates} AS log_slave_updates, ` +
      `@@GLOBAL.gtid_executed AS gtid_executed, UNIX_TIMESTAMP(SYSDATE(6)) AS server_now, ${LONGEST_TRX}`,
    `SHOW GLOBAL VARIABLES WHERE Variable_name IN (${list(names.flatMap((n) => [n.sourceEnabled, n.replicaEnabled]))})`,
    `SHOW GLOBAL STATUS WHERE Variable_name IN (${list(names.flatMap((n) => [n.sourceStatus, n.sourceClients, n.replicaStatus]))})`,
    modern ? 'SHOW REPLICA STATUS' : 'SHOW SLAVE STATUS',
    'SELECT c.HEARTBEAT_INTERVAL AS period, s.COUNT_RECEIVED_HEARTBEATS AS heartbeats ' +
      'FROM performance_schema.replication_connection_configuration c ' +
      'LEFT JOIN performance_schema.replication_connection_status s ON s.CHANNEL_NAME = c.CHANNEL_NAME ' +
      "WHERE c.CHANNEL_NAME = ''",
    ...(opts.heartbeatLag ? [HEARTBEAT_LAG] : []),
  ];
  return {
    statements,
    optional: opts.heartbeatLag ? 2 : 1,
    parse: (results) => {
      const r = results[0]?.[0];
      if (r === undefined) throw new Error('empty variables row');
      const vars = nameValueRows(results[1] ?? []);
      const status = nameValueRows(results[2] ?? []);
      // The family whose variable exists is the installed plugin (per side).
      const source = names.find((n) => vars.has(n.sourceEnabled));
      const replica = names.find((n) => vars.has(n.replicaEnabled));
      const executed = mysqlGtidAlgebra.normalize(str(r.gtid_executed));
      const rows = results[3] ?? [];
      const row = rows.find((x) => str(x.Channel_Name) === '') ?? rows[0];
      const reading: ProbeReading = {
        flavor: 'mysql',
        serverId: num(r.server_id),
        version: str(r.version),
        readOnly: flag(r.read_only),
        superReadOnly: flag(r.super_read_only),
        logBin: flag(r.log_bin),
        logSlaveUpdates: flag(r.log_slave_updates),
        // One GTID set holds everything the node executed, replicated or its own.
        gtidBinlogPos: executed,
        gtidCurrentPos: executed,
        gtidSlavePos: '',
        semiSync: {
          masterEnabled: source !== undefined && flag(vars.get(source.sourceEnabled)),
          masterActive: source !== undefined && flag(status.get(source.sourceStatus)),
          masterClients: source === undefined ? 0 : num(status.get(source.sourceClients)),
          slaveEnabled: replica !== undefined && flag(vars.get(replica.replicaEnabled)),
          slaveActive: replica !== undefined && flag(status.get(replica.replicaStatus)),
        },
        longestTrxSeconds: num(r.longest_trx),
        serverNow: Number(r.server_now),
      };
      if (row !== undefined) {
        const hb = results[4]?.[0];
        reading.replication = {
          ...parseMysqlReplicaRow(row),
          // Missing (no grant on performance_schema, or it is disabled): unknown, as before.
          heartbeatsReceived: hb === undefined ? null : nullableNum(hb.heartbeats),
          heartbeatPeriodSeconds: hb === undefined ? null : nullableNum(hb.period),
        };
      }
      if (opts.heartbeatLag) reading.heartbeatLagMs = parseLag(results[5]);
      return reading;
    },
  };
}

/**
 * The decision core's ReplicationStatus out of a normalised one. MySQL keeps Retrieved_Gtid_Set
 * and the flavor (the election's errant check needs what the receiver fetched apart from local
 * writes); a MariaDB probe stays as it always was (Gtid_IO_Pos is what it received).
 */
export function toReplicationStatus(r: NormalizedReplicaStatus): ReplicationStatus {
  const core: ReplicationStatus = {
    sourceHost: r.sourceHost,
    sourcePort: r.sourcePort,
    ioState: r.ioState,
    sqlRunning: r.sqlRunning,
    lastIoErrno: r.lastIoErrno,
    lastIoError: r.lastIoError,
    lastSqlErrno: r.lastSqlErrno,
    lastSqlError: r.lastSqlError,
    secondsBehindMaster: r.secondsBehindMaster,
    gtidIoPos: r.gtidIoPos,
    heartbeatsReceived: r.heartbeatsReceived,
    heartbeatPeriodSeconds: r.heartbeatPeriodSeconds ?? null,
    usingGtid: r.usingGtid,
  };
  return r.flavor === 'mysql' ? { ...core, retrievedGtid: r.retrievedGtid, flavor: 'mysql' } : core;
}
