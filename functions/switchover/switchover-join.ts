import { joinSwitchover } from '../../lib/operator/switchover-steps.ts';
import { defineTask } from '../define-task.ts';

/** The `SwitchoverJoin` state of the switchover state machine. */
export const { plain, handler } = defineTask('SwitchoverJoin', joinSwitchover);
