import type { LocalCloudProvider } from '../../local-cloud/vip-provider.ts';
import { type BenchScenario, sleep, type Trial, waitUntil, withTrialEnv } from '../trial-env.ts';
import { startTimeline, timelineTrial } from './timeline.ts';

/** The provider call that moves the VIP onto the new primary, per provider. */
const MOVE_ACTION: Record<LocalCloudProvider, string> = {
  'aws-secondary-ip': 'AssignPrivateIpAddresses',
  'aws-route-table': 'ReplaceRoute',
  'aliyun-havip': 'AssociateHaVip',
};

/**
 * T3 (issue 11): kill -9 of the primary; while PromoteCandidate runs, the emulated provider starts
 * refusing the VIP move (a permanent 403, what a missing IAM/RAM permission answers), so a step
 * AFTER the promotion fails terminally. Must hold: the state table names the writable node (or
 * none is writable: a rolled-back promotion), the failover is not left in progress, nothing
 * acknowledged is lost. `vipRefusals` counts the refused calls: 0 means the step order changed and
 * the fault never hit after the promotion (the trial is then invalid).
 */
export const failAfterPromote: BenchScenario = {
  name: 'fail-after-promote',
  description: 'kill -9 of the primary, then the VIP move refused by the provider after PromoteCandidate',
  expectFailover: true,
  defaultTrials: 5,
  expect: () => ({
    failovers: 1,
    zero: ['oldPrimaryAcksAfterPromotion', 'ackedLost', 'stuckInProgress'],
    true: ['stateNamesWritable'],
  }),
  run: () =>
    withTrialEnv({}, async (env): Promise<Trial> => {
      const { cluster, cloud } = env;
      if (cloud.provider !== 'aws-secondary-ip')
        throw new Error(
          `fail-after-promote puts the VIP back on the old primary through the EC2 model: run it with --provider aws-secondary-ip (got ${cloud.provider})`,
        );
      const action = MOVE_ACTION[cloud.provider];
      const tl = startTimeline(env);
      await sleep(2000 + Math.random() * 1000);
      const faultAt = tl.markFault();
      await cluster.crash('db1');
      // The execution's own record of its states: the fault lands once PromoteCandidate exited.
      const inPromote = await waitUntil(
        () =>
          tl
            .failoverExecutions()
            .some((e) => e.states.some((s) => s.name === 'PromoteCandidate' && s.outcome === 'exited')),
        60_000,
        5,
      );
      const injectedAt = Date.now();
      // FenceOldPrimary already took the VIP off the crashed primary (before the promotion), so
      // MoveVip would be a verified no-op: put the VIP back on db1, as a stale script or an
      // operator could, so that MoveVip really has to move it after the promotion, and fails.
      if (cloud.provider === 'aws-secondary-ip') {
        const eni = cloud.eniOf.db1;
        if (eni) cloud.ec2.model.assign(eni, cloud.vipAddress);
      }
      const before = cloud.faults.calls(action);
      cloud.faults.set(action, {
        permanentError: {
          code: 'UnauthorizedOperation',
          message: 'You are not authorized to perform this operation.',
          status: 403,
        },
      });
      await tl.waitSettled(90_000);
      const vipRefusals = cloud.faults.calls(action) - before;
      await sleep(3000);
      const f = await tl.figures();
      const promotedAt = tl.promoted()?.at;
      return timelineTrial(f, {
        vipAction: action,
        vipRefusals,
        injectedAtMs: injectedAt - faultAt,
        promotedAtMs: promotedAt === undefined ? null : promotedAt - faultAt,
        ...(inPromote ? {} : { invalid: 'PromoteCandidate never started' }),
        ...(inPromote && vipRefusals === 0
          ? { invalid: `no ${action} call after PromoteCandidate started: the VIP fault never hit` }
          : {}),
      });
    }),
};
