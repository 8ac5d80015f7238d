import { preCheckSwitchover } from '../../lib/operator/switchover-steps.ts';
import { defineTask } from '../define-task.ts';

/** The `SwitchoverPreCheck` state of the switchover state machine. */
export const { plain, handler } = defineTask('SwitchoverPreCheck', preCheckSwitchover);
