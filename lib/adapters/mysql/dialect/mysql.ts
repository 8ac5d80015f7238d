/**
 * MySQL: two implementations of the table, with the version gates the manual gives.
 *
 * | from   | change                                                                                  |
 * |--------|-----------------------------------------------------------------------------------------|
 * | 5.7.8  | super_read_only                                                                          |
 * | 8.0.0  | dynamic privileges (REPLICATION_SLAVE_ADMIN, SYSTEM_VARIABLES_ADMIN, CONNECTION_ADMIN)  |
 * | 8.0.4  | GET_MASTER_PUBLIC_KEY (caching_sha2_password without TLS)                               |
 * | 8.0.22 | START/STOP/RESET REPLICA, SHOW REPLICA STATUS, Replica_/Source_ column names             |
 * | 8.0.23 | CHANGE REPLICATION SOURCE TO, SOURCE_* options, GET_SOURCE_PUBLIC_KEY                    |
 * | 8.0.26 | semi-sync plugins rpl_semi_sync_source / rpl_semi_sync_replica (old ones still exist)    |
 * | 8.2.0  | SHOW BINARY LOG STATUS, RESET BINARY LOGS AND GTIDS (SHOW MASTER STATUS deprecated)     |
 * | 8.4    | SLAVE/MASTER statement forms and the old semi-sync plugins removed                      |
 *
 * 'mysql8' (8.0.23 and later) speaks the REPLICA/SOURCE forms only, so it is the one that runs
 * on 8.4. 'mysql57' (5.7, and 8.0 before 8.0.23) speaks the SLAVE/MASTER forms, which every
 * version it covers has. 8.0.22 has both; it stays on the SLAVE forms because CHANGE MASTER
 * is all it has for the source definition, and one vocabulary per node is easier to audit.
 */
import { mysqlGtidAlgebra } from '../../../core/gtid-set.ts';
import { UnsupportedServerError } from '../../../errors.ts';
import {
  clockAndLongestTrxRead,
  connectionIdRead,
  enableSemiSyncSourceStatements,
  grantsRead,
  killStatement,
  lockWaitStatement,
  noLockWaitStatement,
  parseWaitResult,
  processlistRead,
  STOP_TIMEOUT_MS,
  semiSyncStatusRead,
  semiSyncVariablesRead,
} from './mariadb.ts';
import { col, flag, ioState, nullableNum, num, str } from './rows.ts';
import { checkHost, checkPort, checkSeconds, checkUser, sqlStringLiteral } from './sql-text.ts';
import type {
  ClientSession,
  Dialect,
  DialectName,
  FollowOptions,
  GrantNeed,
  GtidPositions,
  NormalizedReplicaStatus,
  QuoteMode,
  Read,
  Row,
  SemiSyncFamily,
  SemiSyncNames,
  ServerSettings,
  ServerVersion,
  SourceSpec,
  Statement,
  TableGrantNeed,
  WaitOutcome,
} from './types.ts';

/** a >= b for (major, minor, patch). */
export function atLeast(v: ServerVersion, major: number, minor: number, patch: number): boolean {
  if (v.major !== major) return v.major > major;
  if (v.minor !== minor) return v.minor > minor;
  return v.patch >= patch;
}

const s = (sql: string, params: readonly unknown[] = [], timeoutMs?: number): Statement =>
  timeoutMs === undefined ? { sql, params } : { sql, params, timeoutMs };

/** GTID sets are sent in canonical one-line form: the server's ",\n" would be mangled by escaping. */
const canonical = (gtid: string) => mysqlGtidAlgebra.normalize(gtid);

/**
 * Parses one row of SHOW REPLICA STATUS (8.0.22+ names) or SHOW SLAVE STATUS (older names).
 * MySQL Reference Manual 8.4 15.7.7.35 / 5.7 13.7.5.34 list the columns.
 */
export function parseMysqlReplicaRow(r: Row): NormalizedReplicaStatus {
  const retrieved = str(r.Retrieved_Gtid_Set);
  const executed = str(r.Executed_Gtid_Set);
  const autoPosition = flag(r.Auto_Position);
  return {
    flavor: 'mysql',
    sourceHost: str(col(r, 'Source_Host', 'Master_Host')),
    sourcePort: num(col(r, 'Source_Port', 'Master_Port')),
    ioState: ioState(col(r, 'Replica_IO_Running', 'Slave_IO_Running')),
    sqlRunning: str(col(r, 'Replica_SQL_Running', 'Slave_SQL_Running')) === 'Yes',
    lastIoErrno: num(r.Last_IO_Errno),
    lastIoError: str(r.Last_IO_Error),
    lastSqlErrno: num(r.Last_SQL_Errno),
    lastSqlError: str(r.Last_SQL_Error),
    secondsBehindMaster: nullableNum(col(r, 'Seconds_Behind_Source', 'Seconds_Behind_Master')),
    // The received set: what the IO thread fetched plus what was applied (Retrieved_Gtid_Set
    // alone is emptied by RESET REPLICA and relay log purges).
    gtidIoPos: mysqlGtidAlgebra.union(retrieved, executed),
    // SHOW REPLICA STATUS has no heartbeat counter (performance_schema has it).
    heartbeatsReceived: null,
    usingGtid: autoPosition ? 'Auto_Position' : 'No',
    receivedGtid: mysqlGtidAlgebra.union(retrieved, executed),
    retrievedGtid: canonical(retrieved),
    executedGtid: canonical(executed),
    autoPosition,
    sourceId: str(col(r, 'Source_UUID', 'Master_UUID')),
  };
}

interface Words {
  /** REPLICA or SLAVE in START/STOP/RESET. */
  replica: 'REPLICA' | 'SLAVE';
  change: 'CHANGE REPLICATION SOURCE TO' | 'CHANGE MASTER TO';
  /** Option prefix in CHANGE ...: SOURCE_HOST or MASTER_HOST. */
  opt: 'SOURCE' | 'MASTER';
  showStatus: 'SHOW REPLICA STATUS' | 'SHOW SLAVE STATUS';
  publicKey: 'GET_SOURCE_PUBLIC_KEY' | 'GET_MASTER_PUBLIC_KEY' | undefined;
}

const SOURCE_REPLICA: SemiSyncNames = Object.freeze({
  family: 'source-replica',
  sourcePlugin: { name: 'rpl_semi_sync_source', soname: 'semisync_source.so' },
  replicaPlugin: { name: 'rpl_semi_sync_replica', soname: 'semisync_replica.so' },
  sourceEnabled: 'rpl_semi_sync_source_enabled',
  sourceTimeout: 'rpl_semi_sync_source_timeout',
  sourceWaitPoint: 'rpl_semi_sync_source_wait_point',
  replicaEnabled: 'rpl_semi_sync_replica_enabled',
  sourceStatus: 'Rpl_semi_sync_source_status',
  sourceClients: 'Rpl_semi_sync_source_clients',
  replicaStatus: 'Rpl_semi_sync_replica_status',
}) as SemiSyncNames;

const MASTER_SLAVE: SemiSyncNames = Object.freeze({
  family: 'master-slave',
  sourcePlugin: { name: 'rpl_semi_sync_master', soname: 'semisync_master.so' },
  replicaPlugin: { name: 'rpl_semi_sync_slave', soname: 'semisync_slave.so' },
  sourceEnabled: 'rpl_semi_sync_master_enabled',
  sourceTimeout: 'rpl_semi_sync_master_timeout',
  sourceWaitPoint: 'rpl_semi_sync_master_wait_point',
  replicaEnabled: 'rpl_semi_sync_slave_enabled',
  sourceStatus: 'Rpl_semi_sync_master_status',
  sourceClients: 'Rpl_semi_sync_master_clients',
  replicaStatus: 'Rpl_semi_sync_slave_status',
}) as SemiSyncNames;

/** Privileges of the admin account on MySQL 8 (dynamic privileges; no SUPER). */
const MYSQL8_GRANTS: readonly GrantNeed[] = Object.freeze([
  {
    privilege: 'REPLICATION CLIENT',
    usedFor: 'SHOW REPLICA STATUS, SHOW BINARY LOG STATUS / SHOW MASTER STATUS',
  },
  {
    privilege: 'REPLICATION_SLAVE_ADMIN',
    usedFor: 'START/STOP REPLICA, CHANGE REPLICATION SOURCE TO (repoint, catch-up, rejoin)',
  },
  {
    privilege: 'SYSTEM_VARIABLES_ADMIN',
    usedFor: 'SET GLOBAL super_read_only / read_only (fencing, promotion), rpl_semi_sync_* (promotion)',
  },
  { privilege: 'CONNECTION_ADMIN', usedFor: "KILL other users' sessions (fencing, switchover)" },
  {
    privilege: 'PROCESS',
    usedFor: 'information_schema.PROCESSLIST / INNODB_TRX of every user (fencing, probes)',
  },
  {
    privilege: 'RELOAD',
    usedFor: 'RESET REPLICA [ALL] (promotion, catch-up), RESET BINARY LOGS AND GTIDS (rebuild)',
  },
]);

/**
 * SHOW REPLICA STATUS has neither the heartbeat period nor the received-heartbeat counter; the
 * prober and check read them from performance_schema, whose tables need SELECT (Reference Manual
 * 8.4 29.12.11.5 and 29.12.11.13; 5.7 25.12.11.1 and 25.12.11.2). Without it the prober drops
 * that statement and the counter stays empty: a quiet primary is then told from a dead one only
 * by its GTIDs moving.
 */
const PERFORMANCE_SCHEMA_GRANTS: readonly TableGrantNeed[] = Object.freeze([
  {
    privilege: 'SELECT',
    table: 'performance_schema.replication_connection_configuration',
    usedFor: 'the replica heartbeat period (probes, check)',
  },
  {
    privilege: 'SELECT',
    table: 'performance_schema.replication_connection_status',
    usedFor: 'the received-heartbeat counter that tells a quiet primary from a dead one (probes)',
  },
]);

/** MySQL 5.7 has no dynamic privileges: SUPER covers SET GLOBAL, replica control and KILL. */
const MYSQL57_GRANTS: readonly GrantNeed[] = Object.freeze([
  { privilege: 'REPLICATION CLIENT', usedFor: 'SHOW SLAVE STATUS, SHOW MASTER STATUS' },
  {
    privilege: 'SUPER',
    usedFor:
      "START/STOP SLAVE, CHANGE MASTER TO, SET GLOBAL super_read_only / rpl_semi_sync_*, KILL other users' sessions",
  },
  { privilege: 'PROCESS', usedFor: 'information_schema.PROCESSLIST / INNODB_TRX of every user' },
  { privilege: 'RELOAD', usedFor: 'RESET SLAVE [ALL], RESET MASTER (rebuild)' },
]);

class MysqlDialect implements Dialect {
  readonly gtid = mysqlGtidAlgebra;
  readonly preferredSemiSync: SemiSyncFamily;
  readonly rejoin: { resetGtidHistory: string; clone: boolean };
  private readonly w: Words;

  constructor(
    readonly name: Exclude<DialectName, 'mariadb'>,
    readonly version: ServerVersion,
  ) {
    const modern = name === 'mysql8';
    this.w = {
      replica: modern ? 'REPLICA' : 'SLAVE',
      change: modern ? 'CHANGE REPLICATION SOURCE TO' : 'CHANGE MASTER TO',
      opt: modern ? 'SOURCE' : 'MASTER',
      showStatus: modern ? 'SHOW REPLICA STATUS' : 'SHOW SLAVE STATUS',
      publicKey: modern
        ? 'GET_SOURCE_PUBLIC_KEY'
        : atLeast(version, 8, 0, 4)
          ? 'GET_MASTER_PUBLIC_KEY'
          : undefined,
    };
    this.preferredSemiSync = atLeast(version, 8, 0, 26) ? 'source-replica' : 'master-slave';
    this.rejoin = {
      resetGtidHistory: atLeast(version, 8, 2, 0) ? 'RESET BINARY LOGS AND GTIDS' : 'RESET MASTER',
      clone: atLeast(version, 8, 0, 17),
    };
  }

  readReplicaStatus(): Read<NormalizedReplicaStatus | undefined> {
    return {
      sql: this.w.showStatus,
      params: [],
      // One row per channel; we configure only the default channel ('').
      parse: (rows) => {
        const row = rows.find((r) => str(r.Channel_Name) === '') ?? rows[0];
        return row === undefined ? undefined : parseMysqlReplicaRow(row);
      },
    };
  }

  followSource(source: SourceSpec, opts: FollowOptions, quote: QuoteMode): Statement {
    const o = this.w.opt;
    const host = sqlStringLiteral(checkHost(source.host), quote, 'source host');
    const user = sqlStringLiteral(checkUser(source.user), quote, 'replication user');
    const password = sqlStringLiteral(source.password, quote, 'replication password');
    const retry = Math.max(1, Math.round(checkSeconds(opts.connectRetrySeconds, 'connect retry')));
    const heartbeat = checkSeconds(opts.heartbeatPeriodSeconds, 'heartbeat period');
    const parts = [
      `${o}_HOST = ${host}`,
      `${o}_PORT = ${checkPort(source.port)}`,
      `${o}_USER = ${user}`,
      `${o}_PASSWORD = ${password}`,
      `${o}_AUTO_POSITION = 1`,
      `${o}_CONNECT_RETRY = ${retry}`,
      `${o}_HEARTBEAT_PERIOD = ${heartbeat}`,
    ];
    if (opts.noDelay) parts.push(`${o}_DELAY = 0`);
    // caching_sha2_password (the 8.0 default) over a plain connection needs the source's RSA
    // key, or TLS. 5.7 defaults to mysql_native_password and has neither option.
    if (this.version.major >= 8) {
      if (opts.sha2Auth === 'tls') parts.push(`${o}_SSL = 1`);
      else if (this.w.publicKey !== undefined) parts.push(`${this.w.publicKey} = 1`);
    }
    return { sql: `${this.w.change} ${parts.join(', ')}`, params: [], secrets: [source.password] };
  }

  startReplication = () => s(`START ${this.w.replica}`);
  startReplicationIo = () => s(`START ${this.w.replica} IO_THREAD`);
  startReplicationSql = () => s(`START ${this.w.replica} SQL_THREAD`);
  stopReplication = () => s(`STOP ${this.w.replica}`, [], STOP_TIMEOUT_MS);
  stopReplicationIo = () => s(`STOP ${this.w.replica} IO_THREAD`, [], STOP_TIMEOUT_MS);
  stopReplicationSql = () => s(`STOP ${this.w.replica} SQL_THREAD`, [], STOP_TIMEOUT_MS);
  resetReplica = () => s(`RESET ${this.w.replica}`);
  resetReplicaAll = () => s(`RESET ${this.w.replica} ALL`);

  readGtidPositions(): Read<GtidPositions> {
    return {
      sql: 'SELECT @@GLOBAL.gtid_executed AS executed, @@GLOBAL.gtid_purged AS purged',
      params: [],
      parse: (rows) => {
        const r = rows[0] ?? {};
        return { flavor: 'mysql', executed: canonical(str(r.executed)), purged: canonical(str(r.purged)) };
      },
    };
  }

  readBinlogStatus() {
    return {
      // 8.4 removed SHOW MASTER STATUS (Reference Manual 8.4 15.7.7.1 "SHOW BINARY LOG STATUS").
      sql: atLeast(this.version, 8, 2, 0) ? 'SHOW BINARY LOG STATUS' : 'SHOW MASTER STATUS',
      params: [],
      parse: (rows: readonly Row[]) => {
        const r = rows[0];
        if (r === undefined) return undefined;
        return {
          file: str(r.File),
          position: num(r.Position),
          executedGtid: canonical(str(r.Executed_Gtid_Set)),
          doDb: str(r.Binlog_Do_DB),
          ignoreDb: str(r.Binlog_Ignore_DB),
        };
      },
    };
  }

  /**
   * WAIT_FOR_EXECUTED_GTID_SET on every version, 5.7 included (5.7.5+): unlike
   * WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS (deprecated in 8.0.18, the 5.7 row) it does not
   * depend on the applier running and answers 0 / 1 instead of an event count.
   */
  waitForGtid(gtid: string, timeoutSeconds: number): Read<WaitOutcome> {
    // Whole seconds: fractional timeouts are accepted only by later 8.0 releases.
    const t = Math.max(1, Math.ceil(checkSeconds(timeoutSeconds, 'relay log wait')));
    return {
      sql: 'SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS w',
      params: [canonical(gtid), t],
      timeoutMs: t * 1000 + 2000,
      parse: (rows) => parseWaitResult(rows, { reached: 0, timeout: 1 }, 'WAIT_FOR_EXECUTED_GTID_SET'),
    };
  }

  /**
   * Both threads start (the receiver must fetch from the new source); the applier stops once
   * every GTID of `gtid` is applied. The receiver may fetch past it (an errant tail on the
   * source): the caller resets the relay log afterwards.
   */
  startReplicationUntil(gtid: string): Statement {
    return s(`START ${this.w.replica} UNTIL SQL_AFTER_GTIDS = ?`, [canonical(gtid)]);
  }

  setReadOnly(on: boolean): Statement[] {
    // super_read_only=ON also sets read_only=ON and stops SUPER / CONNECTION_ADMIN writers too.
    return on
      ? [s('SET GLOBAL super_read_only = ON')]
      : [s('SET GLOBAL super_read_only = OFF'), s('SET GLOBAL read_only = OFF')];
  }

  readReadOnly() {
    return {
      sql: 'SELECT @@GLOBAL.read_only AS ro, @@GLOBAL.super_read_only AS sro',
      params: [],
      parse: (rows: readonly Row[]) => ({ readOnly: flag(rows[0]?.ro), superReadOnly: flag(rows[0]?.sro) }),
    };
  }

  listClientSessions(): Read<ClientSession[]> {
    // Receiver/applier threads run as 'system user'; a replica's dump thread on us is Binlog Dump (GTID).
    return processlistRead(['Binlog Dump', 'Binlog Dump GTID', 'Daemon']);
  }

  noLockWait = noLockWaitStatement;
  lockWait = lockWaitStatement;
  connectionId = connectionIdRead;

  readServerSettings(): Read<ServerSettings> {
    // 8.0.26 renamed log_slave_updates and slave_net_timeout (Reference Manual 8.0, "Changes in MySQL 8.0.26").
    const renamed = atLeast(this.version, 8, 0, 26);
    return {
      sql:
        'SELECT @@server_id AS server_id, @@version AS version, @@version_comment AS version_comment, ' +
        '@@read_only AS read_only, @@super_read_only AS super_read_only, @@log_bin AS log_bin, ' +
        `@@${renamed ? 'log_replica_updates' : 'log_slave_updates'} AS log_replica_updates, ` +
        '@@gtid_mode AS gtid_mode, @@enforce_gtid_consistency AS enforce_gtid_consistency, ' +
        `@@binlog_format AS binlog_format, @@${renamed ? 'replica_net_timeout' : 'slave_net_timeout'} AS net_timeout`,
      params: [],
      parse: (rows) => {
        const r = rows[0] ?? {};
        const gtidMode = str(r.gtid_mode);
        // enforce_gtid_consistency reads ON/OFF/WARN (or 1/0/2 as a number).
        const enforce = str(r.enforce_gtid_consistency);
        const enforced = enforce === 'ON' || enforce === '1';
        return {
          serverId: num(r.server_id),
          version: str(r.version),
          versionComment: str(r.version_comment),
          readOnly: flag(r.read_only),
          superReadOnly: flag(r.super_read_only),
          logBin: flag(r.log_bin),
          logReplicaUpdates: flag(r.log_replica_updates),
          gtidStrict: gtidMode === 'ON' && enforced,
          gtidSetting: `gtid_mode=${gtidMode || '?'}, enforce_gtid_consistency=${enforce || '?'}`,
          binlogFormat: str(r.binlog_format),
          replicaNetTimeout: num(r.net_timeout),
          filters: {},
        };
      },
    };
  }

  readGrants = grantsRead;
  readClockAndLongestTrx = clockAndLongestTrxRead;

  readHeartbeatPeriod(): Read<number | null> {
    // Reference Manual 8.4 29.12.11.5 "The replication_connection_configuration Table": HEARTBEAT_INTERVAL.
    return {
      sql: "SELECT HEARTBEAT_INTERVAL AS period FROM performance_schema.replication_connection_configuration WHERE CHANNEL_NAME = ''",
      params: [],
      parse: (rows) => (rows[0] === undefined ? null : nullableNum(rows[0].period)),
    };
  }

  // Auto-positioning sends @@gtid_executed, which holds the node's own transactions already.
  adoptOwnGtidHistory = (): Statement[] => [];

  killSession(id: number): Statement {
    return killStatement(id);
  }

  readSemiSyncPlugins() {
    return {
      sql:
        'SELECT PLUGIN_NAME, PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME IN ' +
        "('rpl_semi_sync_source', 'rpl_semi_sync_replica', 'rpl_semi_sync_master', 'rpl_semi_sync_slave')",
      params: [],
      parse: (rows: readonly Row[]) => {
        const active = new Set(
          rows.filter((r) => str(r.PLUGIN_STATUS) === 'ACTIVE').map((r) => str(r.PLUGIN_NAME)),
        );
        const pick = (modern: string, legacy: string): SemiSyncFamily | undefined =>
          active.has(modern) ? 'source-replica' : active.has(legacy) ? 'master-slave' : undefined;
        return {
          source: pick('rpl_semi_sync_source', 'rpl_semi_sync_master'),
          replica: pick('rpl_semi_sync_replica', 'rpl_semi_sync_slave'),
        };
      },
    };
  }

  semiSyncNames(family: SemiSyncFamily): SemiSyncNames {
    if (family === 'source-replica') {
      if (!atLeast(this.version, 8, 0, 26)) {
        throw new UnsupportedServerError(
          `MySQL ${fmt(this.version)} has no rpl_semi_sync_source plugin (added in 8.0.26); use rpl_semi_sync_master`,
        );
      }
      return SOURCE_REPLICA;
    }
    if (family === 'master-slave') {
      if (atLeast(this.version, 8, 4, 0)) {
        throw new UnsupportedServerError(
          `MySQL ${fmt(this.version)} removed the rpl_semi_sync_master plugin; install rpl_semi_sync_source`,
        );
      }
      return MASTER_SLAVE;
    }
    throw new UnsupportedServerError('MySQL has no built-in semi-sync; it needs the semi-sync plugins');
  }

  readSemiSyncVariables = semiSyncVariablesRead;
  readSemiSyncStatus = semiSyncStatusRead;
  enableSemiSyncSource = enableSemiSyncSourceStatements;
  disableSemiSyncSource = (n: SemiSyncNames) => [s(`SET GLOBAL ${n.sourceEnabled} = OFF`)];
  setSemiSyncReplica = (n: SemiSyncNames, on: boolean) =>
    s(`SET GLOBAL ${n.replicaEnabled} = ${on ? 'ON' : 'OFF'}`);

  adminGrants(): readonly GrantNeed[] {
    return this.version.major >= 8 ? MYSQL8_GRANTS : MYSQL57_GRANTS;
  }

  tableGrants(): readonly TableGrantNeed[] {
    return PERFORMANCE_SCHEMA_GRANTS;
  }

  replicationGrants(): readonly string[] {
    return ['REPLICATION SLAVE'];
  }
}

export function fmt(v: ServerVersion): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}

/** MySQL 8.0.23 and later (8.4, 9.x): REPLICA / SOURCE forms only. */
export function mysql8Dialect(version: ServerVersion): Dialect {
  return new MysqlDialect('mysql8', version);
}

/** MySQL 5.7.8+ and 8.0 before 8.0.23: SLAVE / MASTER forms. */
export function mysql57Dialect(version: ServerVersion): Dialect {
  return new MysqlDialect('mysql57', version);
}

export type { ClientSession };
