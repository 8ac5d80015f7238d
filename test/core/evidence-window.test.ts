import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findQuietSince } from '../../lib/core/analyze-topology.ts';
import { confirmFailure } from '../../lib/core/confirm-failure.ts';
import type { Analysis, ClusterSnapshot } from '../../lib/core/types.ts';

const root = new URL('./scenarios/', import.meta.url);
const read = <T>(path: string): T => JSON.parse(readFileSync(new URL(path, root), 'utf8')) as T;

const T0 = 1_763_769_600_000;
const hangAnalysis: Analysis = {
  cluster: 'lab',
  takenAt: T0,
  code: 'DeadPrimary',
  description: 'dead',
  actionable: true,
  evidence: 'ambiguous',
  findings: [{ code: 'DeadPrimary', description: 'dead', nodeId: 'n1' }],
  primaryId: 'n1',
};
const OPTS = { confirmWindowMs: 2000, crashConfirmRounds: 2 };

describe('the evidence window of a hang', () => {
  it('starts the window when the evidence started, so a hang is confirmed 2 s after the first timed-out probe, not 2 s after the first DeadPrimary round', () => {
    // Rounds stretch to the 1 s connect timeout: the first probe that timed out started at
    // T0, DeadPrimary is first seen when that probe ends and the replicas are re-read.
    const first = confirmFailure(undefined, hangAnalysis, T0 + 1030, OPTS, { evidenceSince: T0 });
    expect(first.decision).toMatchObject({ kind: 'suspect', since: T0, remainingMs: 970 });
    const second = confirmFailure(first.state, hangAnalysis, T0 + 2050, OPTS);
    expect(second.decision).toMatchObject({ kind: 'confirmed', since: T0, rounds: 2 });
  });

  it('never starts the window in the future or later than the round', () => {
    const r = confirmFailure(undefined, hangAnalysis, T0, OPTS, { evidenceSince: T0 + 5000 });
    expect(r.decision).toMatchObject({ kind: 'suspect', since: T0 });
  });

  it('keeps the window of a suspicion that is already running', () => {
    const first = confirmFailure(undefined, hangAnalysis, T0 + 1000, OPTS, { evidenceSince: T0 });
    const second = confirmFailure(first.state, hangAnalysis, T0 + 1500, OPTS, { evidenceSince: T0 + 1400 });
    expect(second.decision).toMatchObject({ kind: 'suspect', since: T0 });
  });

  it('does not confirm a one-round blip: a healthy round in between starts the window over', () => {
    const first = confirmFailure(undefined, hangAnalysis, T0 + 1000, OPTS, { evidenceSince: T0 });
    const healthy = confirmFailure(
      first.state,
      { ...hangAnalysis, code: 'NoProblem', actionable: false },
      T0 + 1500,
      OPTS,
    );
    expect(healthy.decision.kind).toBe('healthy');
    const again = confirmFailure(healthy.state, hangAnalysis, T0 + 2600, OPTS, { evidenceSince: T0 + 1600 });
    expect(again.decision).toMatchObject({ kind: 'suspect', since: T0 + 1600 });
  });
});

describe('findQuietSince', () => {
  const snapshot = read<ClusterSnapshot>('DeadPrimary-hang/snapshot.json');
  const history = read<ClusterSnapshot[]>('DeadPrimary-hang/history.json');

  it('returns the oldest round since which no replica received anything', () => {
    const since = findQuietSince(snapshot, history);
    expect(since).toBeDefined();
    expect(since!).toBeLessThanOrEqual(snapshot.takenAt);
    // Every round from `since` on shows the current received positions.
    for (const h of history.filter((x) => x.takenAt >= since!)) {
      for (const n of snapshot.nodes.filter((x) => x.nodeId !== snapshot.primaryId && x.reachable)) {
        const then = h.nodes.find((x) => x.nodeId === n.nodeId)?.replication;
        if (then?.ioState === 'Yes') {
          expect(then.gtidIoPos).toBe(n.replication?.gtidIoPos);
          expect(then.heartbeatsReceived).toBe(n.replication?.heartbeatsReceived);
        }
      }
    }
  });

  it('starts at the current round when a replica received something since the previous one', () => {
    const moved: ClusterSnapshot = {
      ...snapshot,
      nodes: snapshot.nodes.map((n) =>
        n.replication
          ? {
              ...n,
              replication: {
                ...n.replication,
                heartbeatsReceived: (n.replication.heartbeatsReceived ?? 0) + 7,
              },
            }
          : n,
      ),
    };
    expect(findQuietSince(moved, history)).toBe(moved.takenAt);
  });

  it('says nothing when no replica is reachable', () => {
    const cut: ClusterSnapshot = {
      ...snapshot,
      nodes: snapshot.nodes.map((n) => ({ ...n, reachable: false })),
    };
    expect(findQuietSince(cut, history)).toBeUndefined();
  });
});
