import { plain as executionEnded } from './execution-ended.ts';
import { failoverTaskHandlers } from './failover/index.ts';
import { switchoverTaskHandlers } from './switchover/index.ts';

/**
 * Every Task state of every packaged state machine, by STATE NAME (names are unique across
 * machines). The local Step Functions endpoint maps the packaged definitions' Tasks to these.
 */
export const taskHandlers: Record<string, (input: never) => Promise<unknown>> = {
  ...failoverTaskHandlers,
  ...switchoverTaskHandlers,
};

/**
 * Functions that EventBridge rules invoke (not Task states), by the CloudFormation logical id of
 * the function: the local cloud delivers each matching event to these.
 */
export const ruleTargetHandlers: Record<string, (event: never) => Promise<unknown>> = {
  ExecutionEndedLambdaFunction: executionEnded,
};
