import { beginFailover } from '../../lib/failover/steps.ts';
import { defineTask } from '../define-task.ts';

/** The `BeginFailover` state of the failover state machine. */
export const { plain, handler } = defineTask('BeginFailover', beginFailover);
