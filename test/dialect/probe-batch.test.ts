/**
 * The health check's prober through the dialect seam: the exact batch it sends to each server
 * (statement level), and the NodeProbe it makes of rows shaped exactly like MySQL's (result
 * level; fixtures name their manual sections). No MySQL server runs here (issue 13), so a small
 * model of one answers: it holds a server's variables, status and replica rows from the
 * fixtures, filters `SHOW ... WHERE Variable_name IN (...)` as the server does, and fails a
 * statement the way that version would (an unknown variable, a statement it does not have, a
 * missing table or a denied one). MariaDB is probed live in test/health/probe-connections.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { detectFlavor } from '../../lib/adapters/mysql/dialect/flavor.ts';
import { probeBatch } from '../../lib/adapters/mysql/dialect/probe-batch.ts';
import type { Dialect, Row } from '../../lib/adapters/mysql/dialect/types.ts';
import { openInst } from '../../lib/adapters/mysql/operations.ts';
import { detectDialect, type ProbeSession, readNode } from '../../lib/adapters/mysql/probe.ts';
import { UnsupportedServerError } from '../../lib/errors.ts';
import {
  MYSQL_REPLICATION_CONNECTION_57,
  MYSQL_REPLICATION_CONNECTION_84,
  MYSQL57_REPLICA_VARIABLES,
  MYSQL84_PRIMARY_VARIABLES,
  MYSQL84_REPLICA_VARIABLES,
  PLUGINS_MIXED_80,
  SEMISYNC_57_STATUS,
  SEMISYNC_57_VARIABLES,
  SEMISYNC_REPLICA_STATUS_84,
  SEMISYNC_REPLICA_VARIABLES_84,
  SEMISYNC_SOURCE_STATUS_84,
  SEMISYNC_SOURCE_VARIABLES_84,
  SHOW_REPLICA_STATUS_84,
  SHOW_REPLICA_STATUS_84_CONNECTING,
  SHOW_SLAVE_STATUS_57,
} from './fixtures/mysql-manual.ts';

const MY84 = detectFlavor('8.4.3').dialect;
const MY8036 = detectFlavor('8.0.36').dialect;
const MY8023 = detectFlavor('8.0.23').dialect;
const MY57 = detectFlavor('5.7.44-log').dialect;
const MARIADB = detectFlavor('10.11.6-MariaDB-0+deb12u1-log').dialect;

const LONGEST_TRX =
  '(SELECT COALESCE(MAX(TIMESTAMPDIFF(SECOND, trx_started, NOW())), 0) FROM information_schema.innodb_trx) AS longest_trx';
const PFS =
  'SELECT c.HEARTBEAT_INTERVAL AS period, s.COUNT_RECEIVED_HEARTBEATS AS heartbeats ' +
  'FROM performance_schema.replication_connection_configuration c ' +
  'LEFT JOIN performance_schema.replication_connection_status s ON s.CHANNEL_NAME = c.CHANNEL_NAME ' +
  "WHERE c.CHANNEL_NAME = ''";
const LAG =
  'SELECT TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) AS lag_us FROM failover_meta.heartbeat WHERE id = 1';

class ServerError extends Error {
  constructor(
    readonly code: string,
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

interface ServerModel {
  /** What `SELECT @@name` returns, per variable the server has. */
  variables: Record<string, string>;
  /** Rows of SHOW GLOBAL VARIABLES / SHOW GLOBAL STATUS (only plugin variables matter here). */
  showVariables: Row[];
  showStatus: Row[];
  /** The replica status statement this version has, and its rows. */
  replicaStatement: 'SHOW REPLICA STATUS' | 'SHOW SLAVE STATUS' | 'SHOW ALL SLAVES STATUS';
  replicaRows: Row[];
  replicationConnection?: { configuration: Row; status: Row } | 'denied' | undefined;
  /** The heartbeat row's age in microseconds, or no heartbeat table yet. */
  heartbeat: string | 'missing';
  serverNow: string;
  longestTrx: string;
}

/** A session that answers the probe's statements from a server model; counts round trips. */
function modelSession(m: ServerModel) {
  const trips: string[][] = [];
  const writes: string[] = [];
  const answer = (sql: string): Row[] => {
    if (/^SELECT @@version AS version, @@version_comment AS comment$/.test(sql))
      return [{ version: m.variables.version, comment: m.variables.version_comment }];
    if (sql.startsWith('SELECT @@')) {
      const row: Row = {};
      for (const [, name, alias] of sql.matchAll(/@@(?:GLOBAL\.)?(\w+) AS (\w+)/g)) {
        if (!(name! in m.variables))
          throw new ServerError('ER_UNKNOWN_SYSTEM_VARIABLE', 1193, `Unknown system variable '${name}'`);
        row[alias!] = m.variables[name!];
      }
      if (sql.includes('UNIX_TIMESTAMP(SYSDATE(6)) AS server_now')) row.server_now = m.serverNow;
      if (sql.includes(LONGEST_TRX)) row.longest_trx = m.longestTrx;
      return [row];
    }
    const show = /^SHOW GLOBAL (VARIABLES|STATUS) WHERE Variable_name IN \((.*)\)$/.exec(sql);
    if (show) {
      const names = new Set([...show[2]!.matchAll(/'([^']*)'/g)].map((x) => x[1]!.toLowerCase()));
      const rows = show[1] === 'VARIABLES' ? m.showVariables : m.showStatus;
      return rows.filter((r) => names.has(String(r.Variable_name).toLowerCase()));
    }
    if (/^SHOW (REPLICA|SLAVE|ALL SLAVES) STATUS$/.test(sql)) {
      if (sql !== m.replicaStatement)
        throw new ServerError('ER_PARSE_ERROR', 1064, 'You have an error in your SQL syntax');
      return m.replicaRows;
    }
    if (sql === PFS) {
      const rc = m.replicationConnection;
      if (rc === 'denied')
        throw new ServerError(
          'ER_TABLEACCESS_DENIED_ERROR',
          1142,
          "SELECT command denied to user 'failover_admin'@'%' for table 'replication_connection_configuration'",
        );
      return rc === undefined
        ? []
        : [{ period: rc.configuration.HEARTBEAT_INTERVAL, heartbeats: rc.status.COUNT_RECEIVED_HEARTBEATS }];
    }
    if (sql === LAG) {
      if (m.heartbeat === 'missing')
        throw new ServerError('ER_NO_SUCH_TABLE', 1146, "Table 'failover_meta.heartbeat' doesn't exist");
      return [{ lag_us: m.heartbeat }];
    }
    throw new Error(`the model does not know this statement: ${sql}`);
  };
  const session: ProbeSession = {
    query: async <T>(sql: string) => {
      trips.push([sql]);
      return answer(sql) as T[];
    },
    // As the server does: statements in order, stop at the first error.
    queryBatch: async (statements: readonly string[]) => {
      trips.push([...statements]);
      return statements.map(answer) as Array<Record<string, unknown>[]>;
    },
    execute: async (sql: string) => {
      trips.push([sql]);
      writes.push(sql);
      // WHERE @@global.read_only = 0: the row is written on a read-write server only.
      return { affectedRows: m.variables.read_only === '0' ? 1 : 0 };
    },
  };
  return { session, trips, writes };
}

const MYSQL84_REPLICA: ServerModel = {
  variables: MYSQL84_REPLICA_VARIABLES,
  showVariables: SEMISYNC_REPLICA_VARIABLES_84,
  showStatus: SEMISYNC_REPLICA_STATUS_84,
  replicaStatement: 'SHOW REPLICA STATUS',
  replicaRows: [SHOW_REPLICA_STATUS_84],
  replicationConnection: MYSQL_REPLICATION_CONNECTION_84,
  heartbeat: '412000',
  serverNow: '1733050000.123456',
  longestTrx: '0',
};

const target = (nodeId: string, isPrimary = false) => ({ nodeId, host: '10.0.1.12', port: 3306, isPrimary });

describe('the prober’s batch, statement level', () => {
  it('MySQL 8.4: settings with super_read_only, log_replica_updates and gtid_executed; source/replica semi-sync names only; SHOW REPLICA STATUS; heartbeats from performance_schema', () => {
    const b = probeBatch(MY84, { heartbeatLag: true });
    expect(b.statements).toEqual([
      'SELECT @@server_id AS server_id, @@version AS version, @@read_only AS read_only, ' +
        '@@super_read_only AS super_read_only, @@log_bin AS log_bin, @@log_replica_updates AS log_slave_updates, ' +
        `@@GLOBAL.gtid_executed AS gtid_executed, UNIX_TIMESTAMP(SYSDATE(6)) AS server_now, ${LONGEST_TRX}`,
      "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('rpl_semi_sync_source_enabled', 'rpl_semi_sync_replica_enabled')",
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_source_status', 'Rpl_semi_sync_source_clients', 'Rpl_semi_sync_replica_status')",
      'SHOW REPLICA STATUS',
      PFS,
      LAG,
    ]);
    expect(b.optional).toBe(2);
    // The primary writes its heartbeat instead of reading one.
    expect(probeBatch(MY84, { heartbeatLag: false }).statements).toEqual(b.statements.slice(0, 5));
  });

  it('MySQL 8.0.26 to 8.3: both semi-sync plugin families may be installed, so both are asked for', () => {
    const b = probeBatch(MY8036, { heartbeatLag: false });
    expect(b.statements[1]).toBe(
      'SHOW GLOBAL VARIABLES WHERE Variable_name IN (' +
        "'rpl_semi_sync_source_enabled', 'rpl_semi_sync_replica_enabled', 'rpl_semi_sync_master_enabled', 'rpl_semi_sync_slave_enabled')",
    );
    expect(b.statements[3]).toBe('SHOW REPLICA STATUS');
    expect(b.statements[0]).toContain('@@log_replica_updates AS log_slave_updates');
  });

  it('MySQL 8.0.23-8.0.25 and 5.7: log_slave_updates, master/slave semi-sync names; 5.7 (and 8.0 before 8.0.23) SHOW SLAVE STATUS', () => {
    const b80 = probeBatch(MY8023, { heartbeatLag: true });
    expect(b80.statements[0]).toContain('@@log_slave_updates AS log_slave_updates');
    expect(b80.statements[1]).toBe(
      "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('rpl_semi_sync_master_enabled', 'rpl_semi_sync_slave_enabled')",
    );
    expect(b80.statements[3]).toBe('SHOW REPLICA STATUS');
    const b57 = probeBatch(MY57, { heartbeatLag: true });
    expect(b57.statements).toEqual([
      'SELECT @@server_id AS server_id, @@version AS version, @@read_only AS read_only, ' +
        '@@super_read_only AS super_read_only, @@log_bin AS log_bin, @@log_slave_updates AS log_slave_updates, ' +
        `@@GLOBAL.gtid_executed AS gtid_executed, UNIX_TIMESTAMP(SYSDATE(6)) AS server_now, ${LONGEST_TRX}`,
      "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('rpl_semi_sync_master_enabled', 'rpl_semi_sync_slave_enabled')",
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_clients', 'Rpl_semi_sync_slave_status')",
      'SHOW SLAVE STATUS',
      PFS,
      LAG,
    ]);
  });

  it('MariaDB: the statements the prober has always sent (built-in semi-sync, SHOW ALL SLAVES STATUS), in one batch', () => {
    expect(probeBatch(MARIADB, { heartbeatLag: true }).statements).toEqual([
      'SELECT @@server_id AS server_id, @@version AS version, @@read_only AS read_only, @@log_bin AS log_bin, ' +
        '@@log_slave_updates AS log_slave_updates, @@gtid_binlog_pos AS gtid_binlog_pos, ' +
        '@@gtid_current_pos AS gtid_current_pos, @@gtid_slave_pos AS gtid_slave_pos, ' +
        '@@rpl_semi_sync_master_enabled AS sm_enabled, @@rpl_semi_sync_slave_enabled AS ss_enabled, ' +
        `UNIX_TIMESTAMP(SYSDATE(6)) AS server_now, ${LONGEST_TRX}`,
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_clients', 'Rpl_semi_sync_slave_status')",
      'SHOW ALL SLAVES STATUS',
      LAG,
    ]);
  });

  it('every statement is a constant (no placeholder, no value from outside), so one multi-statement query is safe', () => {
    for (const d of [MY84, MY8036, MY8023, MY57, MARIADB]) {
      for (const lag of [true, false]) {
        const { statements } = probeBatch(d, { heartbeatLag: lag });
        for (const sql of statements) {
          expect(sql).not.toContain('?');
          expect(sql).not.toContain(';');
        }
        expect(probeBatch(d, { heartbeatLag: lag }).statements).toEqual(statements);
      }
    }
  });
});

describe('the prober on MySQL, result level', () => {
  it('reads a MySQL 8.4 replica into the NodeProbe the analysis knows, in ONE round trip', async () => {
    const { session, trips, writes } = modelSession(MYSQL84_REPLICA);
    const p = await readNode(session, target('db2'), MY84);
    expect(trips).toHaveLength(1);
    expect(writes).toEqual([]);
    expect(p).toEqual({
      nodeId: 'db2',
      reachable: true,
      probeMs: 0,
      flavor: 'mysql',
      serverId: 2,
      version: '8.4.3',
      readOnly: true,
      superReadOnly: true,
      logBin: true,
      logSlaveUpdates: true,
      // The multi-line, upper-case set, canonical: lower case, sorted, one line.
      gtidBinlogPos: '2174b383-5441-11e8-b90a-c80aa9429562:1-2,73f86016-978b-11ee-ade5-8d2a2a562feb:1-3',
      gtidCurrentPos: '2174b383-5441-11e8-b90a-c80aa9429562:1-2,73f86016-978b-11ee-ade5-8d2a2a562feb:1-3',
      gtidSlavePos: '',
      semiSync: {
        masterEnabled: false,
        masterActive: false,
        masterClients: 0,
        slaveEnabled: true,
        slaveActive: true,
      },
      longestTrxSeconds: 0,
      replication: {
        sourceHost: '127.0.0.1',
        sourcePort: 13000,
        ioState: 'Yes',
        sqlRunning: true,
        lastIoErrno: 0,
        lastIoError: '',
        lastSqlErrno: 0,
        lastSqlError: '',
        secondsBehindMaster: 0,
        gtidIoPos: '73f86016-978b-11ee-ade5-8d2a2a562feb:1-3',
        heartbeatsReceived: 17,
        heartbeatPeriodSeconds: 30,
        usingGtid: 'Auto_Position',
        // What the receiver fetched apart from local writes: the election's errant check.
        retrievedGtid: '73f86016-978b-11ee-ade5-8d2a2a562feb:1-3',
        flavor: 'mysql',
      },
      heartbeatLagMs: 412,
    });
  });

  it('reads a MySQL 8.4 replica whose source died: Connecting, NULL lag, received = Retrieved ∪ Executed of the multi-line sets', async () => {
    const { session } = modelSession({
      ...MYSQL84_REPLICA,
      replicaRows: [SHOW_REPLICA_STATUS_84_CONNECTING],
    });
    const p = await readNode(session, target('db2'), MY84);
    expect(p.replication).toMatchObject({
      ioState: 'Connecting',
      sqlRunning: true,
      lastIoErrno: 2003,
      secondsBehindMaster: null,
      gtidIoPos: '2174b383-5441-11e8-b90a-c80aa9429562:1-2,73f86016-978b-11ee-ade5-8d2a2a562feb:1-5',
    });
  });

  it('reads a MySQL 8.4 primary: writable through the read_only-guarded heartbeat, source semi-sync ON with 2 clients; two round trips', async () => {
    const { session, trips, writes } = modelSession({
      ...MYSQL84_REPLICA,
      variables: MYSQL84_PRIMARY_VARIABLES,
      showVariables: SEMISYNC_SOURCE_VARIABLES_84,
      showStatus: SEMISYNC_SOURCE_STATUS_84,
      replicaRows: [],
      replicationConnection: undefined,
    });
    const p = await readNode(session, target('db1', true), MY84);
    expect(trips).toHaveLength(2);
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatch(
      /WHERE @@global\.read_only = 0 AND UNIX_TIMESTAMP\(SYSDATE\(6\)\) < 1733050000\.\d{6}/,
    );
    expect(p).toMatchObject({
      flavor: 'mysql',
      serverId: 1,
      readOnly: false,
      superReadOnly: false,
      writable: true,
      gtidBinlogPos: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5',
      gtidCurrentPos: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5',
      semiSync: {
        masterEnabled: true,
        masterActive: true,
        masterClients: 2,
        slaveEnabled: false,
        slaveActive: false,
      },
    });
    expect(p.replication).toBeUndefined();
    expect(p.heartbeatLagMs).toBeUndefined();
  });

  it('a fenced MySQL primary (super_read_only) is not writable: the guarded heartbeat writes nothing', async () => {
    const { session } = modelSession({
      ...MYSQL84_REPLICA,
      variables: { ...MYSQL84_PRIMARY_VARIABLES, read_only: '1', super_read_only: '1' },
      replicaRows: [],
    });
    const p = await readNode(session, target('db1', true), MY84);
    expect(p).toMatchObject({ readOnly: true, superReadOnly: true, writable: false });
  });

  it('reads a MySQL 5.7 replica: SHOW SLAVE STATUS (Slave_/Master_ names), master/slave semi-sync, multi-line gtid_executed', async () => {
    const { session, trips } = modelSession({
      variables: MYSQL57_REPLICA_VARIABLES,
      showVariables: SEMISYNC_57_VARIABLES,
      showStatus: SEMISYNC_57_STATUS,
      replicaStatement: 'SHOW SLAVE STATUS',
      replicaRows: [SHOW_SLAVE_STATUS_57],
      replicationConnection: MYSQL_REPLICATION_CONNECTION_57,
      heartbeat: '95000',
      serverNow: '1733050000.5',
      longestTrx: '3',
    });
    const p = await readNode(session, target('db2'), MY57);
    expect(trips).toHaveLength(1);
    expect(p).toMatchObject({
      flavor: 'mysql',
      version: '5.7.44-log',
      readOnly: true,
      superReadOnly: true,
      logSlaveUpdates: true,
      gtidCurrentPos: '2174b383-5441-11e8-b90a-c80aa9429562:1-2,3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5',
      gtidSlavePos: '',
      semiSync: {
        masterEnabled: false,
        masterActive: false,
        masterClients: 0,
        slaveEnabled: true,
        slaveActive: true,
      },
      longestTrxSeconds: 3,
      heartbeatLagMs: 95,
      replication: {
        sourceHost: 'localhost',
        sourcePort: 13000,
        ioState: 'Yes',
        sqlRunning: true,
        secondsBehindMaster: 0,
        gtidIoPos: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5',
        heartbeatsReceived: 342,
        heartbeatPeriodSeconds: 1,
        usingGtid: 'Auto_Position',
        retrievedGtid: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5',
        flavor: 'mysql',
      },
    });
  });

  it('an upgraded 8.0 running the old source plugin and the new replica plugin: each side read under its installed names', async () => {
    const { session } = modelSession({
      ...MYSQL84_REPLICA,
      variables: { ...MYSQL84_REPLICA_VARIABLES, version: '8.0.36' },
      // PLUGINS_MIXED_80's plugins: rpl_semi_sync_master (source side) and rpl_semi_sync_replica.
      showVariables: [
        { Variable_name: 'rpl_semi_sync_master_enabled', Value: 'ON' },
        { Variable_name: 'rpl_semi_sync_replica_enabled', Value: 'ON' },
      ],
      showStatus: [
        { Variable_name: 'Rpl_semi_sync_master_status', Value: 'ON' },
        { Variable_name: 'Rpl_semi_sync_master_clients', Value: '1' },
        { Variable_name: 'Rpl_semi_sync_replica_status', Value: 'OFF' },
      ],
    });
    expect(PLUGINS_MIXED_80.map((p) => p.PLUGIN_NAME)).toEqual([
      'rpl_semi_sync_master',
      'rpl_semi_sync_replica',
    ]);
    const p = await readNode(session, target('db2'), MY8036);
    expect(p.semiSync).toEqual({
      masterEnabled: true,
      masterActive: true,
      masterClients: 1,
      slaveEnabled: true,
      slaveActive: false,
    });
  });

  it('no heartbeat table yet, or no grant on performance_schema: the node answered, so the rest is kept', async () => {
    const noTable = modelSession({ ...MYSQL84_REPLICA, heartbeat: 'missing' });
    const a = await readNode(noTable.session, target('db2'), MY84);
    // Sent again without the heartbeat read only: the heartbeat counter is kept.
    expect(noTable.trips).toHaveLength(2);
    expect(noTable.trips[1]).toEqual(noTable.trips[0]!.slice(0, 5));
    expect(a).toMatchObject({
      reachable: true,
      heartbeatLagMs: null,
      replication: { heartbeatsReceived: 17 },
    });

    const denied = modelSession({ ...MYSQL84_REPLICA, replicationConnection: 'denied' });
    const b = await readNode(denied.session, target('db2'), MY84);
    expect(denied.trips).toHaveLength(3);
    expect(b).toMatchObject({
      reachable: true,
      heartbeatLagMs: null,
      replication: { ioState: 'Yes', heartbeatsReceived: null, heartbeatPeriodSeconds: null },
    });
  });

  it('any other failure is the probe’s answer: a statement this version does not have fails the read', async () => {
    // A MySQL 8.4 server asked in the 5.7 dialect: SHOW SLAVE STATUS was removed in 8.4.
    const { session } = modelSession({ ...MYSQL84_REPLICA, variables: { ...MYSQL84_REPLICA_VARIABLES } });
    const asked57 = {
      ...MYSQL84_REPLICA,
      variables: { ...MYSQL84_REPLICA_VARIABLES, log_slave_updates: '1' },
    };
    await expect(readNode(modelSession(asked57).session, target('db2'), MY57)).rejects.toMatchObject({
      code: 'ER_PARSE_ERROR',
    });
    // And 8.4 has no log_slave_updates: the 8.0.23 dialect's settings read fails there.
    await expect(readNode(session, target('db2'), MY8023)).rejects.toMatchObject({
      code: 'ER_UNKNOWN_SYSTEM_VARIABLE',
    });
  });
});

describe('flavor detection for the held connection', () => {
  const detect = (version: string, comment: string) =>
    detectDialect({
      query: async <T>() => [{ version, comment }] as T[],
    });

  it('picks the dialect from @@version and @@version_comment', async () => {
    expect((await detect('8.4.3', 'MySQL Community Server - GPL')).name).toBe('mysql8');
    expect((await detect('8.0.22', 'MySQL Community Server - GPL')).name).toBe('mysql57');
    expect((await detect('5.7.44-log', 'MySQL Community Server (GPL)')).name).toBe('mysql57');
    expect((await detect('8.0.36-28', 'Percona Server (GPL), Release 28')).name).toBe('mysql8');
    expect((await detect('10.11.6-MariaDB-0+deb12u1-log', 'Debian 12')).name).toBe('mariadb');
  });

  it('keeps probing a MariaDB older than the dialects (check refuses it), but not a MySQL without super_read_only', async () => {
    const old: Dialect = await detect('10.5.23-MariaDB', 'MariaDB Server');
    expect(old.name).toBe('mariadb');
    await expect(detect('5.6.51-log', 'MySQL Community Server (GPL)')).rejects.toBeInstanceOf(
      UnsupportedServerError,
    );
  });
});

describe('Inst.readProbeFacts', () => {
  it('reads the same facts through the named operations, one statement at a time on a session without batches', async () => {
    const { session, trips } = modelSession(MYSQL84_REPLICA);
    const inst = await openInst(
      {
        query: async <T>(sql: string) =>
          (/^SELECT @@GLOBAL\.version/.test(sql)
            ? [{ version: '8.4.3', comment: 'MySQL Community Server - GPL', sql_mode: '' }]
            : await session.query<T>(sql)) as T[],
      },
      'db2',
    );
    const f = await inst.readProbeFacts({ heartbeatLag: true });
    expect(trips.map((t) => t[0])).toEqual(probeBatch(MY84, { heartbeatLag: true }).statements);
    expect(f).toMatchObject({
      flavor: 'mysql',
      serverNow: 1733050000.123456,
      gtidCurrentPos: '2174b383-5441-11e8-b90a-c80aa9429562:1-2,73f86016-978b-11ee-ade5-8d2a2a562feb:1-3',
      heartbeatLagMs: 412,
      replication: {
        flavor: 'mysql',
        heartbeatsReceived: 17,
        heartbeatPeriodSeconds: 30,
        autoPosition: true,
      },
    });
  });
});
