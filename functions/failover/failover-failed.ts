import { failoverFailed } from '../../lib/failover/steps.ts';
import { defineTask } from '../define-task.ts';

/** The `FailoverFailed` state of the failover state machine. */
export const { plain, handler } = defineTask('FailoverFailed', failoverFailed);
