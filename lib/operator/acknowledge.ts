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
  // Conditional on what was read: a failover that ended since (new epoch, its own block) keeps
  // its block; the operator has not seen that one yet.
  const cleared = await rt.store.clearBlock(c.name, {
    epoch: state.epoch,
    blockedUntil: state.blockedUntil!,
  });
  if (!cleared) {
    const now2 = await rt.store.getClusterState(c.name);
    const what = now2?.failoverInProgress
      ? `${now2.failoverInProgress.executionName} started`
      : now2 && now2.epoch !== state.epoch
        ? `failover epoch ${now2.epoch} ended${now2.blockedUntil ? ` and blocks until ${new Date(now2.blockedUntil).toISOString()}` : ''}`
        : 'the block was changed';
    throw new OperatorRefusedError(
      `Cluster ${c.name}: ${what} while acknowledging (read at epoch ${state.epoch}, block until ${until}); nothing was cleared. Look at the cluster (serverless invoke -f status) and acknowledge again.`,
      { cluster: c.name, readEpoch: state.epoch, epoch: now2?.epoch },
    );
  }
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
