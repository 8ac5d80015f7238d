/**
 * The election, completeness and errant checks on MySQL GTID sets: the same electCandidate,
 * replicasAheadOf and findErrantReplicas as elect-candidate.test.ts runs on MariaDB positions,
 * through the flavor-neutral GtidAlgebra. Replica status comes from rows shaped like MySQL's
 * (test/dialect/fixtures/mysql-manual.ts names the manual section of each), parsed by the MySQL
 * dialect's own parser, with GTID sets in the server's multi-line text form.
 */
import { describe, expect, it } from 'vitest';
import { parseMysqlReplicaRow } from '../../lib/adapters/mysql/dialect/mysql.ts';
import {
  clusterGtidAlgebra,
  electCandidate,
  findErrantReplicas,
  flavorOfNode,
  replicasAheadOf,
} from '../../lib/core/elect-candidate.ts';
import type { ClusterSnapshot, Election, ElectionPolicy, NodeProbe } from '../../lib/core/types.ts';
import { SHOW_REPLICA_STATUS_84_CONNECTING, SHOW_SLAVE_STATUS_57 } from '../dialect/fixtures/mysql-manual.ts';

/** The dead primary's server_uuid (the 8.4 manual's SHOW REPLICA STATUS example source). */
const P = '73f86016-978b-11ee-ade5-8d2a2a562feb';
/** A second source UUID (an earlier primary), upper case as the manual prints it. */
const Q = '2174B383-5441-11E8-B90A-C80AA9429562';
const q = Q.toLowerCase();
/** Replicas' own server_uuids: their local writes carry them. */
const R2 = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
const R3 = 'b4d1c2e0-9f1a-11ee-8c90-0242ac120003';

/**
 * A MySQL 8.4 replica a moment after its source died: SHOW REPLICA STATUS as the manual's
 * Connecting row (error 2003, (111)), with this replica's Retrieved/Executed sets; the probe
 * fields as Inst.readProbeFacts fills them (gtid_executed in both positions, no slave pos).
 */
function replica(
  nodeId: string,
  serverId: number,
  sets: { retrieved: string; executed: string },
  over: Partial<NodeProbe> = {},
): NodeProbe {
  const replication = parseMysqlReplicaRow({
    ...SHOW_REPLICA_STATUS_84_CONNECTING,
    Retrieved_Gtid_Set: sets.retrieved,
    Executed_Gtid_Set: sets.executed,
  });
  return {
    nodeId,
    reachable: true,
    probeMs: 2,
    serverId,
    version: '8.4.3',
    readOnly: true,
    heartbeatLagMs: 1400,
    logBin: true,
    logSlaveUpdates: true,
    gtidBinlogPos: sets.executed,
    gtidCurrentPos: sets.executed,
    gtidSlavePos: '',
    replication,
    ...over,
  };
}

function cluster(...replicas: NodeProbe[]): ClusterSnapshot {
  return {
    cluster: 'my',
    takenAt: 1_763_769_600_000,
    primaryId: 'n1',
    nodes: [
      {
        nodeId: 'n1',
        reachable: false,
        probeMs: 0.8,
        error: { kind: 'refused', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:13000' },
      },
      ...replicas,
    ],
  };
}

const policy = (over: Partial<ElectionPolicy> = {}): ElectionPolicy => ({
  mode: 'auto',
  order: ['n1', 'n2', 'n3', 'n4'],
  rules: {},
  maxLagSeconds: 3600,
  ...over,
});

const chosen = (e: Election) => (e.kind === 'candidate' ? e.nodeId : `veto: ${e.reason}`);
const reasonsOf = (e: Election, id: string) =>
  e.verdicts.find((v) => v.nodeId === id)?.reasons.join(' | ') ?? '(no verdict)';

describe('electCandidate on MySQL GTID sets', () => {
  it('picks the replica whose received set holds the others’, across several source UUIDs', () => {
    // Both applied Q:1-2 from an earlier primary; n2 received P:1-5, n3 only P:1-3.
    const e = electCandidate(
      cluster(
        replica('n2', 2, { retrieved: `${P}:1-5`, executed: `${Q}:1-2,\n${P}:1-3` }),
        replica('n3', 3, { retrieved: `${P}:1-3`, executed: `${Q}:1-2,\n${P}:1-3` }),
      ),
      policy({ order: ['n3', 'n2'] }),
    );
    expect(e).toMatchObject({ kind: 'candidate', nodeId: 'n2', receivedGtid: `${q}:1-2,${P}:1-5` });
    expect(reasonsOf(e, 'n2')).toContain('chosen: most received transactions');
    expect(reasonsOf(e, 'n2')).toContain('relay log backlog 2 transaction(s)');
    expect(reasonsOf(e, 'n3')).toContain('2 transaction(s) fewer received than n2');
  });

  it('counts the holes of a set: the replica missing fewest wins, not the one with the highest GTID', () => {
    // n2 ends at P:100; n3 ends at P:105 but lacks P:60-99 (a MariaDB position could not tell).
    const e = electCandidate(
      cluster(
        replica('n2', 2, { retrieved: `${P}:1-100`, executed: `${P}:1-100` }),
        replica('n3', 3, { retrieved: `${P}:1-59:100-105`, executed: `${P}:1-59:100-105` }),
      ),
      policy({ order: ['n3', 'n2'] }),
    );
    expect(chosen(e)).toBe('n2');
    expect(reasonsOf(e, 'n2')).toContain('5 transaction(s) behind the most received');
    expect(reasonsOf(e, 'n3')).toContain('35 transaction(s) fewer received than n2');
  });

  it('skips a replica with a local write under its own UUID: GTID_SUBTRACT(executed, retrieved ∪ primary)', () => {
    const e = electCandidate(
      cluster(
        replica('n2', 2, { retrieved: `${P}:1-100`, executed: `${P}:1-100,\n${R2}:1-2` }),
        replica('n3', 3, { retrieved: `${P}:1-98`, executed: `${P}:1-98` }),
      ),
      policy(),
      { primaryGtid: `${P}:1-100` },
    );
    expect(chosen(e)).toBe('n3');
    expect(reasonsOf(e, 'n2')).toContain(`not eligible: errant transactions: 2 transactions: ${R2}:1-2`);
  });

  it('does not call transactions errant that arrived after the primary was last seen (they are in Retrieved_Gtid_Set)', () => {
    const e = electCandidate(
      cluster(replica('n2', 2, { retrieved: `${P}:1-120`, executed: `${P}:1-120` })),
      policy(),
      { primaryGtid: `${P}:1-100`, primaryLastSeenAt: 1_763_769_599_000 },
    );
    expect(chosen(e)).toBe('n2');
    expect(
      findErrantReplicas(cluster(replica('n2', 2, { retrieved: `${P}:1-120`, executed: `${P}:1-120` })), {
        primaryGtid: `${P}:1-100`,
      }),
    ).toEqual([]);
  });

  it('finds an errant GTID of a foreign UUID that the primary never had, also below what was retrieved', () => {
    // Retrieved_Gtid_Set was emptied (RESET REPLICA); the primary's set is the reference.
    const snapshot = cluster(
      replica('n2', 2, { retrieved: '', executed: `${Q}:1-3,\n${P}:1-100` }),
      replica('n3', 3, { retrieved: `${P}:90-100`, executed: `${Q}:1-2,\n${P}:1-100` }),
    );
    const facts = { primaryGtid: `${Q}:1-2,${P}:1-100` };
    const e = electCandidate(snapshot, policy(), facts);
    expect(chosen(e)).toBe('n3');
    expect(reasonsOf(e, 'n2')).toContain(`errant transactions: 1 transaction: ${q}:3`);
    expect(findErrantReplicas(snapshot, facts)).toEqual([{ nodeId: 'n2', errant: `1 transaction: ${q}:3` }]);
  });

  it('without the primary’s last set, what another replica also executed counts as replicated', () => {
    const snapshot = cluster(
      replica('n2', 2, { retrieved: '', executed: `${Q}:1-2,\n${P}:1-50,\n${R2}:1` }),
      replica('n3', 3, { retrieved: `${P}:40-50`, executed: `${Q}:1-2,\n${P}:1-50` }),
    );
    expect(findErrantReplicas(snapshot)).toEqual([{ nodeId: 'n2', errant: `1 transaction: ${R2}:1` }]);
    expect(chosen(electCandidate(snapshot, policy()))).toBe('n3');
  });

  it('vetoes a replica too far behind the primary as last seen, counted in GTIDs of the set', () => {
    const e = electCandidate(
      cluster(
        replica('n2', 2, { retrieved: `${P}:1-90`, executed: `${P}:1-90` }, { heartbeatLagMs: 30_000 }),
      ),
      policy({ maxLagSeconds: 10 }),
      { primaryGtid: `${P}:1-100`, primaryLastSeenAt: 1_763_769_599_000 },
    );
    expect(e.kind).toBe('veto');
    expect(reasonsOf(e, 'n2')).toMatch(
      /29\.0 s behind the primary as last seen .*missing 10 transaction\(s\)/,
    );
  });

  it('reads a 5.7 SHOW SLAVE STATUS row (Slave_/Master_ names) the same way', () => {
    const r57 = (id: string, sid: number, set: string): NodeProbe => ({
      ...replica(id, sid, { retrieved: set, executed: set }, { version: '5.7.44-log' }),
      replication: parseMysqlReplicaRow({
        ...SHOW_SLAVE_STATUS_57,
        Retrieved_Gtid_Set: set,
        Executed_Gtid_Set: set,
      }),
    });
    const e = electCandidate(cluster(r57('n2', 2, `${R2}:1-4`), r57('n3', 3, `${R2}:1-5`)), policy());
    expect(e).toMatchObject({ kind: 'candidate', nodeId: 'n3', receivedGtid: `${R2}:1-5` });
  });

  it('refuses a cluster that mixes MariaDB and MySQL replicas, naming both', () => {
    const mariadb: NodeProbe = {
      ...replica('n3', 3, { retrieved: `${P}:1-3`, executed: `${P}:1-3` }),
      version: '10.11.6-MariaDB-log',
      gtidBinlogPos: '0-1-3',
      gtidCurrentPos: '0-1-3',
      gtidSlavePos: '0-1-3',
    };
    mariadb.replication = { ...mariadb.replication!, flavor: 'mariadb', gtidIoPos: '0-1-3' };
    const snapshot = cluster(replica('n2', 2, { retrieved: `${P}:1-3`, executed: `${P}:1-3` }), mariadb);
    const e = electCandidate(snapshot, policy());
    expect(e.kind).toBe('veto');
    expect(reasonsOf(e, 'n2')).toContain(
      'not eligible: mixed cluster (MySQL n2; MariaDB n3): MariaDB and MySQL GTIDs cannot be compared',
    );
    expect(() => replicasAheadOf(snapshot, 'n2')).toThrow(/mixed cluster/);
    expect(findErrantReplicas(snapshot).map((x) => x.nodeId)).toEqual(['n2', 'n3']);
  });
});

describe('replicasAheadOf on MySQL GTID sets', () => {
  it('offers what a replica received beyond the candidate, never its own errant writes', () => {
    const snapshot = cluster(
      replica('n2', 2, { retrieved: `${P}:1-100`, executed: `${P}:1-100` }),
      // n3 received more, and wrote R3:1-4 locally.
      replica('n3', 3, { retrieved: `${P}:1-104`, executed: `${P}:1-104,\n${R3}:1-4` }),
      replica('n4', 4, { retrieved: `${P}:1-102`, executed: `${P}:1-101` }),
    );
    expect(replicasAheadOf(snapshot, 'n2', { primaryGtid: `${P}:1-100` })).toEqual([
      { nodeId: 'n3', receivedGtid: `${P}:1-104`, missing: `4 transactions: ${P}:101-104`, missingCount: 4 },
      { nodeId: 'n4', receivedGtid: `${P}:1-102`, missing: `2 transactions: ${P}:101-102`, missingCount: 2 },
    ]);
    expect(replicasAheadOf(snapshot, 'n3', { primaryGtid: `${P}:1-100` })).toEqual([]);
  });
});

describe('flavorOfNode and clusterGtidAlgebra', () => {
  it('tell the flavor from the prober, the replica status parser, the GTID notation, or @@version', () => {
    expect(flavorOfNode({ nodeId: 'a', reachable: true, probeMs: 0, flavor: 'mysql' })).toBe('mysql');
    // No version, no GTIDs yet: the replica status the MySQL parser filled says it.
    const { version: _v, ...noVersion } = replica('b', 2, { retrieved: '', executed: '' });
    expect(flavorOfNode(noVersion)).toBe('mysql');
    expect(flavorOfNode({ nodeId: 'c', reachable: true, probeMs: 0, version: '8.0.36' })).toBe('mysql');
    expect(
      flavorOfNode({ nodeId: 'd', reachable: true, probeMs: 0, version: '11.4.2-MariaDB-ubu2404' }),
    ).toBe('mariadb');
    expect(flavorOfNode({ nodeId: 'e', reachable: true, probeMs: 0, gtidCurrentPos: `${P}:1-3` })).toBe(
      'mysql',
    );
    expect(flavorOfNode({ nodeId: 'f', reachable: true, probeMs: 0, gtidCurrentPos: '0-1-3' })).toBe(
      'mariadb',
    );
    expect(flavorOfNode({ nodeId: 'g', reachable: false, probeMs: 0 })).toBeUndefined();
    const one = clusterGtidAlgebra(cluster(replica('n2', 2, { retrieved: '', executed: '' })).nodes);
    expect('algebra' in one && one.algebra.flavor).toBe('mysql');
  });
});

describe('electCandidate on a MySQL probe without Retrieved_Gtid_Set', () => {
  it('does not veto late arrivals as errant, and says the errant check could not run', () => {
    const n2 = replica('n2', 2, { retrieved: `${P}:1-120`, executed: `${P}:1-120` });
    const { retrievedGtid: _r, ...stripped } = n2.replication!;
    const e = electCandidate(cluster({ ...n2, replication: stripped }), policy(), {
      primaryGtid: `${P}:1-100`,
    });
    expect(chosen(e)).toBe('n2');
    expect(reasonsOf(e, 'n2')).toContain(
      'errant transactions not checked: the probe carries no Retrieved_Gtid_Set',
    );
  });
});

describe('flavorOfNode precedence', () => {
  it('reads a MariaDB position as MariaDB even when @@version does not name MariaDB', () => {
    expect(
      flavorOfNode({
        nodeId: 'a',
        reachable: true,
        probeMs: 0,
        version: '10.11.6-log',
        gtidCurrentPos: '0-1-5',
      }),
    ).toBe('mariadb');
  });
});
