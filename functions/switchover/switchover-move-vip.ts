import { moveVipForSwitchover } from '../../lib/operator/switchover-steps.ts';
import { defineTask } from '../define-task.ts';

/** The `SwitchoverMoveVip` state of the switchover state machine. */
export const { plain, handler } = defineTask('SwitchoverMoveVip', moveVipForSwitchover);
