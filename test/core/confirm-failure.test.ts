import { describe, expect, it } from 'vitest';
import { buildIncidentId, confirmFailure, shouldReprobeQuickly } from '../../lib/core/confirm-failure.ts';
import type { ConfirmDecision, ConfirmOptions, SuspicionState } from '../../lib/core/decision-types.ts';
import type { Analysis, Evidence } from '../../lib/core/types.ts';

const T0 = 1_763_769_600_000;
const OPTS: ConfirmOptions = { confirmWindowMs: 2000, crashConfirmRounds: 2 };

function dead(evidence: Evidence, cluster = 'lab', primaryId = 'n1'): Analysis {
  return {
    cluster,
    takenAt: 0,
    code: 'DeadPrimary',
    description: 'Primary n1 is unreachable and no reachable replica receives from it',
    actionable: true,
    evidence,
    findings: [{ code: 'DeadPrimary', description: 'dead', nodeId: primaryId }],
    primaryId,
  };
}

const healthy: Analysis = {
  cluster: 'lab',
  takenAt: 0,
  code: 'UnreachablePrimary',
  description: 'replicas still receive',
  actionable: false,
  findings: [{ code: 'UnreachablePrimary', description: 'replicas still receive', nodeId: 'n1' }],
  primaryId: 'n1',
};

/** Runs rounds [time, analysis] in order and returns every decision. */
function run(rounds: [number, Analysis][], opts: ConfirmOptions = OPTS): ConfirmDecision[] {
  let state: SuspicionState | undefined;
  const out: ConfirmDecision[] = [];
  for (const [now, analysis] of rounds) {
    const r = confirmFailure(state, analysis, now, opts);
    state = r.state;
    out.push(r.decision);
  }
  return out;
}

describe('confirmFailure', () => {
  it('confirms a crash after two unambiguous rounds 150 ms apart', () => {
    const [first, second] = run([
      [T0, dead('unambiguous')],
      [T0 + 150, dead('unambiguous')],
    ]);
    expect(first).toMatchObject({
      kind: 'suspect',
      rounds: 1,
      evidence: 'unambiguous',
      since: T0,
      remainingMs: 2000,
    });
    expect(shouldReprobeQuickly(first!)).toBe(true);
    expect(second).toMatchObject({ kind: 'confirmed', rounds: 2, evidence: 'unambiguous', since: T0 });
  });

  it('never confirms a hang shorter than the window', () => {
    const decisions = run([
      [T0, dead('ambiguous')],
      [T0 + 1000, dead('ambiguous')],
      [T0 + 1999, dead('ambiguous')],
      [T0 + 2500, healthy],
      [T0 + 3500, dead('ambiguous')],
      [T0 + 4500, dead('ambiguous')],
    ]);
    expect(decisions.map((d) => d.kind)).toEqual([
      'suspect',
      'suspect',
      'suspect',
      'healthy',
      'suspect',
      'suspect',
    ]);
    expect(decisions[2]).toMatchObject({ remainingMs: 1 });
    expect(shouldReprobeQuickly(decisions[0]!)).toBe(false);
  });

  it('confirms a hang that lasts the whole window', () => {
    const decisions = run([
      [T0, dead('ambiguous')],
      [T0 + 1000, dead('ambiguous')],
      [T0 + 2000, dead('ambiguous')],
    ]);
    expect(decisions[2]).toMatchObject({ kind: 'confirmed', rounds: 3, evidence: 'ambiguous', since: T0 });
  });

  it('resets on a blip: one non-actionable round starts the count over', () => {
    const decisions = run([
      [T0, dead('unambiguous')],
      [T0 + 150, healthy],
      [T0 + 300, dead('unambiguous')],
    ]);
    expect(decisions.map((d) => d.kind)).toEqual(['suspect', 'healthy', 'suspect']);
    expect(decisions[2]).toMatchObject({ since: T0 + 300, rounds: 1 });
  });

  it('falls back to the window, measured from the first round, when a crash turns ambiguous', () => {
    const decisions = run([
      [T0, dead('unambiguous')],
      [T0 + 150, dead('ambiguous')],
      [T0 + 1150, dead('ambiguous')],
      [T0 + 2000, dead('ambiguous')],
    ]);
    expect(decisions.map((d) => d.kind)).toEqual(['suspect', 'suspect', 'suspect', 'confirmed']);
    expect(decisions[1]).toMatchObject({ evidence: 'ambiguous', remainingMs: 1850 });
    expect(decisions[3]).toMatchObject({ since: T0, rounds: 4 });
  });

  it('needs consecutive unambiguous rounds: ambiguous in between breaks the streak', () => {
    const decisions = run(
      [
        [T0, dead('unambiguous')],
        [T0 + 150, dead('ambiguous')],
        [T0 + 300, dead('unambiguous')],
        [T0 + 450, dead('unambiguous')],
      ],
      { confirmWindowMs: 10_000, crashConfirmRounds: 2 },
    );
    expect(decisions.map((d) => d.kind)).toEqual(['suspect', 'suspect', 'suspect', 'confirmed']);
    expect(decisions[3]).toMatchObject({ since: T0, rounds: 4, evidence: 'unambiguous' });
  });

  it('keeps the same incident id while the confirmed state repeats', () => {
    const decisions = run([
      [T0, dead('unambiguous')],
      [T0 + 150, dead('unambiguous')],
      [T0 + 1150, dead('unambiguous')],
    ]);
    const ids = decisions.filter((d) => d.kind === 'confirmed').map((d) => d.incidentId);
    expect(ids).toHaveLength(2);
    expect(ids[0]).toBe(ids[1]);
    expect(ids[0]).toBe(buildIncidentId('lab', 'n1', T0));
  });

  it('starts a new suspicion when the primary or the cluster changes', () => {
    const decisions = run([
      [T0, dead('unambiguous', 'lab', 'n1')],
      [T0 + 150, dead('unambiguous', 'lab', 'n2')],
      [T0 + 300, dead('unambiguous', 'other', 'n2')],
    ]);
    expect(decisions.map((d) => d.kind)).toEqual(['suspect', 'suspect', 'suspect']);
    expect(decisions[2]).toMatchObject({ since: T0 + 300 });
  });

  it('drops a suspicion whose previous round is older than maxRoundGapMs', () => {
    const decisions = run(
      [
        [T0, dead('ambiguous')],
        [T0 + 60_000, dead('ambiguous')],
      ],
      { ...OPTS, maxRoundGapMs: 3000 },
    );
    expect(decisions[1]).toMatchObject({ kind: 'suspect', since: T0 + 60_000, rounds: 1 });
  });

  it('returns no state when healthy', () => {
    expect(confirmFailure(undefined, healthy, T0, OPTS)).toEqual({
      state: undefined,
      decision: { kind: 'healthy' },
    });
  });
});

describe('buildIncidentId', () => {
  it('is deterministic and differs by cluster, primary and time', () => {
    const id = buildIncidentId('lab', 'n1', T0);
    expect(buildIncidentId('lab', 'n1', T0)).toBe(id);
    expect(
      new Set([
        id,
        buildIncidentId('lab', 'n2', T0),
        buildIncidentId('lab2', 'n1', T0),
        buildIncidentId('lab', 'n1', T0 + 1),
      ]).size,
    ).toBe(4);
  });

  it('fits a Step Functions execution name even for long names with dots', () => {
    const a = buildIncidentId('c'.repeat(40), 'db-primary.eu-west-1.internal.example'.repeat(2), T0);
    const b = buildIncidentId(
      'c'.repeat(40),
      'db-primary.eu-west-1.internal.example'.repeat(2).replace('eu', 'us'),
      T0,
    );
    for (const id of [a, b]) {
      expect(id).toMatch(/^[A-Za-z0-9_-]{1,60}$/);
    }
    expect(a).not.toBe(b);
    expect(buildIncidentId('lab', 'n1', T0)).toMatch(/^lab-n1-[a-z0-9]+-[0-9a-f]{8}$/);
  });
});
