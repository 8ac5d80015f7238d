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

  it('never fences while a failover is in progress, when roles are in flux', () => {
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
