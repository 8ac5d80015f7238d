import { blockWrites } from '../../lib/operator/switchover-steps.ts';
import { defineTask } from '../define-task.ts';

/** The `BlockWrites` state of the switchover state machine. */
export const { plain, handler } = defineTask('BlockWrites', blockWrites);
