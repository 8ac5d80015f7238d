/**
 * Statement level: the exact SQL each operation sends, for every version row of issue 13's
 * table. The expected strings are written out by hand from the MySQL Reference Manual's syntax
 * sections (CHANGE REPLICATION SOURCE TO, CHANGE MASTER TO, START REPLICA / START SLAVE,
 * WAIT_FOR_EXECUTED_GTID_SET, SHOW BINARY LOG STATUS, RESET, semi-sync installation) and the
 * MariaDB KB, not generated from the code under test.
 */
import { describe, expect, it } from 'vitest';
import { detectFlavor } from '../../lib/adapters/mysql/dialect/flavor.ts';
import type { Dialect, Statement } from '../../lib/adapters/mysql/dialect/types.ts';
import { InvalidSqlValueError, UnsupportedServerError } from '../../lib/errors.ts';
import { ADMIN_GRANTS } from '../../lib/operator/grants.ts';

const d = (version: string, comment = ''): Dialect => detectFlavor(version, comment).dialect;

const MARIADB = d('10.11.6-MariaDB-0+deb12u1-log', 'Debian 12');
const MY84 = d('8.4.3', 'MySQL Community Server - GPL');
const MY80 = d('8.0.36', 'MySQL Community Server - GPL');
const MY8023 = d('8.0.23');
const MY8022 = d('8.0.22');
const MY8020 = d('8.0.20-log');
const MY57 = d('5.7.44-log', 'MySQL Community Server (GPL)');

const sql = (s: Statement | Statement[]) => (Array.isArray(s) ? s.map((x) => x.sql) : s.sql);

const SRC = { host: '10.0.1.12', port: 3306, user: 'repl', password: "pa'ss\\word" };
const FOLLOW = { connectRetrySeconds: 1, heartbeatPeriodSeconds: 1 };
const PLAIN = { noBackslashEscapes: false };
const NBE = { noBackslashEscapes: true };

describe('dialect choice per version row', () => {
  it.each([
    [MARIADB, 'mariadb'],
    [MY84, 'mysql8'],
    [MY80, 'mysql8'],
    [MY8023, 'mysql8'],
    [MY8022, 'mysql57'],
    [MY8020, 'mysql57'],
    [MY57, 'mysql57'],
  ] as const)('%#: picks %s', (dialect, name) => {
    expect(dialect.name).toBe(name);
  });
});

describe('replica status', () => {
  it.each([
    [MARIADB, 'SHOW ALL SLAVES STATUS'],
    [MY84, 'SHOW REPLICA STATUS'],
    [MY80, 'SHOW REPLICA STATUS'],
    [MY8023, 'SHOW REPLICA STATUS'],
    [MY8022, 'SHOW SLAVE STATUS'],
    [MY57, 'SHOW SLAVE STATUS'],
  ] as const)('%#: %s', (dialect, text) => {
    expect(dialect.readReplicaStatus()).toMatchObject({ sql: text, params: [] });
  });
});

describe('follow a source', () => {
  it('MariaDB: CHANGE MASTER TO … MASTER_USE_GTID = slave_pos', () => {
    expect(MARIADB.followSource(SRC, FOLLOW, PLAIN)).toEqual({
      sql:
        "CHANGE MASTER TO MASTER_HOST = '10.0.1.12', MASTER_PORT = 3306, MASTER_USER = 'repl', " +
        "MASTER_PASSWORD = 'pa''ss\\\\word', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1, " +
        'MASTER_HEARTBEAT_PERIOD = 1',
      params: [],
      secrets: [SRC.password],
    });
  });

  it('MySQL 8.4 / 8.0.23+: CHANGE REPLICATION SOURCE TO … SOURCE_AUTO_POSITION = 1, GET_SOURCE_PUBLIC_KEY = 1', () => {
    const want =
      "CHANGE REPLICATION SOURCE TO SOURCE_HOST = '10.0.1.12', SOURCE_PORT = 3306, SOURCE_USER = 'repl', " +
      "SOURCE_PASSWORD = 'pa''ss\\\\word', SOURCE_AUTO_POSITION = 1, SOURCE_CONNECT_RETRY = 1, " +
      'SOURCE_HEARTBEAT_PERIOD = 1, GET_SOURCE_PUBLIC_KEY = 1';
    for (const dialect of [MY84, MY80, MY8023])
      expect(sql(dialect.followSource(SRC, FOLLOW, PLAIN))).toBe(want);
  });

  it('MySQL 8.4 with TLS for caching_sha2_password, and with delay 0 for a catch-up source', () => {
    expect(sql(MY84.followSource(SRC, { ...FOLLOW, sha2Auth: 'tls', noDelay: true }, PLAIN))).toBe(
      "CHANGE REPLICATION SOURCE TO SOURCE_HOST = '10.0.1.12', SOURCE_PORT = 3306, SOURCE_USER = 'repl', " +
        "SOURCE_PASSWORD = 'pa''ss\\\\word', SOURCE_AUTO_POSITION = 1, SOURCE_CONNECT_RETRY = 1, " +
        'SOURCE_HEARTBEAT_PERIOD = 1, SOURCE_DELAY = 0, SOURCE_SSL = 1',
    );
  });

  it('MySQL 8.0 before 8.0.23: CHANGE MASTER TO … MASTER_AUTO_POSITION = 1, GET_MASTER_PUBLIC_KEY = 1', () => {
    const want =
      "CHANGE MASTER TO MASTER_HOST = '10.0.1.12', MASTER_PORT = 3306, MASTER_USER = 'repl', " +
      "MASTER_PASSWORD = 'pa''ss\\\\word', MASTER_AUTO_POSITION = 1, MASTER_CONNECT_RETRY = 1, " +
      'MASTER_HEARTBEAT_PERIOD = 1, GET_MASTER_PUBLIC_KEY = 1';
    expect(sql(MY8022.followSource(SRC, FOLLOW, PLAIN))).toBe(want);
    expect(sql(MY8020.followSource(SRC, FOLLOW, PLAIN))).toBe(want);
  });

  it('MySQL 5.7: CHANGE MASTER TO … MASTER_AUTO_POSITION = 1 (no public-key option exists)', () => {
    expect(sql(MY57.followSource(SRC, { ...FOLLOW, sha2Auth: 'tls' }, PLAIN))).toBe(
      "CHANGE MASTER TO MASTER_HOST = '10.0.1.12', MASTER_PORT = 3306, MASTER_USER = 'repl', " +
        "MASTER_PASSWORD = 'pa''ss\\\\word', MASTER_AUTO_POSITION = 1, MASTER_CONNECT_RETRY = 1, " +
        'MASTER_HEARTBEAT_PERIOD = 1',
    );
  });

  it('under NO_BACKSLASH_ESCAPES doubles the quote and leaves the backslash alone', () => {
    expect(sql(MY84.followSource(SRC, FOLLOW, NBE))).toContain("SOURCE_PASSWORD = 'pa''ss\\word'");
    expect(sql(MARIADB.followSource(SRC, FOLLOW, NBE))).toContain("MASTER_PASSWORD = 'pa''ss\\word'");
  });

  it('refuses hosts, users and passwords that are not safe in SQL text, without echoing the password', () => {
    expect(() => MY84.followSource({ ...SRC, host: "x', SOURCE_PORT=1" }, FOLLOW, PLAIN)).toThrow(
      InvalidSqlValueError,
    );
    expect(() => MY84.followSource({ ...SRC, user: "r'oot" }, FOLLOW, PLAIN)).toThrow(InvalidSqlValueError);
    expect(() => MY84.followSource({ ...SRC, port: 70000 }, FOLLOW, PLAIN)).toThrow('between 1 and 65535');
    const bad = 'secret\u0000tail';
    let message = '';
    try {
      MY84.followSource({ ...SRC, password: bad }, FOLLOW, PLAIN);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(
      'replication password contains a control character; use a value without control characters',
    );
  });
});

describe('start, stop, reset', () => {
  const forms = (x: Dialect) => [
    x.startReplication(),
    x.startReplicationIo(),
    x.startReplicationSql(),
    x.stopReplication(),
    x.stopReplicationIo(),
    x.stopReplicationSql(),
    x.resetReplica(),
    x.resetReplicaAll(),
  ];
  const SLAVE = [
    'START SLAVE',
    'START SLAVE IO_THREAD',
    'START SLAVE SQL_THREAD',
    'STOP SLAVE',
    'STOP SLAVE IO_THREAD',
    'STOP SLAVE SQL_THREAD',
    'RESET SLAVE',
    'RESET SLAVE ALL',
  ];
  const REPLICA = SLAVE.map((s) => s.replace('SLAVE', 'REPLICA'));

  it('MariaDB, MySQL 5.7 and 8.0 before 8.0.23 use the SLAVE forms', () => {
    for (const x of [MARIADB, MY57, MY8020, MY8022]) expect(forms(x).map((s) => s.sql)).toEqual(SLAVE);
  });

  it('MySQL 8.0.23+ and 8.4 use the REPLICA forms only (8.4 removed SLAVE)', () => {
    for (const x of [MY8023, MY80, MY84]) expect(forms(x).map((s) => s.sql)).toEqual(REPLICA);
  });

  it('gives STOP a longer timeout (it waits for a frozen source)', () => {
    expect(MY84.stopReplicationIo().timeoutMs).toBe(10_000);
    expect(MARIADB.stopReplication().timeoutMs).toBe(10_000);
  });
});

describe('GTID positions and the binary log', () => {
  it('MariaDB reads gtid_binlog_pos, gtid_current_pos and gtid_slave_pos', () => {
    expect(MARIADB.readGtidPositions().sql).toBe(
      'SELECT @@GLOBAL.gtid_binlog_pos AS binlog, @@GLOBAL.gtid_current_pos AS current, @@GLOBAL.gtid_slave_pos AS slave, ' +
        '@@GLOBAL.gtid_binlog_state AS binlog_state, @@GLOBAL.server_id AS server_id',
    );
  });

  it('MySQL reads gtid_executed and gtid_purged', () => {
    for (const x of [MY84, MY80, MY57]) {
      expect(x.readGtidPositions().sql).toBe(
        'SELECT @@GLOBAL.gtid_executed AS executed, @@GLOBAL.gtid_purged AS purged',
      );
    }
  });

  it.each([
    [MARIADB, 'SHOW MASTER STATUS'],
    [MY84, 'SHOW BINARY LOG STATUS'],
    [d('8.2.0'), 'SHOW BINARY LOG STATUS'],
    [d('8.1.0'), 'SHOW MASTER STATUS'],
    [MY80, 'SHOW MASTER STATUS'],
    [MY57, 'SHOW MASTER STATUS'],
  ] as const)('%#: primary position by %s', (x, text) => {
    expect(x.readBinlogStatus().sql).toBe(text);
  });
});

describe('wait for the relay log to be applied', () => {
  it('MariaDB: MASTER_GTID_WAIT(pos, seconds)', () => {
    expect(MARIADB.waitForGtid('0-1-100,1-2-7', 2.5)).toMatchObject({
      sql: 'SELECT MASTER_GTID_WAIT(?, ?) AS w',
      params: ['0-1-100,1-2-7', 2.5],
      timeoutMs: 4500,
    });
  });

  it('MySQL 8.4, 8.0 and 5.7: WAIT_FOR_EXECUTED_GTID_SET(set, whole seconds), the set sent on one line', () => {
    const set = '2174B383-5441-11E8-B90A-C80AA9429562:1-3,\n3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5';
    for (const x of [MY84, MY80, MY57]) {
      expect(x.waitForGtid(set, 2.5)).toMatchObject({
        sql: 'SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS w',
        params: ['2174b383-5441-11e8-b90a-c80aa9429562:1-3,3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5', 3],
        timeoutMs: 5000,
      });
    }
  });

  it('refuses the other flavor’s notation before sending anything', () => {
    expect(() => MY84.waitForGtid('0-1-100', 5)).toThrow('MariaDB GTID position');
    expect(() => MARIADB.waitForGtid('3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5', 5)).toThrow(
      'MySQL GTID set',
    );
  });
});

describe('collect from a replica ahead', () => {
  const set = '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5';
  it.each([
    [MARIADB, 'START SLAVE UNTIL master_gtid_pos = ?', '0-1-100'],
    [MY84, 'START REPLICA UNTIL SQL_AFTER_GTIDS = ?', set],
    [MY8023, 'START REPLICA UNTIL SQL_AFTER_GTIDS = ?', set],
    [MY8020, 'START SLAVE UNTIL SQL_AFTER_GTIDS = ?', set],
    [MY57, 'START SLAVE UNTIL SQL_AFTER_GTIDS = ?', set],
  ] as const)('%#: %s', (x, text, until) => {
    expect(x.startReplicationUntil(until)).toEqual({ sql: text, params: [until] });
  });
});

describe('fence', () => {
  it('MariaDB sets read_only; MySQL sets super_read_only (5.7.8+), and clears both to open', () => {
    expect(sql(MARIADB.setReadOnly(true))).toEqual(['SET GLOBAL read_only = ON']);
    expect(sql(MARIADB.setReadOnly(false))).toEqual(['SET GLOBAL read_only = OFF']);
    for (const x of [MY84, MY80, MY57]) {
      expect(sql(x.setReadOnly(true))).toEqual(['SET GLOBAL super_read_only = ON']);
      expect(sql(x.setReadOnly(false))).toEqual([
        'SET GLOBAL super_read_only = OFF',
        'SET GLOBAL read_only = OFF',
      ]);
    }
  });

  it('lists client sessions without replication threads (our own account included), and kills by id', () => {
    expect(MY84.listClientSessions()).toMatchObject({
      sql:
        'SELECT ID, USER, COMMAND, STATE FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() ' +
        "AND USER NOT IN ('system user', 'event_scheduler') AND COMMAND NOT IN (?, ?, ?)",
      params: ['Binlog Dump', 'Binlog Dump GTID', 'Daemon'],
    });
    expect(MARIADB.listClientSessions().params).toEqual([
      'Binlog Dump',
      'Binlog Dump GTID',
      'Daemon',
      'Slave_IO',
      'Slave_SQL',
      'Slave_worker',
    ]);
    expect(MY84.killSession(42).sql).toBe('KILL CONNECTION 42');
    for (const x of [MARIADB, MY84, MY57])
      expect(x.noLockWait().sql).toBe('SET SESSION lock_wait_timeout = 0');
    expect(sql(MARIADB.adoptOwnGtidHistory())).toEqual(['SET GLOBAL gtid_slave_pos = @@gtid_current_pos']);
    expect(sql(MY84.adoptOwnGtidHistory())).toEqual([]);
    expect(() => MY84.killSession(Number.NaN)).toThrow('not a positive integer');
  });
});

describe('semi-sync', () => {
  it.each([
    [MARIADB, 'builtin'],
    [MY84, 'source-replica'],
    [MY80, 'source-replica'],
    [d('8.0.26'), 'source-replica'],
    [d('8.0.25'), 'master-slave'],
    [MY57, 'master-slave'],
  ] as const)('%#: a fresh install uses the %s names', (x, family) => {
    expect(x.preferredSemiSync).toBe(family);
  });

  it('MySQL 8.0.26+: rpl_semi_sync_source_* variables, AFTER_SYNC, plugin semisync_source.so', () => {
    const n = MY84.semiSyncNames('source-replica');
    expect(sql(MY84.enableSemiSyncSource(n, 10_000))).toEqual([
      'SET GLOBAL rpl_semi_sync_source_timeout = 10000',
      "SET GLOBAL rpl_semi_sync_source_wait_point = 'AFTER_SYNC'",
      'SET GLOBAL rpl_semi_sync_source_enabled = ON',
    ]);
    expect(sql(MY84.setSemiSyncReplica(n, true))).toBe('SET GLOBAL rpl_semi_sync_replica_enabled = ON');
    expect(n.sourcePlugin).toEqual({ name: 'rpl_semi_sync_source', soname: 'semisync_source.so' });
    expect(MY84.readSemiSyncStatus(n).params).toEqual([
      'Rpl_semi_sync_source_status',
      'Rpl_semi_sync_source_clients',
      'Rpl_semi_sync_replica_status',
    ]);
  });

  it('MySQL 5.7 / 8.0 before 8.0.26 and MariaDB: rpl_semi_sync_master_* / _slave_*', () => {
    for (const [x, family] of [
      [MY57, 'master-slave'],
      [MARIADB, 'builtin'],
    ] as const) {
      const n = x.semiSyncNames(family);
      expect(sql(x.enableSemiSyncSource(n, 5000))).toEqual([
        'SET GLOBAL rpl_semi_sync_master_timeout = 5000',
        "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'",
        'SET GLOBAL rpl_semi_sync_master_enabled = ON',
      ]);
      expect(sql(x.disableSemiSyncSource(n))).toEqual(['SET GLOBAL rpl_semi_sync_master_enabled = OFF']);
      expect(sql(x.setSemiSyncReplica(n, false))).toBe('SET GLOBAL rpl_semi_sync_slave_enabled = OFF');
    }
    expect(MY57.semiSyncNames('master-slave').sourcePlugin?.soname).toBe('semisync_master.so');
  });

  it('refuses plugin names a version does not have', () => {
    expect(() => MY84.semiSyncNames('master-slave')).toThrow(UnsupportedServerError);
    expect(() => d('8.0.25').semiSyncNames('source-replica')).toThrow('added in 8.0.26');
    expect(() => MY80.semiSyncNames('builtin')).toThrow('no built-in semi-sync');
    expect(() => MARIADB.semiSyncNames('source-replica')).toThrow('built-in semi-sync only');
    // An 8.0.26+ server may still run the old plugins after an upgrade: both families are valid there.
    expect(MY80.semiSyncNames('master-slave').sourceEnabled).toBe('rpl_semi_sync_master_enabled');
  });

  it('reads installed plugins from information_schema.PLUGINS on MySQL', () => {
    expect(MY84.readSemiSyncPlugins().sql).toBe(
      'SELECT PLUGIN_NAME, PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME IN ' +
        "('rpl_semi_sync_source', 'rpl_semi_sync_replica', 'rpl_semi_sync_master', 'rpl_semi_sync_slave')",
    );
  });
});

describe('grants for our accounts', () => {
  it('MariaDB: the list of lib/operator/grants.ts', () => {
    expect(MARIADB.adminGrants().map((g) => g.privilege)).toEqual([...ADMIN_GRANTS]);
  });

  it('MySQL 8.x: dynamic privileges, no SUPER', () => {
    for (const x of [MY84, MY80, MY8020]) {
      expect(x.adminGrants().map((g) => g.privilege)).toEqual([
        'REPLICATION CLIENT',
        'REPLICATION_SLAVE_ADMIN',
        'SYSTEM_VARIABLES_ADMIN',
        'CONNECTION_ADMIN',
        'PROCESS',
        'RELOAD',
      ]);
    }
  });

  it('MySQL 5.7: SUPER-era equivalents', () => {
    expect(MY57.adminGrants().map((g) => g.privilege)).toEqual([
      'REPLICATION CLIENT',
      'SUPER',
      'PROCESS',
      'RELOAD',
    ]);
  });

  it('every flavor: REPLICATION SLAVE for the replication account', () => {
    for (const x of [MARIADB, MY84, MY57]) expect(x.replicationGrants()).toEqual(['REPLICATION SLAVE']);
  });
});

describe('rejoin vocabulary', () => {
  it.each([
    [MARIADB, 'RESET MASTER', false],
    [MY84, 'RESET BINARY LOGS AND GTIDS', true],
    [MY80, 'RESET MASTER', true],
    [d('8.0.16'), 'RESET MASTER', false],
    [MY57, 'RESET MASTER', false],
  ] as const)('%#: %s, clone %s', (x, reset, clone) => {
    expect(x.rejoin).toEqual({ resetGtidHistory: reset, clone });
  });
});
