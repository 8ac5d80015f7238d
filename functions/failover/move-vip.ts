import { moveVip } from '../../lib/failover/steps.ts';
import { defineTask } from '../define-task.ts';

/** The `MoveVip` state of the failover state machine. */
export const { plain, handler } = defineTask('MoveVip', moveVip);
