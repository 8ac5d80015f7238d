import { describe, expect, it } from 'vitest';
import { planFencing } from '../../lib/core/plan-fencing.ts';
import type { ClusterSnapshot, NodeProbe } from '../../lib/core/types.ts';

function probe(nodeId: string, over: Partial<NodeProbe> = {}): NodeProbe {
  return { nodeId, reachable: true, probeMs: 1, readOnly: true, ...over };
}

const snapshot = (nodes: NodeProbe[]): ClusterSnapshot => ({
  cluster: 'c',
  takenAt: 0,
  primaryId: 'db2',
  nodes,
});
const view = { primaryId: 'db2', needsRejoin: ['db1'], failoverInProgress: false };

describe('planFencing', () => {
  it('fences an old primary that came back writable', () => {
    const plan = planFencing(
      snapshot([probe('db1', { readOnly: false }), probe('db2', { readOnly: false })]),
      view,
    );
    expect(plan.actions.map((a) => a.nodeId)).toEqual(['db1']);
    expect(plan.findings.map((f) => f.code)).toEqual(['OldPrimaryWritable']);
  });

  it('only reports an old primary that came back read-only', () => {
    const plan = planFencing(snapshot([probe('db1'), probe('db2', { readOnly: false })]), view);
    expect(plan.actions).toEqual([]);
    expect(plan.findings.map((f) => f.code)).toEqual(['OldPrimaryNeedsRejoin']);
  });

  it('fences the old primary of a running failover that answers writable, never its candidate', () => {
    // db2 is the recorded primary being replaced; db3, the candidate, is writable once promoted.
    const plan = planFencing(
      snapshot([
        probe('db2', { readOnly: false }),
        probe('db3', { readOnly: false }),
        probe('db1', { readOnly: false }),
      ]),
      { ...view, failoverInProgress: true, failingPrimary: 'db2' },
    );
    expect(plan.actions.map((a) => a.nodeId).sort()).toEqual(['db1', 'db2']);
    expect(plan.findings.find((f) => f.nodeId === 'db2')?.description).toContain(
      'while a failover replaces it',
    );
  });

  it('never fences during a switchover (it fences its old primary itself, and gives the writes back on abort)', () => {
    const plan = planFencing(snapshot([probe('db1', { readOnly: false })]), {
      ...view,
      failoverInProgress: true,
    });
    expect(plan).toEqual({ actions: [], findings: [] });
  });

  it('never fences the recorded primary or a node that does not need rejoin', () => {
    const plan = planFencing(
      snapshot([probe('db2', { readOnly: false }), probe('db3', { readOnly: false })]),
      { ...view, needsRejoin: ['db2'] },
    );
    expect(plan.actions).toEqual([]);
  });

  it('ignores an unreachable old primary', () => {
    const plan = planFencing(snapshot([probe('db1', { reachable: false })]), view);
    expect(plan).toEqual({ actions: [], findings: [] });
  });
});
