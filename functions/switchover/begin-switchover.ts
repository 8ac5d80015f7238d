import { beginSwitchover } from '../../lib/operator/switchover-steps.ts';
import { defineTask } from '../define-task.ts';

/** The `BeginSwitchover` state of the switchover state machine. */
export const { plain, handler } = defineTask('BeginSwitchover', beginSwitchover);
