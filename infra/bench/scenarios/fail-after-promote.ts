import type { DynamoRequestMatcher } from '../../local-cloud/dynamo-fault-proxy.ts';
import { type BenchScenario, sleep, type Trial, withTrialEnv } from '../trial-env.ts';
import { startTimeline, timelineTrial } from './timeline.ts';

/**
 * CompleteFailover's end of the failover (lib/adapters/dynamodb-state-store.ts endFailover with
 * status 'succeeded'): only the step after the promotion writes it. FailoverFailed's roll forward
 * ends the failover with status 'failed' and is let through.
 */
const completeFailoverWrite: DynamoRequestMatcher = (operation, body) => {
  if (operation !== 'UpdateItem' || !String(body.UpdateExpression).includes('REMOVE failoverInProgress'))
    return false;
  const values = body.ExpressionAttributeValues as Record<string, { M?: Record<string, { S?: string }> }>;
  return values?.[':last']?.M?.status?.S === 'succeeded';
};

/**
 * T3 (issue 11): kill -9 of the primary; the state table answers every write of CompleteFailover,
 * the step after PromoteCandidate, RepointReplicas and MoveVip, with a DynamoDB 500 (retried by the
 * SDK and by the state machine, then caught), so the failover fails terminally AFTER the
 * candidate became writable. Must hold: the state table names the promoted candidate as the
 * primary (rolled forward by FailoverFailed), the old one needs rejoin, the failover is not left
 * in progress, nothing acknowledged is lost.
 *
 * The trial is invalid (it cannot pass vacuously) unless the fault really hit after the
 * promotion: at least one CompleteFailover write refused (`faultsInjected`), the first refusal
 * after the candidate was first seen writable (`faultAfterPromotionMs` > 0), PromoteCandidate
 * exited and CompleteFailover caught in the execution's path.
 */
export const failAfterPromote: BenchScenario = {
  name: 'fail-after-promote',
  description:
    'kill -9 of the primary, then every CompleteFailover state write refused (HTTP 500) after the promotion',
  expectFailover: true,
  defaultTrials: 5,
  expect: () => ({
    failovers: 1,
    zero: ['oldPrimaryAcksAfterPromotion', 'ackedLost', 'stuckInProgress'],
    true: [
      'stateNamesWritable',
      'faultAfterPromotion',
      'statePrimaryIsPromoted',
      'oldPrimaryNeedsRejoin',
      'failedAfterPromote',
    ],
  }),
  run: () =>
    withTrialEnv({}, async (env): Promise<Trial> => {
      const { cluster, cloud } = env;
      let firstFaultAt: number | undefined;
      let faults = 0;
      // Every matching request until the trial ends: each of CompleteFailover's attempts, with
      // each of the SDK's own retries, is refused.
      cloud.dynamoFaults.failAll((op, body) => {
        if (!completeFailoverWrite(op, body)) return false;
        firstFaultAt ??= Date.now();
        faults++;
        return true;
      }, 'server-error');
      env.defer(() => cloud.dynamoFaults.clear());
      const tl = startTimeline(env);
      await sleep(2000 + Math.random() * 1000);
      const faultAt = tl.markFault();
      await cluster.crash('db1');
      await tl.waitSettled(120_000);
      await sleep(3000);
      cloud.dynamoFaults.clear();
      const f = await tl.figures();
      const promoted = tl.promoted();
      const execution = tl.failoverExecutions()[0];
      const path = execution?.states.map((s) => `${s.name}:${s.outcome}`) ?? [];
      const faultAfterPromotionMs =
        firstFaultAt !== undefined && promoted ? firstFaultAt - promoted.at : null;
      const faultAfterPromotion =
        faultAfterPromotionMs !== null &&
        faultAfterPromotionMs > 0 &&
        path.includes('PromoteCandidate:exited');
      return timelineTrial(f, {
        faultsInjected: faults,
        firstFaultAtMs: firstFaultAt === undefined ? null : firstFaultAt - faultAt,
        promotedAtMs: promoted ? promoted.at - faultAt : null,
        faultAfterPromotionMs,
        faultAfterPromotion,
        executionPath: path,
        // Failed (not succeeded), and by this fault: CompleteFailover caught, not an earlier step.
        failedAfterPromote: execution?.status === 'FAILED' && path.includes('CompleteFailover:caught'),
        statePrimaryIsPromoted: f.newPrimary !== null && f.statePrimary === f.newPrimary,
        oldPrimaryNeedsRejoin: f.needsRejoin.includes('db1'),
        ...(faultAfterPromotion
          ? {}
          : {
              invalid:
                'the fault did not land after the promotion (no CompleteFailover write refused after it)',
            }),
      });
    }),
};
