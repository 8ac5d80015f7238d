import { completeSwitchover } from '../../lib/operator/switchover-steps.ts';
import { defineTask } from '../define-task.ts';

/** The `CompleteSwitchover` state of the switchover state machine. */
export const { plain, handler } = defineTask('CompleteSwitchover', completeSwitchover);
