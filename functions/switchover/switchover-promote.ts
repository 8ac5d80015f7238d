import { promoteSwitchoverCandidate } from '../../lib/operator/switchover-steps.ts';
import { defineTask } from '../define-task.ts';

/** The `SwitchoverPromote` state of the switchover state machine. */
export const { plain, handler } = defineTask('SwitchoverPromote', promoteSwitchoverCandidate);
