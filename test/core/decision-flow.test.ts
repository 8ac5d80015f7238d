import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ClusterSnapshot, SuspicionState } from '../../lib/core/index.ts';
import { analyzeTopology, confirmFailure, electCandidate, replicasAheadOf } from '../../lib/core/index.ts';

const load = (name: string, file: string): unknown =>
  JSON.parse(readFileSync(new URL(`./scenarios/${name}/${file}`, import.meta.url), 'utf8'));
const at = (s: ClusterSnapshot, takenAt: number): ClusterSnapshot => ({ ...s, takenAt });
const CONFIRM = { confirmWindowMs: 2000, crashConfirmRounds: 2 };

describe('decision core end to end', () => {
  it('confirms the crash scenario on the quick re-probe and elects the replica that received most', () => {
    const crash = load('DeadPrimary', 'snapshot.json') as ClusterSnapshot;
    const history = load('DeadPrimary', 'history.json') as ClusterSnapshot[];
    let state: SuspicionState | undefined;
    const kinds: string[] = [];
    for (const t of [crash.takenAt, crash.takenAt + 150]) {
      const analysis = analyzeTopology(at(crash, t), history);
      const r = confirmFailure(state, analysis, t, CONFIRM);
      state = r.state;
      kinds.push(r.decision.kind);
    }
    expect(kinds).toEqual(['suspect', 'confirmed']);

    const election = electCandidate(crash, {
      mode: 'auto',
      order: ['n1', 'n2', 'n3'],
      rules: {},
      maxLagSeconds: 60,
    });
    expect(election).toMatchObject({ kind: 'candidate', nodeId: 'n2', receivedGtid: '0-1-4530' });
    expect(replicasAheadOf(crash, 'n3').map((r) => r.nodeId)).toEqual(['n2']);
  });

  it('keeps the hang scenario a suspicion for 1.9 s of identical rounds', () => {
    const hang = load('DeadPrimary-hang', 'snapshot.json') as ClusterSnapshot;
    const history = load('DeadPrimary-hang', 'history.json') as ClusterSnapshot[];
    let state: SuspicionState | undefined;
    const kinds: string[] = [];
    for (let t = hang.takenAt; t < hang.takenAt + 1900; t += 500) {
      const r = confirmFailure(state, analyzeTopology(at(hang, t), history), t, CONFIRM);
      state = r.state;
      kinds.push(r.decision.kind);
    }
    expect(kinds).toEqual(['suspect', 'suspect', 'suspect', 'suspect']);
    const end = hang.takenAt + 2000;
    expect(confirmFailure(state, analyzeTopology(at(hang, end), history), end, CONFIRM).decision.kind).toBe(
      'confirmed',
    );
  });
});
