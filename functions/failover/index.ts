import { plain as beginFailover } from './begin-failover.ts';
import { plain as catchUpCandidate } from './catch-up-candidate.ts';
import { plain as completeFailover } from './complete-failover.ts';
import { plain as electCandidate } from './elect-candidate.ts';
import { plain as failoverFailed } from './failover-failed.ts';
import { plain as fenceOldPrimary } from './fence-old-primary.ts';
import { plain as moveVip } from './move-vip.ts';
import { plain as promoteCandidate } from './promote-candidate.ts';
import { plain as repointReplicas } from './repoint-replicas.ts';

/** Task state name -> plain handler; the local Step Functions endpoint runs the packaged definition with these. */
export const failoverTaskHandlers: Record<string, (input: never) => Promise<unknown>> = {
  BeginFailover: beginFailover,
  ElectCandidate: electCandidate,
  CatchUpCandidate: catchUpCandidate,
  FenceOldPrimary: fenceOldPrimary,
  PromoteCandidate: promoteCandidate,
  RepointReplicas: repointReplicas,
  MoveVip: moveVip,
  CompleteFailover: completeFailover,
  FailoverFailed: failoverFailed,
};
