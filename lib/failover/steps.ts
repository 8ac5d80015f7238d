/**
 * The failover steps, one module per responsibility:
 * - context.ts: what flows between states (request, context) and node/timeouts helpers;
 * - step-runner.ts: the epoch-checked, audited `step()` every task runs through, hooks, events;
 * - begin-failover.ts: BeginFailover (the epoch claim);
 * - elect-candidate.ts: ElectCandidate;
 * - catch-up-candidate.ts: CatchUpCandidate;
 * - fence-old-primary.ts: FenceOldPrimary;
 * - promote-steps.ts: PromoteCandidate, RepointReplicas, MoveVip;
 * - finish-steps.ts: CompleteFailover, FailoverFailed.
 */
export * from './begin-failover.ts';
export * from './catch-up-candidate.ts';
export * from './context.ts';
export * from './elect-candidate.ts';
export * from './fence-old-primary.ts';
export * from './finish-steps.ts';
export * from './promote-steps.ts';
export * from './step-runner.ts';
