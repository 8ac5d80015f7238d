import { completeFailover } from '../../lib/failover/steps.ts';
import { defineTask } from '../define-task.ts';

/** The `CompleteFailover` state of the failover state machine. */
export const { plain, handler } = defineTask('CompleteFailover', completeFailover);
