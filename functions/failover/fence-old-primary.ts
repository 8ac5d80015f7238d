import { fenceOldPrimary } from '../../lib/failover/steps.ts';
import { defineTask } from '../define-task.ts';

/** The `FenceOldPrimary` state of the failover state machine. */
export const { plain, handler } = defineTask('FenceOldPrimary', fenceOldPrimary);
