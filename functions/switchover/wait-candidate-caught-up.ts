import { waitCandidateCaughtUp } from '../../lib/operator/switchover-steps.ts';
import { defineTask } from '../define-task.ts';

/** The `WaitCandidateCaughtUp` state of the switchover state machine. */
export const { plain, handler } = defineTask('WaitCandidateCaughtUp', waitCandidateCaughtUp);
