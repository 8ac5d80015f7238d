/**
 * Scripted MySQL nodes for tests of operator code that cannot run against a MySQL server (none
 * exists for this machine: issue 13, "How to test it here"). Each node answers the dialect's
 * statements with rows shaped like MySQL 8.4, 8.0 and 5.7 answer them; the rows come from
 * test/dialect/fixtures/mysql-manual.ts, which names the manual section of each. An unknown
 * statement fails the test (the scripted server never guesses).
 */
import type { Login } from '../../lib/adapters/mysql/connection.ts';
import { openInst, type SqlSession } from '../../lib/adapters/mysql/operations.ts';
import { ClusterSchema } from '../../lib/config/schema.ts';
import type { NodeProbe } from '../../lib/core/types.ts';
import {
  SEMISYNC_SOURCE_STATUS_84,
  SEMISYNC_SOURCE_VARIABLES_84,
  SHOW_BINARY_LOG_STATUS_84,
  SHOW_REPLICA_STATUS_84,
} from '../dialect/fixtures/mysql-manual.ts';

/** The 3-node cluster config the MySQL-shaped operator tests read (db1 primary, no VIP). */
export function mysqlClusterConfig(semiSync = true) {
  return ClusterSchema.parse({
    name: 'my',
    primary: 'db1',
    nodes: [
      { id: 'db1', host: '127.0.0.1', port: 13000 },
      { id: 'db2', host: '127.0.0.2', port: 3306 },
      { id: 'db3', host: '127.0.0.3', port: 3306 },
    ],
    credentials: {
      admin: { user: 'failover_admin', password: { env: 'X' } },
      replication: { user: 'repl', password: { env: 'Y' } },
    },
    vip: { provider: 'none' },
    failover: { semiSync },
  });
}

export type Row = Record<string, unknown>;

/** One node as the scripted server answers for it. */
export interface FakeNode {
  version: string;
  comment: string;
  /** SHOW GRANTS FOR CURRENT_USER() of the admin account (the replication account has REPLICATION SLAVE). */
  adminGrants: string[];
  settings: Row;
  plugins: Row[];
  semiVariables: Row[];
  semiStatus: Row[];
  executed: string;
  replicaStatus?: Row;
  /** performance_schema.replication_connection_configuration HEARTBEAT_INTERVAL. */
  heartbeat?: string;
  /** Age in seconds of the oldest open transaction (information_schema.innodb_trx); default 0. */
  longestTrx?: string;
  /**
   * The clone plugin ACTIVE (MySQL 8.4 Reference Manual 7.6.7.1 "Installing the Clone Plugin":
   * information_schema.PLUGINS has a row for it only once installed). Default: not installed.
   */
  clone?: boolean;
}

export const UUID_A = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
export const UUID_B = '2174b383-5441-11e8-b90a-c80aa9429562';

/**
 * MySQL 8.4 Reference Manual, 15.7.7.22 "SHOW GRANTS Statement": static privileges on one GRANT
 * line, dynamic privileges on another, schema and table grants on their own lines
 * (`db`.`table`); the column is named `Grants for user@host`.
 */
export const PERFORMANCE_SCHEMA_GRANT_LINES = [
  'GRANT SELECT ON `performance_schema`.`replication_connection_configuration` TO `failover_admin`@`%`',
  'GRANT SELECT ON `performance_schema`.`replication_connection_status` TO `failover_admin`@`%`',
];
export const GRANTS_84 = [
  'GRANT RELOAD, PROCESS, REPLICATION CLIENT ON *.* TO `failover_admin`@`%`',
  'GRANT CONNECTION_ADMIN,REPLICATION_SLAVE_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO `failover_admin`@`%`',
  'GRANT ALL PRIVILEGES ON `failover_meta`.* TO `failover_admin`@`%`',
  ...PERFORMANCE_SCHEMA_GRANT_LINES,
];

/** Variables as `SELECT @@server_id AS server_id, ...` returns them (text protocol: strings). */
export const settings = (serverId: number, over: Row = {}): Row => ({
  server_id: String(serverId),
  version: '8.4.3',
  version_comment: 'MySQL Community Server - GPL',
  read_only: '0',
  super_read_only: '0',
  log_bin: '1',
  log_replica_updates: '1',
  gtid_mode: 'ON',
  enforce_gtid_consistency: 'ON',
  binlog_format: 'ROW',
  net_timeout: '60',
  ...over,
});

/** A sound MySQL 8.4 node with both 8.0.26+ semi-sync plugins, enabled on its side. */
export function mysql84(serverId: number, over: Partial<FakeNode> = {}): FakeNode {
  return {
    version: '8.4.3',
    comment: 'MySQL Community Server - GPL',
    adminGrants: GRANTS_84,
    settings: settings(serverId),
    plugins: [
      { PLUGIN_NAME: 'rpl_semi_sync_source', PLUGIN_STATUS: 'ACTIVE' },
      { PLUGIN_NAME: 'rpl_semi_sync_replica', PLUGIN_STATUS: 'ACTIVE' },
    ],
    semiVariables: [
      ...SEMISYNC_SOURCE_VARIABLES_84,
      { Variable_name: 'rpl_semi_sync_replica_enabled', Value: 'OFF' },
    ],
    semiStatus: SEMISYNC_SOURCE_STATUS_84,
    executed: `${UUID_A}:1-100`,
    ...over,
  };
}

/** A sound replica of db1 (127.0.0.1:13000, as in the manual's SHOW REPLICA STATUS example). */
export function replica84(serverId: number, over: Partial<FakeNode> = {}): FakeNode {
  return mysql84(serverId, {
    settings: settings(serverId, { read_only: '1', super_read_only: '1' }),
    semiVariables: [
      { Variable_name: 'rpl_semi_sync_source_enabled', Value: 'OFF' },
      { Variable_name: 'rpl_semi_sync_replica_enabled', Value: 'ON' },
    ],
    semiStatus: [{ Variable_name: 'Rpl_semi_sync_replica_status', Value: 'ON' }],
    executed: `${UUID_A}:1-90`,
    replicaStatus: SHOW_REPLICA_STATUS_84,
    heartbeat: '1.000',
    ...over,
  });
}

export function scriptedNode(f: FakeNode, login: Login): SqlSession {
  const answer = (sql: string): Row[] => {
    if (/^SELECT @@GLOBAL\.version/.test(sql))
      return [{ version: f.version, comment: f.comment, sql_mode: 'ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES' }];
    if (/^SHOW GRANTS/.test(sql)) {
      const lines = login.user === 'repl' ? ['GRANT REPLICATION SLAVE ON *.* TO `repl`@`%`'] : f.adminGrants;
      return lines.map((g) => ({ [`Grants for ${login.user}@%`]: g }));
    }
    if (/^SELECT @@server_id/.test(sql)) return [f.settings];
    if (/^SELECT UNIX_TIMESTAMP\(SYSDATE\(6\)\)/.test(sql))
      return [{ server_now: '1733050000.250000', longest_trx: f.longestTrx ?? '0' }];
    if (/information_schema\.PLUGINS WHERE PLUGIN_NAME = 'clone'/.test(sql))
      return f.clone ? [{ status: 'ACTIVE' }] : [];
    if (/information_schema\.PLUGINS/.test(sql)) return f.plugins;
    if (/^SELECT 1 AS builtin/.test(sql)) return [{ builtin: 1 }];
    if (/^SHOW GLOBAL VARIABLES WHERE/.test(sql)) return f.semiVariables;
    if (/^SHOW GLOBAL STATUS WHERE/.test(sql)) return f.semiStatus;
    if (/gtid_executed AS executed/.test(sql)) return [{ executed: f.executed, purged: '' }];
    if (/gtid_binlog_pos AS binlog/.test(sql))
      return [
        {
          binlog: f.executed,
          current: f.executed,
          slave: f.executed,
          binlog_state: f.executed,
          server_id: 1,
        },
      ];
    if (/^SHOW (BINARY LOG|MASTER) STATUS/.test(sql)) return [SHOW_BINARY_LOG_STATUS_84];
    if (/^SHOW (REPLICA|SLAVE|ALL SLAVES) STATUS/.test(sql)) return f.replicaStatus ? [f.replicaStatus] : [];
    if (/replication_connection_configuration/.test(sql))
      return f.replicaStatus && f.heartbeat !== undefined ? [{ period: f.heartbeat }] : [];
    throw new Error(`the scripted server does not know: ${sql}`);
  };
  return { query: async <T>(sql: string) => answer(sql) as T[] };
}

/**
 * One node as the prober sees it through the dialect seam: the named operations' reads (settings,
 * GTID positions, semi-sync under the node's names, replica status, heartbeat period), mapped to
 * NodeProbe the way the prober maps them (MySQL: gtidBinlogPos = gtidCurrentPos = gtid_executed,
 * gtidSlavePos ''; the replica status as the dialect's parser normalised it, Retrieved_Gtid_Set
 * included). Unreachable (refused) when `f` is undefined. No heartbeat write or lag: those stay
 * the prober's own. Built from the single reads rather than one batch, so it does not depend on
 * how the prober groups its statements.
 */
export async function probeScripted(
  nodeId: string,
  f: FakeNode | undefined,
  admin: Login,
  over: Partial<NodeProbe> = {},
): Promise<NodeProbe> {
  if (f === undefined) {
    return {
      nodeId,
      reachable: false,
      probeMs: 1,
      error: { kind: 'refused', code: 'ECONNREFUSED', message: `connect ECONNREFUSED (${nodeId})` },
    };
  }
  const inst = await openInst(scriptedNode(f, admin), nodeId);
  const v = await inst.readServerSettings();
  const gtid = await inst.readGtidPosition();
  const semi = await inst.readSemiSync();
  const repl = await inst.readReplicaStatus();
  const period = repl === undefined ? null : await inst.readHeartbeatPeriod(repl);
  return {
    nodeId,
    reachable: true,
    probeMs: 1,
    flavor: inst.dialect.version.flavor,
    serverId: v.serverId,
    version: v.version,
    readOnly: v.readOnly,
    logBin: v.logBin,
    logSlaveUpdates: v.logReplicaUpdates,
    gtidBinlogPos: gtid.binlog ?? gtid.executed,
    gtidCurrentPos: gtid.executed,
    gtidSlavePos: gtid.slave ?? '',
    semiSync: {
      masterEnabled: semi.masterEnabled,
      masterActive: semi.masterActive,
      masterClients: semi.masterClients,
      slaveEnabled: semi.slaveEnabled,
      slaveActive: semi.slaveActive,
    },
    longestTrxSeconds: Number(f.longestTrx ?? 0),
    ...(repl === undefined ? {} : { replication: { ...repl, heartbeatPeriodSeconds: period } }),
    ...over,
  };
}
