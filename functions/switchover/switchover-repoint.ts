import { repointForSwitchover } from '../../lib/operator/switchover-steps.ts';
import { defineTask } from '../define-task.ts';

/** The `SwitchoverRepoint` state of the switchover state machine. */
export const { plain, handler } = defineTask('SwitchoverRepoint', repointForSwitchover);
