/**
 * `check` on MySQL, without a MySQL server (none exists for this machine: issue 13, "How to test
 * it here"): the node part of check (inspectNodes) runs on scripted sessions that answer with
 * rows shaped like MySQL 8.4, 8.0 and 5.7 answer them (test/dialect/fixtures/mysql-manual.ts
 * names the manual section of each). The same code checks the live MariaDB clusters in
 * rejoin-check.test.ts and quiet-primary-partition.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ClusterSchema, type NodeConfig } from '../../lib/config/schema.ts';
import {
  type CheckFinding,
  checkFencing,
  inspectNodes,
  type WithNodeSession,
} from '../../lib/operator/check.ts';
import { SHOW_ALL_SLAVES_STATUS_MARIADB, SHOW_SLAVE_STATUS_57 } from '../dialect/fixtures/mysql-manual.ts';
import {
  type FakeNode,
  GRANTS_84,
  mysql84,
  mysqlClusterConfig,
  PERFORMANCE_SCHEMA_GRANT_LINES,
  replica84,
  scriptedNode,
  settings,
  UUID_A,
  UUID_B,
} from '../support/mysql-scripted.ts';

const LOGINS = {
  admin: { user: 'failover_admin', password: 'a-pass' },
  replication: { user: 'repl', password: 'r-pass' },
};

async function inspect(nodes: Record<string, FakeNode>, semiSync = true) {
  const withNode: WithNodeSession = async (n: NodeConfig, login, fn) => {
    const f = nodes[n.id];
    if (!f) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    return fn(scriptedNode(f, login));
  };
  return inspectNodes(mysqlClusterConfig(semiSync), 'db1', LOGINS, withNode);
}

const only = (fs: CheckFinding[], check: string, nodeId?: string) =>
  fs.filter((f) => f.check === check && (nodeId === undefined || f.nodeId === nodeId));

describe('check on a MySQL 8.4 cluster (scripted rows)', () => {
  it('finds nothing wrong with a sound cluster', async () => {
    const r = await inspect({ db1: mysql84(1), db2: replica84(2), db3: replica84(3) });
    expect(r.findings.filter((f) => f.severity !== 'info')).toEqual([]);
    expect(r.passed).toEqual(
      expect.arrayContaining([
        'admin grants',
        'replication account',
        'one flavor (MySQL)',
        'no errant transactions',
        'gtid_mode',
        'log_replica_updates',
        'heartbeat period',
        'GTID replication',
        'replicas read_only',
        'replicas follow the primary',
      ]),
    );
    expect(r.nodes.map((n) => n.flavor)).toEqual(['mysql', 'mysql', 'mysql']);
    expect(r.nodes[0]?.filters).toEqual({ binlog_do_db: 'test', binlog_ignore_db: 'manual, mysql' });
  });

  it('reports a missing semi-sync plugin with the INSTALL PLUGIN statement', async () => {
    const r = await inspect({
      db1: mysql84(1, { plugins: [], semiVariables: [], semiStatus: [] }),
      db2: replica84(2),
      db3: replica84(3),
    });
    const [f, ...rest] = only(r.findings, 'semi-sync', 'db1');
    expect(rest).toEqual([]);
    expect(f?.severity).toBe('warning');
    expect(f?.message).toContain('semi-sync source plugin is not installed on db1');
    expect(f?.fix).toContain("INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source.so'");
    // Without the policy there is nothing to warn about.
    const off = await inspect(
      {
        db1: mysql84(1, { plugins: [], semiVariables: [], semiStatus: [] }),
        db2: replica84(2),
        db3: replica84(3),
      },
      false,
    );
    expect(only(off.findings, 'semi-sync')).toEqual([]);
  });

  it('reports super_read_only OFF on a replica, and read_only OFF as an error naming super_read_only', async () => {
    const r = await inspect({
      db1: mysql84(1),
      db2: replica84(2, { settings: settings(2, { read_only: '1', super_read_only: '0' }) }),
      db3: replica84(3, { settings: settings(3, { read_only: '0', super_read_only: '0' }) }),
    });
    const sro = only(r.findings, 'super-read-only');
    expect(sro.map((f) => [f.nodeId, f.severity])).toEqual([['db2', 'warning']]);
    expect(sro[0]?.fix).toContain('SET GLOBAL super_read_only=ON');
    const ro = only(r.findings, 'read-only', 'db3');
    expect(ro[0]?.severity).toBe('error');
    expect(ro[0]?.fix).toContain('super_read_only=ON');
  });

  it('reports a heartbeat period longer than the detection window, read from performance_schema', async () => {
    const r = await inspect({
      db1: mysql84(1),
      db2: replica84(2, { heartbeat: '30.000' }),
      db3: replica84(3),
    });
    const [f, ...rest] = only(r.findings, 'heartbeat-period');
    expect(rest).toEqual([]);
    expect(f?.nodeId).toBe('db2');
    expect(f?.severity).toBe('error');
    expect(f?.message).toContain('heartbeat period 30 s (replica_net_timeout 60 s)');
    expect(f?.fix).toBe(
      'On db2: STOP REPLICA; CHANGE REPLICATION SOURCE TO SOURCE_HEARTBEAT_PERIOD=1; START REPLICA; and SET GLOBAL replica_net_timeout=3 (also in its my.cnf: replica_net_timeout=3).',
    );
  });

  it('reports errant GTIDs by GTID_SUBTRACT semantics: a hole below the primary counts, lag does not', async () => {
    const r = await inspect({
      db1: mysql84(1, { executed: `${UUID_A}:1-100` }),
      // Lagging: a subset of the primary's set. Not errant.
      db2: replica84(2, { executed: `${UUID_A}:1-40` }),
      // Its own local writes (server uuid B), written in the server's multi-line form.
      db3: replica84(3, { executed: `${UUID_A}:1-100,\n${UUID_B}:1-2:7` }),
    });
    const errant = only(r.findings, 'errant-transactions');
    expect(errant.map((f) => [f.nodeId, f.severity])).toEqual([['db3', 'error']]);
    expect(errant[0]?.message).toContain('has 3 transaction(s) the primary db1 does not have');
    expect(errant[0]?.message).toContain(UUID_B);
    expect(errant[0]?.fix).toContain('"node":"db3"');
    expect(r.passed).not.toContain('no errant transactions');
  });

  it('reports the admin grants the 8.4 dialect needs, by their MySQL names', async () => {
    const r = await inspect({
      db1: mysql84(1, { adminGrants: GRANTS_84.filter((_, i) => i !== 1) }),
      db2: replica84(2),
      db3: replica84(3),
    });
    expect(only(r.findings, 'admin-grants', 'db1').map((f) => f.message.split(',')[0])).toEqual([
      'failover_admin lacks REPLICATION_SLAVE_ADMIN',
      'failover_admin lacks SYSTEM_VARIABLES_ADMIN',
      'failover_admin lacks CONNECTION_ADMIN',
    ]);
  });

  it('refuses a mixed cluster (a MariaDB replica of a MySQL primary) with the reason, and compares no GTIDs', async () => {
    const mariadb: FakeNode = {
      ...replica84(3),
      version: '10.11.6-MariaDB-log',
      comment: 'mariadb.org binary distribution',
      adminGrants: [],
      settings: {
        server_id: '3',
        version: '10.11.6-MariaDB-log',
        version_comment: 'mariadb.org binary distribution',
        read_only: '1',
        log_bin: '1',
      },
      replicaStatus: { ...SHOW_ALL_SLAVES_STATUS_MARIADB, Master_Host: '127.0.0.1', Master_Port: 13000 },
      executed: '0-1-25',
    };
    const r = await inspect({ db1: mysql84(1), db2: replica84(2), db3: mariadb });
    const [f, ...rest] = only(r.findings, 'flavor');
    expect(rest).toEqual([]);
    expect(f?.severity).toBe('error');
    expect(f?.message).toMatch(/^Mixed cluster refused: a MariaDB replica of a MySQL primary \(/);
    expect(f?.message).toContain('db3 MariaDB 10.11.6');
    expect(f?.message).toContain('cannot be compared');
    expect(only(r.findings, 'errant-transactions')).toEqual([]);
  });
});

describe('check on MySQL 5.7 and 8.0 before 8.0.26 (scripted rows)', () => {
  const GRANTS_57 = [
    'GRANT RELOAD, PROCESS, SUPER, REPLICATION CLIENT ON *.* TO `failover_admin`@`%`',
    'GRANT ALL PRIVILEGES ON `failover_meta`.* TO `failover_admin`@`%`',
    ...PERFORMANCE_SCHEMA_GRANT_LINES,
  ];
  const node57 = (serverId: number, over: Partial<FakeNode> = {}): FakeNode =>
    mysql84(serverId, {
      version: '5.7.44-log',
      comment: 'MySQL Community Server (GPL)',
      adminGrants: GRANTS_57,
      settings: settings(serverId, { version: '5.7.44-log' }),
      plugins: [
        { PLUGIN_NAME: 'rpl_semi_sync_master', PLUGIN_STATUS: 'ACTIVE' },
        { PLUGIN_NAME: 'rpl_semi_sync_slave', PLUGIN_STATUS: 'ACTIVE' },
      ],
      semiVariables: [
        { Variable_name: 'rpl_semi_sync_master_enabled', Value: 'ON' },
        { Variable_name: 'rpl_semi_sync_master_wait_point', Value: 'AFTER_SYNC' },
        { Variable_name: 'rpl_semi_sync_slave_enabled', Value: 'OFF' },
      ],
      semiStatus: [{ Variable_name: 'Rpl_semi_sync_master_status', Value: 'ON' }],
      ...over,
    });

  it('5.7: SUPER-era grants, the master/slave semi-sync names, SLAVE words in every fix', async () => {
    const replica = (id: number, over: Partial<FakeNode> = {}) =>
      node57(id, {
        settings: settings(id, { version: '5.7.44-log', read_only: '1', super_read_only: '1' }),
        // The 5.7 manual's example follows localhost:13000; here the config names db1 127.0.0.1:13000.
        replicaStatus: { ...SHOW_SLAVE_STATUS_57, Master_Host: '127.0.0.1' },
        executed: `${UUID_A}:1-5`,
        heartbeat: '30.000',
        ...over,
      });
    const r = await inspect({
      db1: node57(1, {
        adminGrants: [
          GRANTS_57[1]!,
          'GRANT RELOAD, PROCESS ON *.* TO `failover_admin`@`%`',
          ...PERFORMANCE_SCHEMA_GRANT_LINES,
        ],
      }),
      db2: replica(2),
      db3: replica(3),
    });
    expect(only(r.findings, 'admin-grants', 'db1').map((f) => f.message.split(',')[0])).toEqual([
      'failover_admin lacks REPLICATION CLIENT',
      'failover_admin lacks SUPER',
    ]);
    const hb = only(r.findings, 'heartbeat-period', 'db2')[0];
    expect(hb?.fix).toBe(
      'On db2: STOP SLAVE; CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD=1; START SLAVE; and SET GLOBAL slave_net_timeout=3 (also in its my.cnf: slave_net_timeout=3).',
    );
    const semi = only(r.findings, 'semi-sync', 'db2')[0];
    expect(semi?.message).toContain('rpl_semi_sync_slave_enabled is OFF');
    expect(semi?.fix).toContain('STOP SLAVE IO_THREAD; START SLAVE IO_THREAD');
    expect(r.passed).toContain('replicas follow the primary');
    expect(only(r.findings, 'errant-transactions')).toEqual([]);
  });

  it('8.0.20: gtid_mode OFF is an error (no auto-positioning), and a replica on file/position too', async () => {
    const r = await inspect({
      db1: node57(1, {
        version: '8.0.20',
        settings: settings(1, { version: '8.0.20', gtid_mode: 'OFF', enforce_gtid_consistency: 'OFF' }),
      }),
      db2: node57(2, {
        version: '8.0.20',
        settings: settings(2, { version: '8.0.20', read_only: '1', super_read_only: '1' }),
        replicaStatus: { ...SHOW_SLAVE_STATUS_57, Master_Host: '127.0.0.1', Auto_Position: '0' },
        executed: `${UUID_A}:1-5`,
        heartbeat: '1.000',
      }),
    });
    const mode = only(r.findings, 'gtid-mode');
    expect(mode.map((f) => [f.nodeId, f.severity])).toEqual([
      ['db1', 'error'],
      ['db2', 'error'],
    ]);
    expect(mode[0]?.message).toContain('gtid_mode=OFF, enforce_gtid_consistency=OFF');
    expect(mode[1]?.message).toContain('Auto_Position=0');
    expect(mode[1]?.fix).toBe('STOP SLAVE; CHANGE MASTER TO MASTER_AUTO_POSITION=1; START SLAVE;');
    // db3 does not answer: reported, not a crash.
    expect(only(r.findings, 'admin-connect', 'db3')[0]?.message).toContain('ECONNREFUSED');
  });
});

describe('check on MySQL: performance_schema grants, rebuild by clone, fencing words (scripted rows)', () => {
  it('reports a missing SELECT on the performance_schema replication tables as an error with its GRANT', async () => {
    // MySQL 8.4 Reference Manual 29.12.11.5 / 29.12.11.13: the heartbeat period and received
    // counter live in these tables, and performance_schema tables need SELECT (29.1).
    const r = await inspect({
      db1: mysql84(1),
      db2: replica84(2, {
        adminGrants: GRANTS_84.filter((g) => !PERFORMANCE_SCHEMA_GRANT_LINES.includes(g)),
      }),
      db3: replica84(3),
    });
    const f = only(r.findings, 'admin-grants', 'db2');
    expect(f.map((x) => [x.severity, x.fix])).toEqual([
      [
        'error',
        "GRANT SELECT ON performance_schema.replication_connection_configuration TO 'failover_admin'@'<functions' hosts>';",
      ],
      [
        'error',
        "GRANT SELECT ON performance_schema.replication_connection_status TO 'failover_admin'@'<functions' hosts>';",
      ],
    ]);
    expect(f[1]?.message).toContain('received-heartbeat counter');
    // The check itself skips the period it cannot read, rather than failing as admin-queries.
    expect(only(r.findings, 'admin-queries')).toEqual([]);
    expect(only(r.findings, 'admin-grants', 'db1')).toEqual([]);
  });

  it('takes SELECT on performance_schema.* or on *.* for the table grants', async () => {
    const base = GRANTS_84.filter((g) => !PERFORMANCE_SCHEMA_GRANT_LINES.includes(g));
    const r = await inspect({
      db1: mysql84(1, {
        adminGrants: [...base, 'GRANT SELECT ON `performance_schema`.* TO `failover_admin`@`%`'],
      }),
      db2: replica84(2, {
        adminGrants: [
          'GRANT SELECT, RELOAD, PROCESS, REPLICATION CLIENT ON *.* TO `failover_admin`@`%`',
          ...base.slice(1),
        ],
      }),
      db3: replica84(3),
    });
    expect(only(r.findings, 'admin-grants')).toEqual([]);
    expect(r.passed).toContain('admin grants');
  });

  it('says rejoin --rebuild is unavailable (info, not an error) until the clone plugin and BACKUP_ADMIN/CLONE_ADMIN are there', async () => {
    const r = await inspect({
      db1: mysql84(1),
      db2: replica84(2, {
        clone: true,
        adminGrants: [...GRANTS_84, 'GRANT BACKUP_ADMIN,CLONE_ADMIN ON *.* TO `failover_admin`@`%`'],
      }),
      db3: replica84(3, { clone: true }),
    });
    const f = only(r.findings, 'rebuild-clone');
    expect(f.map((x) => [x.nodeId, x.severity])).toEqual([
      ['db1', 'info'],
      ['db3', 'info'],
    ]);
    expect(f[0]?.message).toBe(
      'rejoin with "rebuild": true (CLONE) is unavailable on db1 (MySQL 8.4.3) until this is fixed: the clone plugin is not active; failover_admin lacks BACKUP_ADMIN (being the donor of a clone (rejoin with rebuild, on the primary)); failover_admin lacks CLONE_ADMIN (CLONE INSTANCE (rejoin with rebuild, on the rejoining node)). Failover, switchover and rejoin without rebuild do not need it',
    );
    expect(f[0]?.fix).toBe(
      "INSTALL PLUGIN clone SONAME 'mysql_clone.so'; and plugin-load-add=mysql_clone.so in its my.cnf; GRANT BACKUP_ADMIN, CLONE_ADMIN ON *.* TO 'failover_admin'@'<functions' hosts>';",
    );
    // db3 has the plugin: only the grants are named.
    expect(f[1]?.fix).toBe(
      "GRANT BACKUP_ADMIN, CLONE_ADMIN ON *.* TO 'failover_admin'@'<functions' hosts>';",
    );
    expect(r.passed).toContain('rebuild by clone');
    expect(r.findings.filter((x) => x.severity === 'error')).toEqual([]);
  });

  it('asks nothing about clone on MySQL 5.7 (no clone plugin before 8.0.17)', async () => {
    const node57 = mysql84(1, {
      version: '5.7.44-log',
      adminGrants: [
        'GRANT RELOAD, PROCESS, SUPER, REPLICATION CLIENT ON *.* TO `failover_admin`@`%`',
        ...PERFORMANCE_SCHEMA_GRANT_LINES,
      ],
      settings: settings(1, { version: '5.7.44-log' }),
    });
    const r = await inspect({ db1: node57 });
    expect(only(r.findings, 'rebuild-clone')).toEqual([]);
    expect(r.passed).not.toContain('rebuild by clone');
  });

  it('names the semi-sync timeout and the fence as the nodes run them (8.4: source, super_read_only; 5.7: master)', async () => {
    const c = ClusterSchema.parse({
      name: 'my',
      primary: 'db1',
      nodes: [
        { id: 'db1', host: '127.0.0.1', port: 13000 },
        { id: 'db2', host: '127.0.0.2', port: 3306 },
      ],
      credentials: {
        admin: { user: 'failover_admin', password: { env: 'X' } },
        replication: { user: 'repl', password: { env: 'Y' } },
      },
      vip: { provider: 'none' },
      failover: { semiSync: true, semiSyncTimeoutMs: 1000 },
    });
    const fencing = (nodes: Parameters<typeof checkFencing>[1]) => {
      const out: CheckFinding[] = [];
      checkFencing(
        c,
        nodes,
        (f) => out.push(f),
        () => {},
      );
      return out;
    };
    const r84 = await inspect({ db1: mysql84(1), db2: replica84(2), db3: replica84(3) });
    const f84 = fencing(r84.nodes);
    expect(f84.map((f) => f.severity)).toEqual(['error', 'warning']);
    expect(f84[0]?.message).toContain('1000 ms, rpl_semi_sync_source_timeout on the promoted primary');
    expect(f84[0]?.fix).toContain('(and rpl_semi_sync_source_timeout on the primary)');
    expect(f84[1]?.message).toContain('longer than rpl_semi_sync_source_timeout (1000 ms)');
    expect(f84[1]?.message).toContain('restarts with super_read_only=OFF');
    expect(f84[1]?.fix).toContain("put super_read_only=ON in every node's my.cnf");
    expect(f84.map((f) => `${f.message} ${f.fix}`).join(' ')).not.toContain('rpl_semi_sync_master');
    // MySQL 8.0.26+ with the old plugin still installed runs the master names: the node's family counts.
    expect(
      fencing([{ flavor: 'mysql', semiSyncTimeoutVariable: 'rpl_semi_sync_master_timeout' }])[0]?.message,
    ).toContain('rpl_semi_sync_master_timeout on the promoted primary');
    // No node answered: both names.
    expect(fencing([])[0]?.message).toContain(
      'rpl_semi_sync_master_timeout (rpl_semi_sync_source_timeout with the MySQL 8.0.26+ rpl_semi_sync_source plugin) on the promoted primary',
    );
  });
});
