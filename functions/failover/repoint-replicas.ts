import { repointReplicas } from '../../lib/failover/steps.ts';
import { defineTask } from '../define-task.ts';

/** The `RepointReplicas` state of the failover state machine. */
export const { plain, handler } = defineTask('RepointReplicas', repointReplicas);
