import { describe, expect, it } from 'vitest';
import { electCandidate } from '../../lib/core/elect-candidate.ts';
import type { ClusterSnapshot, ElectionPolicy, NodeProbe } from '../../lib/core/types.ts';

const NOW = 1_763_769_600_000;
const HOUR = 3_600_000;

/** A replica whose IO thread stopped long ago (no error, Seconds_Behind_Master NULL). */
function stale(nodeId: string, serverId: number, received: string, heartbeatLagMs: number): NodeProbe {
  return {
    nodeId,
    reachable: true,
    probeMs: 2,
    serverId,
    version: '10.11.6-MariaDB-0+deb12u1-log',
    readOnly: true,
    heartbeatLagMs,
    logBin: true,
    logSlaveUpdates: true,
    gtidBinlogPos: received,
    gtidCurrentPos: received,
    gtidSlavePos: received,
    replication: {
      sourceHost: '127.0.0.1',
      sourcePort: 33061,
      ioState: 'No',
      sqlRunning: true,
      lastIoErrno: 0,
      lastIoError: '',
      lastSqlErrno: 0,
      lastSqlError: '',
      secondsBehindMaster: null,
      gtidIoPos: received,
      heartbeatsReceived: 0,
      usingGtid: 'Slave_Pos',
    },
  };
}

const snapshot = (...replicas: NodeProbe[]): ClusterSnapshot => ({
  cluster: 'lab',
  takenAt: NOW,
  primaryId: 'n1',
  nodes: [
    {
      nodeId: 'n1',
      reachable: false,
      probeMs: 1,
      error: { kind: 'refused', code: 'ECONNREFUSED', message: 'x' },
    },
    ...replicas,
  ],
});

const policy: ElectionPolicy = { mode: 'auto', order: ['n1', 'n2', 'n3'], rules: {}, maxLagSeconds: 60 };
/** The primary as the health check last reached it, a second before the crash. */
const lastSeen = { primaryGtid: '0-1-9000', primaryLastSeenAt: NOW - 1000 };

describe('electCandidate against the primary as last seen (T4)', () => {
  it('vetoes the only replica of a 2-node cluster that stopped receiving an hour before the crash', () => {
    const e = electCandidate(snapshot(stale('n2', 2, '0-1-5400', HOUR + 2000)), policy, lastSeen);
    expect(e.kind).toBe('veto');
    if (e.kind !== 'veto') return;
    expect(e.reason).toMatch(
      /n2: .*3601\.0 s behind the primary as last seen 1\.0 s before this election \(0-1-9000; missing 3600 transaction\(s\).* over the limit of 60 s/,
    );
    expect(e.verdicts.find((v) => v.nodeId === 'n2')?.eligible).toBe(false);
  });

  it('vetoes every survivor when all lost the primary long ago, though none trails the other', () => {
    const e = electCandidate(
      snapshot(stale('n2', 2, '0-1-5400', HOUR + 2000), stale('n3', 3, '0-1-5400', HOUR + 2100)),
      policy,
      lastSeen,
    );
    expect(e.kind).toBe('veto');
  });

  it('promotes when forced (ignoreLag), and the verdict still says how far behind', () => {
    const e = electCandidate(
      snapshot(stale('n2', 2, '0-1-5400', HOUR + 2000)),
      { ...policy, ignoreLag: true },
      lastSeen,
    );
    expect(e.kind).toBe('candidate');
    const reasons = e.verdicts.find((v) => v.nodeId === 'n2')?.reasons.join('; ') ?? '';
    expect(reasons).toMatch(/3601\.0 s behind the primary as last seen.*ignored, the operator forced it/);
  });

  it('promotes a replica that received everything the primary had when last seen, however old its heartbeat', () => {
    const e = electCandidate(snapshot(stale('n2', 2, '0-1-9000', HOUR)), policy, lastSeen);
    expect(e.kind).toBe('candidate');
  });

  it('promotes a replica a few seconds behind the last seen primary, within the limit', () => {
    const e = electCandidate(snapshot(stale('n2', 2, '0-1-8995', 6000)), policy, lastSeen);
    expect(e.kind).toBe('candidate');
  });

  it('without a last seen time, falls back to the relative measure (and notes nothing more)', () => {
    const e = electCandidate(snapshot(stale('n2', 2, '0-1-5400', HOUR + 2000)), policy, {
      primaryGtid: '0-1-9000',
    });
    expect(e.kind).toBe('candidate');
  });
});
