import type { LocalCloud } from '../../infra/local-cloud/local-cloud.ts';

/**
 * Runs `act` as soon as a function's structured log shows step `step` completed (result ok), for a
 * fault that must land after that step and before the next one: `logs` is what the local cloud's
 * `onLog` collects, from the packaged functions' own processes as from in-process calls. Resolves
 * once `act` ran; rejects after `timeoutMs` when the step never completed.
 */
export async function afterStep(
  logs: ReadonlyArray<Record<string, unknown>>,
  step: string,
  act: () => void,
  timeoutMs = 60_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!logs.some((e) => e.type === 'failover-step' && e.name === step && e.result === 'ok')) {
    if (Date.now() > until)
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${step} to complete`);
    await new Promise((r) => setTimeout(r, 5));
  }
  act();
}

/**
 * Puts the EC2 VIP (aws-secondary-ip) back on `nodeId`'s ENI, as an operator or a stale script
 * would, so that a later MoveVip really has to call AssignPrivateIpAddresses: FenceOldPrimary
 * already moved it off an old primary that did not take the SQL fence.
 */
export function putVipBackOn(cloud: LocalCloud, nodeId: string): void {
  const eni = cloud.eniOf[nodeId];
  if (!eni) throw new Error(`no ENI for ${nodeId}`);
  // Visible at once (an operator's move that already propagated): through the API it would take
  // the emulated propagation delay, and a MoveVip reading within it would still see the candidate
  // holding the address and rightly have nothing to move.
  const model = cloud.ec2.model;
  const propagationMs = model.propagationMs;
  model.propagationMs = 0;
  try {
    model.assign(eni, cloud.vipAddress);
  } finally {
    model.propagationMs = propagationMs;
  }
}
