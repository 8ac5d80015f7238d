import { promoteCandidate } from '../../lib/failover/steps.ts';
import { defineTask } from '../define-task.ts';

/** The `PromoteCandidate` state of the failover state machine. */
export const { plain, handler } = defineTask('PromoteCandidate', promoteCandidate);
