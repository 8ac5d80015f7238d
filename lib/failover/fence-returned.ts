import { onInst } from '../adapters/mysql/admin.ts';
import type { Login } from '../adapters/mysql/connection.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { type FencingPlan, planFencing } from '../core/plan-fencing.ts';
import type { ClusterSnapshot } from '../core/types.ts';
import { describeError } from '../errors.ts';
import type { ClusterState } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import { instClock } from './context.ts';

const EVENT_TTL_SECONDS = 14 * 24 * 3600;

export interface FenceReturnedResult {
  plan: FencingPlan;
  fenced: Array<{ nodeId: string; killedSessions: number }>;
  failed: Array<{ nodeId: string; error: string }>;
}

/**
 * The health check's hook for returning old primaries: given a probe round and the state it
 * believes, fences (read_only=ON, client sessions killed: the named operation `fencePrimary`) every
 * needs-rejoin node, and a running failover's old primary, that answers writable, records an `OldPrimaryFenced` event and alerts. Idempotent: a fenced node is
 * read-only in the next round and gets no action. Cheap when nothing is wrong: it acts only
 * after re-reading the state table (consistent read), so a failover that started since the
 * caller read its state is never disturbed.
 *
 * @param state the caller's (possibly cached) view; re-read before any action.
 */
export async function fenceReturnedPrimaries(
  rt: Runtime,
  c: ClusterConfig,
  snapshot: ClusterSnapshot,
  state: Pick<ClusterState, 'primaryId' | 'needsRejoin' | 'failoverInProgress'>,
  admin?: Login,
): Promise<FenceReturnedResult> {
  const view = (s: typeof state) => ({
    primaryId: s.primaryId,
    needsRejoin: s.needsRejoin ?? [],
    failoverInProgress: s.failoverInProgress !== undefined,
    // Execution names are `<cluster>-failover-e<epoch>` and `<cluster>-switchover-e<epoch>`.
    failingPrimary:
      s.failoverInProgress && /-failover-e\d+$/.test(s.failoverInProgress.executionName)
        ? s.failoverInProgress.failedPrimary
        : undefined,
  });
  let plan = planFencing(snapshot, view(state));
  const result: FenceReturnedResult = { plan, fenced: [], failed: [] };
  if (plan.actions.length === 0) return result;
  const fresh = await rt.store.getClusterState(c.name);
  if (!fresh) return result;
  plan = planFencing(snapshot, view(fresh));
  result.plan = plan;
  const login = admin ?? (await rt.logins(c)).admin;
  const t = { connectTimeoutMs: c.detection.connectTimeoutMs, queryTimeoutMs: c.detection.queryTimeoutMs };
  for (const a of plan.actions) {
    const n = c.nodes.find((x) => x.id === a.nodeId);
    if (!n) continue;
    try {
      const r = await onInst(
        n.id,
        { host: n.probeHost ?? n.host, port: n.probePort ?? n.port },
        login,
        t,
        'FenceReturnedPrimary',
        (inst) => inst.fencePrimary({ graceMs: 0, budgetMs: 2000 }),
        instClock(rt),
      );
      result.fenced.push({ nodeId: n.id, killedSessions: r.killed });
      const message = `${a.reason}: read_only=ON, ${r.killed} client session(s) killed.`;
      await rt.store.putEvent(
        { cluster: c.name, at: rt.now(), type: 'OldPrimaryFenced', message, data: { nodeId: n.id } },
        EVENT_TTL_SECONDS,
      );
      await rt.notifier.notify({
        cluster: c.name,
        severity: 'critical',
        subject: `Old primary ${n.id} fenced`,
        message,
      });
    } catch (err) {
      const error = describeError(err, [login.password]).message;
      result.failed.push({ nodeId: n.id, error });
      rt.log({ level: 'error', type: 'fence-returned-failed', cluster: c.name, nodeId: n.id, error });
    }
  }
  return result;
}
