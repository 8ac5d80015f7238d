import type { StateStore } from '../../lib/ports.ts';

/** Creates the cluster's state item as the first health check would (epoch 0, `primaryId` primary). */
export function seedClusterState(store: StateStore, cluster: string, primaryId: string) {
  return store.initClusterState({
    cluster,
    primaryId,
    epoch: 0,
    analysis: 'NoProblem',
    description: 'set up by the test',
    topology: [],
    counters: { probes: 0, stateChanges: 0, failovers: 0, blockedFailovers: 0 },
    updatedAt: Date.now(),
  });
}
