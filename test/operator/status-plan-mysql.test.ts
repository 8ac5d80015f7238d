/**
 * `status` and `plan` on MySQL, without a MySQL server (none exists for this machine: issue 13,
 * "How to test it here"). Every node is read through the dialect seam (Inst.readProbeFacts, the
 * prober's read) from scripted sessions answering with rows shaped like MySQL 8.4 and 5.7 answer
 * them (test/dialect/fixtures/mysql-manual.ts names the manual section of each row); the report
 * is built by the same describeClusterStatus / describeFailoverPlan that clusterStatus and
 * planFailover run on live MariaDB clusters (test/timelines/lagging-survivors.test.ts).
 */
import { describe, expect, it } from 'vitest';
import type { NodeProbe } from '../../lib/core/types.ts';
import { initialState } from '../../lib/health/round.ts';
import { describeFailoverPlan } from '../../lib/operator/plan.ts';
import { describeClusterStatus, formatStatus } from '../../lib/operator/status.ts';
import {
  SHOW_REPLICA_STATUS_84,
  SHOW_REPLICA_STATUS_84_CONNECTING,
  SHOW_SLAVE_STATUS_57,
} from '../dialect/fixtures/mysql-manual.ts';
import {
  type FakeNode,
  mysql84,
  mysqlClusterConfig,
  probeScripted,
  replica84,
  settings,
} from '../support/mysql-scripted.ts';

/** The source UUID of the manual's SHOW REPLICA STATUS example: the primary db1. */
const P = '73f86016-978b-11ee-ade5-8d2a2a562feb';
/** An earlier primary's UUID, upper case as the manual prints it. */
const Q = '2174B383-5441-11E8-B90A-C80AA9429562';
const q = Q.toLowerCase();
/** db3's own server_uuid: its local writes carry it. */
const R3 = 'b4d1c2e0-9f1a-11ee-8c90-0242ac120003';

const NOW = 1_763_769_600_000;
const ADMIN = { user: 'failover_admin', password: 'a-pass' };

/** An 8.4 replica of db1 whose SHOW REPLICA STATUS row carries its own GTID sets (server form). */
function replicaOf(
  serverId: number,
  sets: { executed: string; retrieved: string },
  row = SHOW_REPLICA_STATUS_84,
) {
  return replica84(serverId, {
    executed: sets.executed,
    replicaStatus: { ...row, Retrieved_Gtid_Set: sets.retrieved, Executed_Gtid_Set: sets.executed },
  });
}

async function probeAll(nodes: Record<string, FakeNode | undefined>): Promise<NodeProbe[]> {
  return Promise.all(['db1', 'db2', 'db3'].map((id) => probeScripted(id, nodes[id], ADMIN)));
}

describe('status on MySQL-shaped nodes', () => {
  it('reports a sound 8.4 cluster: server, gtid_executed on one line, threads, lag and semi-sync by the 8.0.26+ names', async () => {
    const executed = `${Q}:1-2,\n${P}:1-100`;
    const nodes = await probeAll({
      db1: mysql84(1, { executed }),
      db2: replicaOf(2, { executed, retrieved: `${P}:1-100` }),
      db3: replicaOf(3, { executed, retrieved: `${P}:1-100` }),
    });
    const s = describeClusterStatus(mysqlClusterConfig(), {
      state: undefined,
      snapshot: { cluster: 'my', takenAt: NOW, primaryId: 'db1', nodes },
      holder: undefined,
      now: NOW,
    });
    expect(s.analysis).toBe('NoProblem');
    expect(s.mixedFlavors).toBeUndefined();
    expect(s.semiSync).toEqual({ policy: true, protecting: true });
    expect(s.nodes).toEqual([
      {
        nodeId: 'db1',
        endpoint: '127.0.0.1:13000',
        role: 'primary',
        reachable: true,
        server: 'MySQL 8.4.3',
        readOnly: false,
        gtid: `${q}:1-2,${P}:1-100`,
        semiSync: 'source ON (2 clients)',
      },
      ...['db2', 'db3'].map((id) => ({
        nodeId: id,
        endpoint: `127.0.0.${id.slice(2)}:3306`,
        role: 'replica',
        reachable: true,
        server: 'MySQL 8.4.3',
        readOnly: true,
        gtid: `${q}:1-2,${P}:1-100`,
        io: 'Yes',
        sql: 'Yes',
        lagSeconds: 0,
        semiSync: 'replica ON',
      })),
    ]);
    const table = formatStatus(s);
    expect(table).toContain('state NoProblem');
    expect(table).toMatch(/db2 +replica +127\.0\.0\.2:3306 +MySQL 8\.4\.3 +yes +ON +2174b383/);
  });

  it('reports a dead 8.4 primary: refused, replicas Connecting with 2003 and Seconds_Behind_Source NULL', async () => {
    const nodes = await probeAll({
      db2: replicaOf(
        2,
        { executed: `${P}:1-100`, retrieved: `${P}:1-105` },
        SHOW_REPLICA_STATUS_84_CONNECTING,
      ),
      db3: replicaOf(
        3,
        { executed: `${P}:1-100`, retrieved: `${P}:1-103` },
        SHOW_REPLICA_STATUS_84_CONNECTING,
      ),
    });
    const s = describeClusterStatus(mysqlClusterConfig(), {
      state: undefined,
      snapshot: { cluster: 'my', takenAt: NOW, primaryId: 'db1', nodes },
      holder: undefined,
      now: NOW,
    });
    expect(s.analysis).toBe('DeadPrimary');
    expect(
      s.nodes.map((n) => [n.nodeId, n.reachable, n.io ?? '-', n.lagSeconds ?? '-', n.error ?? '-']),
    ).toEqual([
      ['db1', false, '-', '-', 'refused: ECONNREFUSED'],
      ['db2', true, 'Connecting', '-', '-'],
      ['db3', true, 'Connecting', '-', '-'],
    ]);
  });

  it('reports a 5.7 cluster with the master/slave semi-sync names', async () => {
    const node57 = (id: number, over: Partial<FakeNode> = {}) =>
      mysql84(id, {
        version: '5.7.44-log',
        comment: 'MySQL Community Server (GPL)',
        settings: settings(id, { version: '5.7.44-log' }),
        plugins: [
          { PLUGIN_NAME: 'rpl_semi_sync_master', PLUGIN_STATUS: 'ACTIVE' },
          { PLUGIN_NAME: 'rpl_semi_sync_slave', PLUGIN_STATUS: 'ACTIVE' },
        ],
        semiVariables: [
          { Variable_name: 'rpl_semi_sync_master_enabled', Value: 'ON' },
          { Variable_name: 'rpl_semi_sync_slave_enabled', Value: 'OFF' },
        ],
        semiStatus: [
          { Variable_name: 'Rpl_semi_sync_master_status', Value: 'ON' },
          { Variable_name: 'Rpl_semi_sync_master_clients', Value: '1' },
        ],
        executed: `${P}:1-5`,
        ...over,
      });
    const nodes = await probeAll({
      db1: node57(1),
      db2: node57(2, {
        settings: settings(2, { version: '5.7.44-log', read_only: '1', super_read_only: '1' }),
        semiVariables: [{ Variable_name: 'rpl_semi_sync_slave_enabled', Value: 'ON' }],
        semiStatus: [{ Variable_name: 'Rpl_semi_sync_slave_status', Value: 'ON' }],
        replicaStatus: { ...SHOW_SLAVE_STATUS_57, Master_Host: '127.0.0.1' },
        heartbeat: '1.000',
      }),
    });
    const s = describeClusterStatus(mysqlClusterConfig(), {
      state: undefined,
      snapshot: { cluster: 'my', takenAt: NOW, primaryId: 'db1', nodes },
      holder: undefined,
      now: NOW,
    });
    expect(s.nodes.map((n) => [n.nodeId, n.server, n.semiSync])).toEqual([
      ['db1', 'MySQL 5.7.44', 'master ON (1 clients)'],
      ['db2', 'MySQL 5.7.44', 'slave ON'],
      ['db3', undefined, undefined],
    ]);
  });
});

describe('plan on MySQL-shaped nodes', () => {
  /** db1 dead, last seen by the health check at P:1-100; db2 received most; db3 wrote locally. */
  async function deadPrimary84(db3Executed: string) {
    const c = mysqlClusterConfig();
    const nodes = await probeAll({
      db2: replicaOf(
        2,
        { executed: `${Q}:1-2,\n${P}:1-100`, retrieved: `${P}:90-105` },
        SHOW_REPLICA_STATUS_84_CONNECTING,
      ),
      db3: replicaOf(
        3,
        { executed: db3Executed, retrieved: `${P}:90-103` },
        SHOW_REPLICA_STATUS_84_CONNECTING,
      ),
    });
    const state = {
      ...initialState(c, NOW - 5000),
      topology: [
        {
          nodeId: 'db1',
          role: 'primary',
          reachable: true,
          gtid: `${Q}:1-2,\n${P}:1-100`,
          seenAt: NOW - 1000,
        },
      ],
    };
    return describeFailoverPlan(c, { state, nodes, takenAt: NOW, now: NOW });
  }

  it('elects by received GTID sets and writes every step in MySQL 8.4 words', async () => {
    const p = await deadPrimary84(`${Q}:1-2,\n${P}:1-103`);
    expect(p.analysis.code).toBe('DeadPrimary');
    expect(p.wouldFailover).toBe(true);
    expect(p.candidate).toBe('db2');
    expect(p.report).toContain(`candidate: db2 (received ${q}:1-2,${P}:1-105)`);
    expect(p.verdicts.find((v) => v.nodeId === 'db3')?.reasons[0]).toBe(
      'eligible, not chosen: 2 transaction(s) fewer received than db2',
    );
    const step = (name: string) => p.steps.find((s) => s.state === name)?.action;
    expect(step('CatchUpCandidate')).toBe(
      `STOP REPLICA IO_THREAD on db2, WAIT_FOR_EXECUTED_GTID_SET up to ${q}:1-2,${P}:1-105 (5 transaction(s) to apply, at most 60 s)`,
    );
    expect(step('PromoteCandidate')).toBe(
      'db1 fenced again if it answers writable; db2: STOP REPLICA, RESET REPLICA ALL, semi-sync source AFTER_SYNC (rpl_semi_sync_source_enabled=ON), super_read_only=OFF, read_only=OFF',
    );
    expect(step('RepointReplicas')).toBe(
      'db3 -> replicate from db2 (CHANGE REPLICATION SOURCE TO ... SOURCE_AUTO_POSITION = 1)',
    );
    expect(step('FenceOldPrimary')).toContain('db1 does not answer: the VIP moves to db2');
    expect(p.report).not.toMatch(/SLAVE|MASTER_GTID_WAIT|slave_pos/);
  });

  it('passes over a replica with a local write under its own UUID (errant against the primary as last seen)', async () => {
    const p = await deadPrimary84(`${Q}:1-2,\n${P}:1-103,\n${R3}:1`);
    expect(p.candidate).toBe('db2');
    expect(p.verdicts.find((v) => v.nodeId === 'db3')?.reasons[0]).toBe(
      `not eligible: errant transactions: 1 transaction: ${R3}:1`,
    );
  });

  it('plans a live 5.7 cluster in SLAVE/MASTER words, fencing with super_read_only, and would not fail over', async () => {
    const c = mysqlClusterConfig();
    const node57 = (id: number, over: Partial<FakeNode> = {}) =>
      mysql84(id, {
        version: '5.7.44-log',
        comment: 'MySQL Community Server (GPL)',
        settings: settings(id, { version: '5.7.44-log' }),
        plugins: [{ PLUGIN_NAME: 'rpl_semi_sync_master', PLUGIN_STATUS: 'ACTIVE' }],
        semiVariables: [{ Variable_name: 'rpl_semi_sync_master_enabled', Value: 'ON' }],
        semiStatus: [
          { Variable_name: 'Rpl_semi_sync_master_status', Value: 'ON' },
          { Variable_name: 'Rpl_semi_sync_master_clients', Value: '2' },
        ],
        executed: `${P}:1-5`,
        ...over,
      });
    const replica57 = (id: number) =>
      node57(id, {
        settings: settings(id, { version: '5.7.44-log', read_only: '1', super_read_only: '1' }),
        replicaStatus: {
          ...SHOW_SLAVE_STATUS_57,
          Master_Host: '127.0.0.1',
          Retrieved_Gtid_Set: `${P}:1-5`,
          Executed_Gtid_Set: `${P}:1-5`,
        },
        heartbeat: '1.000',
      });
    const nodes = await probeAll({ db1: node57(1), db2: replica57(2), db3: replica57(3) });
    const p = describeFailoverPlan(c, { state: undefined, nodes, takenAt: NOW, now: NOW });
    expect(p.analysis.code).toBe('NoProblem');
    expect(p.wouldFailover).toBe(false);
    expect(p.why).toContain('NoProblem is not a state that fails over');
    expect(p.candidate).toBe('db2');
    const step = (name: string) => p.steps.find((s) => s.state === name)?.action;
    expect(step('FenceOldPrimary')).toContain('db1 answers: super_read_only=ON (new writes held back');
    expect(step('CatchUpCandidate')).toBe(
      `STOP SLAVE IO_THREAD on db2, WAIT_FOR_EXECUTED_GTID_SET up to ${P}:1-5 (0 transaction(s) to apply, at most 60 s)`,
    );
    expect(step('PromoteCandidate')).toContain(
      'db2: STOP SLAVE, RESET SLAVE ALL, semi-sync master AFTER_SYNC (rpl_semi_sync_master_enabled=ON), super_read_only=OFF, read_only=OFF',
    );
    expect(step('RepointReplicas')).toBe(
      'db3 -> replicate from db2 (CHANGE MASTER TO ... MASTER_AUTO_POSITION = 1)',
    );
  });
});
