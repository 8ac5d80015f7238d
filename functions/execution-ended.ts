import { executionEnded } from '../lib/failover/execution-ended.ts';
import { defineTask } from './define-task.ts';

/**
 * Target of the ExecutionEnded EventBridge rule (serverless.yml): a failover or switchover
 * execution ended FAILED, TIMED_OUT or ABORTED; runs the cleanup its Catch would have run.
 */
export const { plain, handler } = defineTask('ExecutionEnded', executionEnded);
