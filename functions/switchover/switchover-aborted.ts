import { switchoverAborted } from '../../lib/operator/switchover-steps.ts';
import { defineTask } from '../define-task.ts';

/** The `SwitchoverAborted` state of the switchover state machine. */
export const { plain, handler } = defineTask('SwitchoverAborted', switchoverAborted);
