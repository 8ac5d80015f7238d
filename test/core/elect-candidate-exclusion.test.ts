import { describe, expect, it } from 'vitest';
import { electCandidate, findErrantReplicas } from '../../lib/core/elect-candidate.ts';
import type { ClusterSnapshot, ElectionPolicy, NodeProbe } from '../../lib/core/types.ts';

function replica(nodeId: string, serverId: number, received: string, executed = received): NodeProbe {
  return {
    nodeId,
    reachable: true,
    probeMs: 1,
    serverId,
    version: '10.11.6-MariaDB',
    readOnly: true,
    logBin: true,
    logSlaveUpdates: true,
    gtidBinlogPos: executed,
    gtidCurrentPos: executed,
    gtidSlavePos: received,
    replication: {
      sourceHost: '127.0.0.1',
      sourcePort: 3306,
      ioState: 'Connecting',
      sqlRunning: true,
      lastIoErrno: 2003,
      lastIoError: 'refused',
      lastSqlErrno: 0,
      lastSqlError: '',
      secondsBehindMaster: null,
      gtidIoPos: received,
      heartbeatsReceived: 10,
      usingGtid: 'Slave_Pos',
    },
  };
}

const policy: ElectionPolicy = { mode: 'auto', order: ['db1', 'db2', 'db3'], rules: {}, maxLagSeconds: 60 };
const snap = (nodes: NodeProbe[]): ClusterSnapshot => ({ cluster: 'c', takenAt: 0, primaryId: 'db1', nodes });

describe('electCandidate with exclusions', () => {
  it('skips an excluded node even when it received most, and says why', () => {
    const e = electCandidate(snap([replica('db2', 2, '0-1-100'), replica('db3', 3, '0-1-90')]), policy, {
      excluded: { db2: 'old primary that needs rejoin' },
    });
    expect(e.kind === 'candidate' && e.nodeId).toBe('db3');
    expect(e.verdicts.find((v) => v.nodeId === 'db2')?.reasons[0]).toBe(
      'not eligible: old primary that needs rejoin',
    );
  });
});

describe('findErrantReplicas', () => {
  it('lists replicas with local transactions the primary never had', () => {
    const errant = findErrantReplicas(
      snap([replica('db2', 2, '0-1-100'), replica('db3', 3, '0-1-100', '0-3-101')]),
    );
    expect(errant).toEqual([{ nodeId: 'db3', errant: 'domain 0: seq 101 (last 0-3-101)' }]);
  });

  it('finds nothing on replicas that only hold what they received', () => {
    expect(findErrantReplicas(snap([replica('db2', 2, '0-1-100'), replica('db3', 3, '0-1-99')]))).toEqual([]);
  });
});
