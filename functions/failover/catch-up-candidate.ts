import { catchUpCandidate } from '../../lib/failover/steps.ts';
import { defineTask } from '../define-task.ts';

/** The `CatchUpCandidate` state of the failover state machine. */
export const { plain, handler } = defineTask('CatchUpCandidate', catchUpCandidate);
