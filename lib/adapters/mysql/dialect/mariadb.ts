/**
 * MariaDB 10.6+ / 11: the dialect the failover code has always spoken (measured in
 * /work/shared/notes/mariadb-lab.md): SHOW ALL SLAVES STATUS, MASTER_USE_GTID=slave_pos,
 * MASTER_GTID_WAIT, built-in semi-sync, read_only.
 */
import { mariadbGtidAlgebra } from '../../../core/gtid-set.ts';
import { UnsupportedServerError } from '../../../errors.ts';
import { ADMIN_GRANT_USES, REPLICATION_GRANTS } from '../../../operator/grants.ts';
import { col, flag, ioState, nameValueRows, nullableNum, num, str } from './rows.ts';
import { checkHost, checkPort, checkSeconds, checkUser, sqlStringLiteral } from './sql-text.ts';
import type {
  ClientSession,
  Dialect,
  FollowOptions,
  IoStopState,
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
  WaitOutcome,
} from './types.ts';

const s = (sql: string, params: readonly unknown[] = [], timeoutMs?: number): Statement =>
  timeoutMs === undefined ? { sql, params } : { sql, params, timeoutMs };

/** STOP SLAVE takes ~2 s when the source is frozen (mariadb-lab.md); give it room. */
export const STOP_TIMEOUT_MS = 10_000;

/** Parses one row of SHOW ALL SLAVES STATUS (MariaDB column names). */
export function parseMariadbReplicaRow(r: Row): NormalizedReplicaStatus {
  const received = str(r.Gtid_IO_Pos).trim();
  const usingGtid = str(r.Using_Gtid);
  return {
    flavor: 'mariadb',
    sourceHost: str(r.Master_Host),
    sourcePort: num(r.Master_Port),
    ioState: ioState(r.Slave_IO_Running),
    sqlRunning: str(r.Slave_SQL_Running) === 'Yes',
    lastIoErrno: num(r.Last_IO_Errno),
    lastIoError: str(r.Last_IO_Error),
    lastSqlErrno: num(r.Last_SQL_Errno),
    lastSqlError: str(r.Last_SQL_Error),
    secondsBehindMaster: nullableNum(r.Seconds_Behind_Master),
    gtidIoPos: received,
    heartbeatsReceived: r.Slave_received_heartbeats === undefined ? null : num(r.Slave_received_heartbeats),
    usingGtid,
    heartbeatPeriodSeconds: nullableNum(r.Slave_heartbeat_period),
    receivedGtid: received === '' ? '' : mariadbGtidAlgebra.normalize(received),
    retrievedGtid: received === '' ? '' : mariadbGtidAlgebra.normalize(received),
    executedGtid: mariadbGtidAlgebra.normalize(str(col(r, 'Gtid_Slave_Pos'))),
    autoPosition: usingGtid !== '' && usingGtid !== 'No',
    sourceId: str(r.Master_Server_Id),
  };
}

class MariadbDialect implements Dialect {
  readonly name = 'mariadb' as const;
  readonly gtid = mariadbGtidAlgebra;
  readonly preferredSemiSync: SemiSyncFamily = 'builtin';
  readonly rejoin = { resetGtidHistory: 'RESET MASTER', clone: false };

  constructor(readonly version: ServerVersion) {}

  readReplicaStatus(): Read<NormalizedReplicaStatus | undefined> {
    return {
      sql: 'SHOW ALL SLAVES STATUS',
      params: [],
      // We configure only the default (unnamed) connection.
      parse: (rows) => {
        const row = rows.find((r) => str(r.Connection_name) === '') ?? rows[0];
        return row === undefined ? undefined : parseMariadbReplicaRow(row);
      },
    };
  }

  followSource(source: SourceSpec, opts: FollowOptions, quote: QuoteMode): Statement {
    const host = sqlStringLiteral(checkHost(source.host), quote, 'source host');
    const user = sqlStringLiteral(checkUser(source.user), quote, 'replication user');
    const password = sqlStringLiteral(source.password, quote, 'replication password');
    const retry = Math.max(1, Math.round(checkSeconds(opts.connectRetrySeconds, 'connect retry')));
    const heartbeat = checkSeconds(opts.heartbeatPeriodSeconds, 'heartbeat period');
    return {
      sql:
        `CHANGE MASTER TO MASTER_HOST = ${host}, MASTER_PORT = ${checkPort(source.port)}, ` +
        `MASTER_USER = ${user}, MASTER_PASSWORD = ${password}, MASTER_USE_GTID = slave_pos, ` +
        `MASTER_CONNECT_RETRY = ${retry}, MASTER_HEARTBEAT_PERIOD = ${heartbeat}` +
        (opts.noDelay ? ', MASTER_DELAY = 0' : ''),
      params: [],
      secrets: [source.password],
    };
  }

  startReplication = () => s('START SLAVE');
  startReplicationIo = () => s('START SLAVE IO_THREAD');
  startReplicationSql = () => s('START SLAVE SQL_THREAD');
  stopReplication = () => s('STOP SLAVE', [], STOP_TIMEOUT_MS);
  stopReplicationIo = () => s('STOP SLAVE IO_THREAD', [], STOP_TIMEOUT_MS);
  stopReplicationSql = () => s('STOP SLAVE SQL_THREAD', [], STOP_TIMEOUT_MS);
  /**
   * STOP SLAVE sets the stop flag first, then signals the IO thread and waits for it in 2 s
   * rounds; the thread checks the flag after every read, before it queues (or acknowledges) an
   * event. Its session shows 'Killing slave' meanwhile (measured: 10.11). Only an IO_THREAD stop
   * counts: a full STOP SLAVE stops the applier first and sets the receiver's flag only after.
   */
  readIoStop(): Read<IoStopState> {
    return {
      sql:
        'SELECT COMMAND AS command, STATE AS state, TIME_MS AS time_ms FROM information_schema.PROCESSLIST ' +
        "WHERE COMMAND = 'Slave_IO' OR (COMMAND = 'Query' AND STATE = 'Killing slave' " +
        "AND (INFO LIKE 'STOP SLAVE IO_THREAD%' OR INFO LIKE 'STOP REPLICA IO_THREAD%'))",
      params: [],
      parse: (rows: readonly Row[]) => {
        const stops = rows.filter((r) => str(r.command) === 'Query').map((r) => Number(str(r.time_ms)) || 0);
        const io = rows.find((r) => str(r.command) === 'Slave_IO');
        return {
          stopMs: stops.length > 0 ? Math.max(...stops) : undefined,
          ioThread: io ? str(io.state) : undefined,
        };
      },
    };
  }

  resetReplica = () => s('RESET SLAVE');
  resetReplicaAll = () => s('RESET SLAVE ALL');

  readGtidPositions() {
    return {
      sql:
        'SELECT @@GLOBAL.gtid_binlog_pos AS binlog, @@GLOBAL.gtid_current_pos AS current, @@GLOBAL.gtid_slave_pos AS slave, ' +
        '@@GLOBAL.gtid_binlog_state AS binlog_state, @@GLOBAL.server_id AS server_id',
      params: [],
      parse: (rows: readonly Row[]) => {
        const r = rows[0] ?? {};
        return {
          flavor: 'mariadb' as const,
          executed: mariadbGtidAlgebra.normalize(str(r.current)),
          purged: '',
          binlog: mariadbGtidAlgebra.normalize(str(r.binlog)),
          slave: mariadbGtidAlgebra.normalize(str(r.slave)),
          // Raw: one GTID per (domain, server_id), which positions cannot show (rejoin's errant check).
          binlogState: str(r.binlog_state).trim(),
          serverId: num(r.server_id),
        };
      },
    };
  }

  readBinlogStatus() {
    return {
      sql: 'SHOW MASTER STATUS',
      params: [],
      parse: (rows: readonly Row[]) => {
        const r = rows[0];
        return r === undefined
          ? undefined
          : {
              file: str(r.File),
              position: num(r.Position),
              executedGtid: '',
              doDb: str(r.Binlog_Do_DB),
              ignoreDb: str(r.Binlog_Ignore_DB),
            };
      },
    };
  }

  waitForGtid(gtid: string, timeoutSeconds: number): Read<WaitOutcome> {
    const pos = mariadbGtidAlgebra.normalize(gtid);
    const t = checkSeconds(timeoutSeconds, 'relay log wait');
    return {
      sql: 'SELECT MASTER_GTID_WAIT(?, ?) AS w',
      params: [pos, t],
      timeoutMs: Math.ceil(t * 1000) + 2000,
      // 0: reached; -1: timed out (MariaDB KB "MASTER_GTID_WAIT").
      parse: (rows) => parseWaitResult(rows, { reached: 0, timeout: -1 }, 'MASTER_GTID_WAIT'),
    };
  }

  startReplicationUntil(gtid: string): Statement {
    return s('START SLAVE UNTIL master_gtid_pos = ?', [mariadbGtidAlgebra.normalize(gtid)]);
  }

  setReadOnly(on: boolean): Statement[] {
    return [s(`SET GLOBAL read_only = ${on ? 'ON' : 'OFF'}`)];
  }

  readReadOnly() {
    return {
      sql: 'SELECT @@GLOBAL.read_only AS ro',
      params: [],
      parse: (rows: readonly Row[]) => ({ readOnly: flag(rows[0]?.ro), superReadOnly: false }),
    };
  }

  listClientSessions(): Read<ClientSession[]> {
    return processlistRead([
      'Binlog Dump',
      'Binlog Dump GTID',
      'Daemon',
      'Slave_IO',
      'Slave_SQL',
      'Slave_worker',
    ]);
  }

  noLockWait = noLockWaitStatement;
  lockWait = lockWaitStatement;
  connectionId = connectionIdRead;

  adoptOwnGtidHistory(): Statement[] {
    // A former primary's gtid_slave_pos is stale (its own writes are in gtid_binlog_pos only):
    // MASTER_USE_GTID=slave_pos would ask the new source for transactions it already has.
    return [s('SET GLOBAL gtid_slave_pos = @@gtid_current_pos')];
  }

  killSession(id: number): Statement {
    return killStatement(id);
  }

  readSemiSyncPlugins() {
    // Built in since 10.3: nothing to install, nothing to read.
    return {
      sql: 'SELECT 1 AS builtin',
      params: [],
      parse: () => ({ source: 'builtin' as const, replica: 'builtin' as const }),
    };
  }

  semiSyncNames(family: SemiSyncFamily): SemiSyncNames {
    if (family !== 'builtin') {
      throw new UnsupportedServerError(`MariaDB has built-in semi-sync only, not the ${family} plugins`);
    }
    return {
      family,
      sourceEnabled: 'rpl_semi_sync_master_enabled',
      sourceTimeout: 'rpl_semi_sync_master_timeout',
      sourceWaitPoint: 'rpl_semi_sync_master_wait_point',
      replicaEnabled: 'rpl_semi_sync_slave_enabled',
      sourceStatus: 'Rpl_semi_sync_master_status',
      sourceClients: 'Rpl_semi_sync_master_clients',
      replicaStatus: 'Rpl_semi_sync_slave_status',
    };
  }

  readSemiSyncVariables = semiSyncVariablesRead;
  readSemiSyncStatus = semiSyncStatusRead;
  enableSemiSyncSource = enableSemiSyncSourceStatements;
  disableSemiSyncSource = (n: SemiSyncNames) => [s(`SET GLOBAL ${n.sourceEnabled} = OFF`)];
  setSemiSyncReplica = (n: SemiSyncNames, on: boolean) =>
    s(`SET GLOBAL ${n.replicaEnabled} = ${on ? 'ON' : 'OFF'}`);

  readServerSettings(): Read<ServerSettings> {
    return {
      sql:
        'SELECT @@server_id AS server_id, @@version AS version, @@version_comment AS version_comment, ' +
        '@@read_only AS read_only, @@log_bin AS log_bin, @@log_slave_updates AS log_replica_updates, ' +
        '@@gtid_strict_mode AS gtid_strict_mode, @@binlog_format AS binlog_format, @@slave_net_timeout AS net_timeout, ' +
        MARIADB_FILTER_VARS.map((f) => `@@${f} AS ${f}`).join(', '),
      params: [],
      parse: (rows) => {
        const r = rows[0] ?? {};
        return {
          serverId: num(r.server_id),
          version: str(r.version),
          versionComment: str(r.version_comment),
          readOnly: flag(r.read_only),
          superReadOnly: undefined,
          logBin: flag(r.log_bin),
          logReplicaUpdates: flag(r.log_replica_updates),
          gtidStrict: flag(r.gtid_strict_mode),
          gtidSetting: `gtid_strict_mode=${flag(r.gtid_strict_mode) ? 'ON' : 'OFF'}`,
          binlogFormat: str(r.binlog_format),
          replicaNetTimeout: num(r.net_timeout),
          filters: Object.fromEntries(MARIADB_FILTER_VARS.map((f) => [f, str(r[f])])),
        };
      },
    };
  }

  readGrants = grantsRead;
  readHeartbeatPeriod = () => undefined;
  readClockAndLongestTrx = clockAndLongestTrxRead;

  adminGrants() {
    return Object.entries(ADMIN_GRANT_USES).map(([privilege, usedFor]) => ({ privilege, usedFor }));
  }

  /** SHOW ALL SLAVES STATUS carries the heartbeat counter: no table grant needed. */
  tableGrants() {
    return [];
  }

  replicationGrants() {
    return REPLICATION_GRANTS;
  }
}

// ---- shared by both flavors ----

const MARIADB_FILTER_VARS = [
  'replicate_do_db',
  'replicate_ignore_db',
  'replicate_do_table',
  'replicate_ignore_table',
  'replicate_wild_do_table',
  'replicate_wild_ignore_table',
] as const;

export function clockAndLongestTrxRead(): Read<{ serverNow: number; longestTrxSeconds: number }> {
  return {
    sql:
      'SELECT UNIX_TIMESTAMP(SYSDATE(6)) AS server_now, ' +
      '(SELECT COALESCE(MAX(TIMESTAMPDIFF(SECOND, trx_started, NOW())), 0) FROM information_schema.innodb_trx) AS longest_trx',
    params: [],
    parse: (rows) => ({ serverNow: num(rows[0]?.server_now), longestTrxSeconds: num(rows[0]?.longest_trx) }),
  };
}

export function grantsRead(): Read<string[]> {
  return {
    sql: 'SHOW GRANTS FOR CURRENT_USER()',
    params: [],
    parse: (rows) => rows.map((r) => str(Object.values(r)[0])),
  };
}

/** Reads a wait function's single result; NULL or an unknown value is an error, not a timeout. */
export function parseWaitResult(
  rows: readonly Row[],
  codes: { reached: number; timeout: number },
  fn: string,
): WaitOutcome {
  const v = rows[0]?.w;
  if (v === null || v === undefined) throw new Error(`${fn} returned NULL (invalid GTID argument?)`);
  const n = Number(v);
  if (n === codes.reached) return 'reached';
  if (n === codes.timeout) return 'timeout';
  throw new Error(`${fn} returned ${String(v)}, expected ${codes.reached} or ${codes.timeout}`);
}

export function processlistRead(replicationCommands: readonly string[]): Read<ClientSession[]> {
  const marks = replicationCommands.map(() => '?').join(', ');
  return {
    sql:
      'SELECT ID, USER, COMMAND, STATE FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() ' +
      `AND USER NOT IN ('system user', 'event_scheduler') AND COMMAND NOT IN (${marks})`,
    params: [...replicationCommands],
    parse: (rows) =>
      rows.map((r) => ({
        id: num(r.ID),
        user: str(r.USER),
        command: str(r.COMMAND),
        awaitingReplicaAck: /semi-sync ACK/i.test(str(r.STATE)),
        state: str(r.STATE),
      })),
  };
}

export function lockWaitStatement(seconds: number): Statement {
  return s(`SET SESSION lock_wait_timeout = ${Math.max(1, Math.ceil(seconds))}`);
}

export function connectionIdRead(): Read<number> {
  return { sql: 'SELECT CONNECTION_ID() AS id', params: [], parse: (rows) => num(rows[0]?.id) };
}

export function noLockWaitStatement(): Statement {
  return s('SET SESSION lock_wait_timeout = 0');
}

export function killStatement(id: number): Statement {
  if (!Number.isSafeInteger(id) || id < 1) throw new Error(`Session id ${id} is not a positive integer`);
  return s(`KILL CONNECTION ${id}`);
}

export function semiSyncVariablesRead(n: SemiSyncNames): Read<Map<string, string>> {
  // SHOW ... WHERE, not @@var: a variable of a plugin that is not installed is then simply absent.
  return {
    sql: 'SHOW GLOBAL VARIABLES WHERE Variable_name IN (?, ?, ?, ?)',
    params: [n.sourceEnabled, n.sourceTimeout, n.sourceWaitPoint, n.replicaEnabled],
    parse: nameValueRows,
  };
}

export function semiSyncStatusRead(n: SemiSyncNames): Read<Map<string, string>> {
  return {
    sql: 'SHOW GLOBAL STATUS WHERE Variable_name IN (?, ?, ?)',
    params: [n.sourceStatus, n.sourceClients, n.replicaStatus],
    parse: nameValueRows,
  };
}

export function enableSemiSyncSourceStatements(n: SemiSyncNames, timeoutMs: number): Statement[] {
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0) {
    throw new Error(`Semi-sync timeout ${timeoutMs} ms is not a non-negative integer`);
  }
  // AFTER_SYNC: a transaction is visible to others only once a replica has it (lossless).
  return [
    s(`SET GLOBAL ${n.sourceTimeout} = ${timeoutMs}`),
    s(`SET GLOBAL ${n.sourceWaitPoint} = 'AFTER_SYNC'`),
    s(`SET GLOBAL ${n.sourceEnabled} = ON`),
  ];
}

/** The MariaDB dialect for `version` (flavor 'mariadb', 10.6 or later). */
export function mariadbDialect(version: ServerVersion): Dialect {
  return new MariadbDialect(version);
}
