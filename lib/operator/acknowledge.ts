import type { Runtime } from '../runtime.ts';
import { EVENT_TTL_SECONDS, OperatorRefusedError } from './common.ts';

export interface AcknowledgeResult {
  report: string;
  cluster: string;
  /** Whether a block was active and is now cleared. */
  cleared: boolean;
  /** The block's end before the acknowledgement (ISO time), if one was set. */
  blockedUntil?: string;
}

/**
 * Clears the anti-flap block of `cluster` after an operator has looked at it, so the next
 * confirmed failure fails over automatically again. Records an event and a notification.
 * Refuses while a failover or switchover runs (its end sets the block again anyway).
 */
export async function acknowledgeBlock(rt: Runtime, clusterName: string): Promise<AcknowledgeResult> {
  const c = rt.cluster(clusterName);
  const state = await rt.store.getClusterState(c.name);
  if (!state) {
    throw new OperatorRefusedError(
      `Cluster ${c.name} has no state yet (the health check has not run): there is no block to acknowledge.`,
      { cluster: c.name },
    );
  }
  if (state.failoverInProgress) {
    throw new OperatorRefusedError(
      `Cluster ${c.name}: ${state.failoverInProgress.executionName} is in progress; acknowledge after it ended.`,
      { cluster: c.name },
    );
  }
  const now = rt.now();
  const active = state.blockedUntil !== undefined && state.blockedUntil > now;
  const until = state.blockedUntil ? new Date(state.blockedUntil).toISOString() : undefined;
  if (!active) {
    return {
      report: `cluster ${c.name}: automatic failover is not blocked${until ? ` (the last block ended ${until})` : ''}; nothing to acknowledge.`,
      cluster: c.name,
      cleared: false,
      ...(until ? { blockedUntil: until } : {}),
    };
  }
  await rt.store.setBlockedUntil(c.name, null);
  const message = `Anti-flap block acknowledged by an operator: automatic failover is armed again (it was blocked until ${until}).`;
  await rt.store.putEvent(
    {
      cluster: c.name,
      at: now,
      type: 'BlockAcknowledged',
      message,
      data: { blockedUntil: state.blockedUntil, lastFailover: state.lastFailover },
    },
    EVENT_TTL_SECONDS,
  );
  await rt.notifier.notify({
    cluster: c.name,
    severity: 'info',
    subject: 'Failover block acknowledged',
    message,
  });
  const rejoin = state.needsRejoin?.length
    ? `\nstill needs rejoin: ${state.needsRejoin.join(', ')} (serverless invoke -f rejoin --data '{"cluster":"${c.name}","node":"${state.needsRejoin[0]}"}')`
    : '';
  return {
    report: `cluster ${c.name}: block cleared (was until ${until}); automatic failover is armed again.${rejoin}`,
    cluster: c.name,
    cleared: true,
    ...(until ? { blockedUntil: until } : {}),
  };
}
