/**
 * What the fencing timelines (T1 hang-return, T2 crash-restart, T7 alive-during-catchup) check
 * after a failover, against the real servers: acknowledged writes on the old primary after the
 * candidate could take writes (through the VIP and directly), acknowledged writes missing on the
 * new primary, the old primary's end state, and the prober's heartbeat on the old primary.
 */
import { startWriter, type Writer } from '../../infra/workload/writer.ts';
import type { FailoverRecord } from '../../lib/ports.ts';
import type { LiveEnv } from '../health/live-env.ts';

/** The table the direct writer (a client connected to the old primary, not the VIP) uses. */
export const DIRECT_TABLE_DDL =
  'CREATE TABLE IF NOT EXISTS app.direct (id BIGINT PRIMARY KEY, at BIGINT NOT NULL, payload VARCHAR(64) NOT NULL) ENGINE=InnoDB';

/**
 * A writer through the VIP (app.writes) and one connected straight to `nodeId` (app.direct).
 * Like most applications they wait for a commit as long as it takes (30 s here): a client that
 * gave up after 3 s would never see the acknowledgement a semi-sync fallback sends after 10 s.
 */
export function startWriters(env: LiveEnv, nodeId: string): { vip: Writer; direct: Writer } {
  const app = env.cluster.credentials.app;
  const n = env.cluster.node(nodeId);
  const common = { ...app, paceMs: 5, queryTimeoutMs: 30_000 };
  return {
    vip: startWriter({ host: env.cloud.vip.host, port: env.cloud.vip.port, ...common }),
    direct: startWriter({ host: n.host, port: n.port, ...common, table: 'app.direct' }),
  };
}

/** When the candidate could first take writes: the start of PromoteCandidate (conservative). */
export function promotionStartedAt(record: FailoverRecord | undefined): number {
  const p = record?.steps.find((s) => s.name === 'PromoteCandidate');
  if (!p) throw new Error(`no PromoteCandidate step in the failover record: ${JSON.stringify(record)}`);
  return p.startedAt;
}

/** The heartbeat row on `nodeId` (its own copy): when it was last written there, and by whom. */
export async function heartbeatOn(
  env: LiveEnv,
  nodeId: string,
): Promise<{ atMs: number; serverId: number } | undefined> {
  const [r] = await env.cluster.query<{ t: string; s: number }>(
    nodeId,
    'SELECT UNIX_TIMESTAMP(ts) * 1000 AS t, server_id AS s FROM failover_meta.heartbeat WHERE id = 1',
  );
  return r ? { atMs: Number(r.t), serverId: Number(r.s) } : undefined;
}

export async function readOnly(env: LiveEnv, nodeId: string): Promise<number> {
  const [r] = await env.cluster.query<{ ro: number }>(nodeId, 'SELECT @@read_only AS ro');
  return Number(r?.ro);
}

/** Compact per-ack summary for failure messages. */
export function describeAcks(acks: ReadonlyArray<{ id: number; at: number }>, since: number): string {
  return acks
    .slice(0, 5)
    .map((a) => `#${a.id} +${a.at - since} ms`)
    .join(', ');
}
