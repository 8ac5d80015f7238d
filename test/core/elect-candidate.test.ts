import { describe, expect, it } from 'vitest';
import { electCandidate, parseMajorVersion, replicasAheadOf } from '../../lib/core/elect-candidate.ts';
import type {
  ClusterSnapshot,
  Election,
  ElectionPolicy,
  NodeProbe,
  ReplicationStatus,
} from '../../lib/core/types.ts';

const VERSION = '10.11.6-MariaDB-0+deb12u1-log';
const REFUSED =
  "error reconnecting to master 'repl@127.0.0.1:33061' - retry-time: 1  maximum-retries: 100000  message: Can't connect to server on '127.0.0.1' (111 \"Connection refused\")";

/** A replica as probed a moment after its primary (n1, 127.0.0.1:33061) was killed. */
function replica(
  nodeId: string,
  serverId: number,
  received: string,
  over: Partial<NodeProbe> = {},
  rep: Partial<ReplicationStatus> = {},
): NodeProbe {
  const applied = over.gtidCurrentPos ?? received;
  return {
    nodeId,
    reachable: true,
    probeMs: 1.9,
    serverId,
    version: VERSION,
    readOnly: true,
    heartbeatLagMs: 1400,
    logBin: true,
    logSlaveUpdates: true,
    gtidBinlogPos: applied,
    gtidCurrentPos: applied,
    gtidSlavePos: applied,
    replication: {
      sourceHost: '127.0.0.1',
      sourcePort: 33061,
      ioState: 'Connecting',
      sqlRunning: true,
      lastIoErrno: 2003,
      lastIoError: REFUSED,
      lastSqlErrno: 0,
      lastSqlError: '',
      secondsBehindMaster: null,
      gtidIoPos: received,
      heartbeatsReceived: 1839,
      usingGtid: 'Slave_Pos',
      ...rep,
    },
    ...over,
  };
}

function cluster(...replicas: NodeProbe[]): ClusterSnapshot {
  return {
    cluster: 'lab',
    takenAt: 1_763_769_600_000,
    primaryId: 'n1',
    nodes: [
      {
        nodeId: 'n1',
        reachable: false,
        probeMs: 0.8,
        error: { kind: 'refused', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:33061' },
      },
      ...replicas,
    ],
  };
}

function policy(over: Partial<ElectionPolicy> = {}): ElectionPolicy {
  return { mode: 'auto', order: ['n1', 'n2', 'n3', 'n4'], rules: {}, maxLagSeconds: 3600, ...over };
}

function chosen(e: Election): string {
  return e.kind === 'candidate' ? e.nodeId : `veto: ${e.reason}`;
}

function reasonsOf(e: Election, nodeId: string): string {
  const v = e.verdicts.find((x) => x.nodeId === nodeId);
  expect(v, `verdict for ${nodeId}`).toBeDefined();
  return v!.reasons.join(' | ');
}

describe('electCandidate', () => {
  it('picks the replica that received most, not the one that applied most', () => {
    const e = electCandidate(
      cluster(
        replica('n2', 2, '0-1-4530', { gtidCurrentPos: '0-1-4519' }),
        replica('n3', 3, '0-1-4528', { gtidCurrentPos: '0-1-4528' }),
      ),
      policy(),
    );
    expect(e).toMatchObject({ kind: 'candidate', nodeId: 'n2', receivedGtid: '0-1-4530' });
    expect(reasonsOf(e, 'n2')).toMatch(/chosen: most received/);
    expect(reasonsOf(e, 'n2')).toMatch(/relay log backlog 11 transaction/);
    expect(reasonsOf(e, 'n3')).toMatch(/2 transaction\(s\) fewer received than n2/);
  });

  it('ranks across all domains by how many transactions each lacks', () => {
    const e = electCandidate(
      cluster(replica('n2', 2, '0-1-101,1-4-40'), replica('n3', 3, '0-1-100,1-4-50')),
      policy({ order: ['n2', 'n3'] }),
    );
    expect(chosen(e)).toBe('n3');
  });

  it('falls back to gtid_current_pos when Gtid_IO_Pos is empty', () => {
    const e = electCandidate(
      cluster(
        replica('n2', 2, '', { gtidCurrentPos: '0-1-4529', gtidSlavePos: '0-1-4529' }),
        replica('n3', 3, '0-1-4528'),
      ),
      policy(),
    );
    expect(chosen(e)).toBe('n2');
    expect(reasonsOf(e, 'n2')).toMatch(/Gtid_IO_Pos empty/);
  });

  it('skips a replica with errant transactions from a local write', () => {
    const e = electCandidate(
      cluster(
        replica('n2', 2, '0-1-4528', {
          gtidBinlogPos: '0-2-4529',
          gtidCurrentPos: '0-2-4529',
          gtidSlavePos: '0-1-4528',
        }),
        replica('n3', 3, '0-1-4527'),
      ),
      policy(),
      { primaryGtid: '0-1-4530' },
    );
    expect(chosen(e)).toBe('n3');
    expect(reasonsOf(e, 'n2')).toMatch(
      /not eligible: errant transactions: domain 0: seq 4529 \(last 0-2-4529\)/,
    );
  });

  it('skips a replica with a domain of its own', () => {
    const e = electCandidate(
      cluster(
        replica('n2', 2, '0-1-4530', { gtidBinlogPos: '0-1-4530,9-2-3' }),
        replica('n3', 3, '0-1-4529'),
      ),
      policy(),
    );
    expect(chosen(e)).toBe('n3');
    expect(reasonsOf(e, 'n2')).toMatch(/errant transactions: domain 9: seq 1-3/);
  });

  it('accepts a domain the dead primary also had, and flags it when nothing vouches for it', () => {
    const node = replica('n2', 2, '0-1-4530', {
      gtidBinlogPos: '0-1-4530,1-7-12',
      gtidCurrentPos: '0-1-4530,1-7-12',
      gtidSlavePos: '0-1-4530',
    });
    expect(chosen(electCandidate(cluster(node), policy(), { primaryGtid: '0-1-4525,1-7-12' }))).toBe('n2');
    expect(chosen(electCandidate(cluster(node), policy()))).toMatch(
      /veto: no eligible candidate \(n2: errant/,
    );
  });

  it('accepts a rejoined former primary whose own writes are in its slave position', () => {
    const e = electCandidate(
      cluster(
        replica('n2', 2, '0-1-4530', {
          gtidBinlogPos: '0-2-4500',
          gtidCurrentPos: '0-2-4500',
          gtidSlavePos: '0-2-4500',
        }),
      ),
      policy(),
      { primaryGtid: '0-1-4530' },
    );
    expect(chosen(e)).toBe('n2');
  });

  it('skips must_not, missing binlogs, SQL errors and unreachable replicas with a reason each', () => {
    const e = electCandidate(
      cluster(
        replica('n2', 2, '0-1-4530'),
        replica('n3', 3, '0-1-4530', { logBin: false }),
        replica('n4', 4, '0-1-4530', { logSlaveUpdates: false }),
        replica(
          'n5',
          5,
          '0-1-4530',
          {},
          {
            lastSqlErrno: 1062,
            sqlRunning: false,
            lastSqlError:
              "Could not execute Write_rows_v1 event on table app.orders; Duplicate entry '42' for key 'PRIMARY'",
          },
        ),
        {
          nodeId: 'n6',
          reachable: false,
          probeMs: 1001,
          error: { kind: 'timeout', code: 'ETIMEDOUT', message: 'connect ETIMEDOUT' },
        },
        replica('n7', 7, '0-1-4529'),
      ),
      policy({ rules: { n2: 'must_not' } }),
    );
    expect(chosen(e)).toBe('n7');
    expect(reasonsOf(e, 'n2')).toMatch(/promotion rule must_not/);
    expect(reasonsOf(e, 'n3')).toMatch(/log_bin is OFF/);
    expect(reasonsOf(e, 'n4')).toMatch(/log_slave_updates is OFF/);
    expect(reasonsOf(e, 'n5')).toMatch(/SQL thread error 1062/);
    expect(reasonsOf(e, 'n6')).toMatch(/unreachable \(timeout ETIMEDOUT\)/);
    expect(reasonsOf(e, 'n1')).toMatch(/current primary/);
    expect(e.verdicts.map((v) => v.nodeId)).toEqual(['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7']);
    expect(e.verdicts.filter((v) => v.eligible).map((v) => v.nodeId)).toEqual(['n7']);
  });

  it('skips a replica lagging beyond the limit by Seconds_Behind_Master', () => {
    const e = electCandidate(
      cluster(
        replica('n2', 2, '0-1-4530', {}, { ioState: 'Yes', secondsBehindMaster: 4000 }),
        replica('n3', 3, '0-1-4529'),
      ),
      policy(),
    );
    expect(chosen(e)).toBe('n3');
    expect(reasonsOf(e, 'n2')).toMatch(/lag 4000.0 s over the limit of 3600 s/);
  });

  it('measures heartbeat lag against the freshest replica once the primary is gone', () => {
    const e = electCandidate(
      cluster(
        replica('n2', 2, '0-1-4530', { heartbeatLagMs: 2_401_400 }),
        replica('n3', 3, '0-1-4529', { heartbeatLagMs: 1400 }),
      ),
      policy({ maxLagSeconds: 30 }),
    );
    expect(chosen(e)).toBe('n3');
    expect(reasonsOf(e, 'n2')).toMatch(/lag 2400.0 s over the limit of 30 s/);
    // The same 1.4 s heartbeat age on every replica is the crash, not lag.
    const same = electCandidate(
      cluster(replica('n2', 2, '0-1-4530'), replica('n3', 3, '0-1-4529')),
      policy({ maxLagSeconds: 1 }),
    );
    expect(chosen(same)).toBe('n2');
  });

  it('skips a replica on an older major version than the others', () => {
    const e = electCandidate(
      cluster(
        replica('n2', 2, '0-1-4530', { version: '10.6.16-MariaDB-0+deb11u1-log' }),
        replica('n3', 3, '0-1-4529'),
      ),
      policy(),
    );
    expect(chosen(e)).toBe('n3');
    expect(reasonsOf(e, 'n2')).toMatch(/older major version 10.6 than n3 \(10.11\)/);
  });

  it('uses versions from facts when the probe has none', () => {
    const { version: _dropped, ...noVersion } = replica('n2', 2, '0-1-4530');
    const e = electCandidate(cluster(noVersion, replica('n3', 3, '0-1-4529')), policy(), {
      majorVersions: { n2: '10.5.23-MariaDB' },
    });
    expect(chosen(e)).toBe('n3');
    expect(reasonsOf(e, 'n2')).toMatch(/older major version 10.5/);
  });

  it('prefers by received first, then promotion rule, in mode auto', () => {
    const snapshot = cluster(replica('n2', 2, '0-1-4530'), replica('n3', 3, '0-1-4529'));
    expect(chosen(electCandidate(snapshot, policy({ rules: { n3: 'prefer' } })))).toBe('n2');
  });

  it('only promotes prefer nodes in mode elect, and vetoes when none is eligible', () => {
    const snapshot = cluster(replica('n2', 2, '0-1-4530'), replica('n3', 3, '0-1-4529'));
    const e = electCandidate(snapshot, policy({ mode: 'elect', rules: { n3: 'prefer' } }));
    expect(chosen(e)).toBe('n3');
    expect(reasonsOf(e, 'n2')).toMatch(/mode elect only promotes rule prefer/);
    expect(reasonsOf(e, 'n3')).toMatch(/chosen: 1 transaction\(s\) behind the most received/);

    const veto = electCandidate(snapshot, policy({ mode: 'elect' }));
    expect(veto).toMatchObject({
      kind: 'veto',
      reason: 'mode elect: no eligible replica has promotion rule prefer',
    });
  });

  it('never promotes in mode fail', () => {
    const e = electCandidate(cluster(replica('n2', 2, '0-1-4530')), policy({ mode: 'fail' }));
    expect(e).toMatchObject({ kind: 'veto', reason: 'mode fail: never promote' });
    expect(reasonsOf(e, 'n2')).toMatch(/passes all checks, but mode fail/);
  });

  it('breaks ties on received by promotion rule, then configured order', () => {
    const snapshot = cluster(replica('n2', 2, '0-1-4530'), replica('n3', 3, '0-1-4530'));
    const byRule = electCandidate(snapshot, policy({ rules: { n3: 'prefer' } }));
    expect(chosen(byRule)).toBe('n3');
    expect(reasonsOf(byRule, 'n2')).toMatch(/received as much as n3, which has promotion rule prefer/);

    const byOrder = electCandidate(snapshot, policy({ order: ['n3', 'n2'] }));
    expect(chosen(byOrder)).toBe('n3');
    expect(reasonsOf(byOrder, 'n2')).toMatch(/comes first in the configured order/);
    expect(chosen(electCandidate(snapshot, policy({ order: ['n2', 'n3'] })))).toBe('n2');
  });

  it('vetoes with every reason when no replica is eligible', () => {
    const e = electCandidate(
      cluster(replica('n2', 2, '0-1-4530', { logBin: false }), replica('n3', 3, '0-1-4530')),
      policy({ rules: { n3: 'must_not' } }),
    );
    expect(e).toMatchObject({
      kind: 'veto',
      reason: 'no eligible candidate (n2: log_bin is OFF; n3: promotion rule must_not)',
    });
  });
});

describe('replicasAheadOf', () => {
  it('lists replicas that received what the candidate lacks, most ahead first', () => {
    const snapshot = cluster(
      replica('n2', 2, '0-1-4530'),
      replica('n3', 3, '0-1-4526'),
      replica('n4', 4, '0-1-4528', { gtidBinlogPos: '0-1-4528,9-4-2' }),
    );
    expect(replicasAheadOf(snapshot, 'n3')).toEqual([
      {
        nodeId: 'n2',
        receivedGtid: '0-1-4530',
        missing: 'domain 0: seq 4527-4530 (last 0-1-4530)',
        missingCount: 4,
      },
      {
        nodeId: 'n4',
        receivedGtid: '0-1-4528',
        missing: 'domain 0: seq 4527-4528 (last 0-1-4528)',
        missingCount: 2,
      },
    ]);
    expect(replicasAheadOf(snapshot, 'n2')).toEqual([]);
  });

  it('throws for a node that is not in the snapshot', () => {
    expect(() => replicasAheadOf(cluster(replica('n2', 2, '0-1-1')), 'n9')).toThrow(
      /n9: not a node of cluster lab/,
    );
  });
});

describe('parseMajorVersion', () => {
  it('reads the first two numbers of @@version', () => {
    expect(parseMajorVersion('10.11.6-MariaDB-0+deb12u1-log')).toEqual({ major: 10, minor: 11 });
    expect(parseMajorVersion('11.4.2-MariaDB')).toEqual({ major: 11, minor: 4 });
    expect(parseMajorVersion('unknown')).toBeUndefined();
  });
});
