/**
 * What every adversarial-timeline scenario measures (issue 11), in one place:
 *
 *   fault ──> decision ──> PromoteCandidate ──> ... ──> execution ends ──> +5 s: state read
 *     │                        │
 *     │                        └─ promotedAt: a survivor first seen writable (read_only=0 polled
 *     │                           every 20 ms over its socket; the LAST poll that still saw it
 *     │                           read-only is taken, so an acknowledgement in between counts)
 *     └─ faultAt: time zero of every figure
 *
 * Writers: through the VIP (as the application should) and straight to every node (as clients
 * with a cached address, a connection pool or a misconfigured DSN do), each in its own id range of
 * app.writes. From their acknowledgements:
 *   - oldPrimaryAcksAfterPromotion: acknowledged on the old primary after promotedAt (split brain
 *     as a client sees it), direct and through the VIP;
 *   - ackedLost: any acknowledged id the node that ends as primary does not hold;
 *   - writableMs: fault to the first write acknowledged DIRECTLY on the new primary (VIP aside);
 *   - rtoMs: fault to the first write acknowledged through the VIP on the new primary.
 * From the local cloud: failovers (executions that promoted), failoverAttempts (executions
 * started), stuckInProgress (failoverInProgress still set 5 s after the last execution ended).
 */
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import mysql from 'mysql2/promise';
import type { ExecutionRecord } from '../../local-cloud/sfn-endpoint.ts';
import { type Ack, missingAcked, startDirectWriter, type Writer } from '../../workload/writer.ts';
import { sleep, type Trial, type TrialEnv, waitUntil } from '../trial-env.ts';

/** How long after the last execution ended the state must have let go of the failover. */
export const STUCK_AFTER_MS = 5000;
const POLL_MS = 20;
/** Clients of the old primary that connect to it directly, in the scenarios where it comes back. */
export const OLD_PRIMARY_CLIENTS = 3;
const ID_RANGE = 1_000_000_000;

export interface TimelineOptions {
  /** The primary the fault hits (default db1). */
  oldPrimary?: string;
  /** Writers through the VIP (default 1; 0 = no application writes through it). */
  vipWriters?: number;
  /** Pause between a VIP writer's inserts (default 2 ms; 0 = back to back). */
  vipPaceMs?: number;
  /** Writers connected straight to the old primary (default 1; 0 = none). */
  directToOld?: number;
  /** A writer straight to every other node: measures writableMs (default true). */
  directToOthers?: boolean;
  /** Pause between a direct writer's attempts (default 5 ms). */
  directPaceMs?: number;
}

export interface TimelineFigures {
  detectMs: number | null;
  /** Decision to PromoteCandidate done, and the provider move (from the functions' step log). */
  promoteMs: number | null;
  vipMs: number | null;
  writableMs: number | null;
  rtoMs: number | null;
  ackedWrites: number;
  ackedLost: number | null;
  /** Each lost acknowledgement: writer, server, and its time after the fault and the promotion. */
  lostAcks: string[];
  oldPrimaryAcksAfterPromotion: number;
  oldPrimaryAcksAfterPromotionDirect: number;
  oldPrimaryAcksAfterPromotionViaVip: number;
  failovers: number;
  failoverAttempts: number;
  executionStatuses: string[];
  /** Why failed executions failed (the Step Functions cause, shortened). */
  executionCauses: string[];
  /** Failover steps that raised, with the error (from the functions' step log). */
  failedSteps: string[];
  stuckInProgress: number;
  newPrimary: string | null;
  /** read_only=0 on these running nodes at the end. */
  writableAtEnd: string[];
  statePrimary: string | null;
  /** The state's needs-rejoin list at the end. */
  needsRejoin: string[];
  /** The state names the one writable node (or none is writable). */
  stateNamesWritable: boolean;
  vipHolderAtEnd: string | null;
  /** Transactions of the old primary's own server_id beyond what the new primary received from it. */
  oldPrimaryErrant: number | null;
  /**
   * 1 when the old primary's heartbeat row was last written by itself after the promotion: our
   * own prober committed there (its NOW(6) is taken when the statement runs, after a freeze too).
   */
  proberWritesOnOldPrimaryAfterPromotion: number | null;
}

export interface Timeline {
  /** Marks the fault: time zero of every figure. */
  markFault(): number;
  readonly faultAt: number;
  /** Executions of the failover state machine (not the switchover one). */
  failoverExecutions(): ExecutionRecord[];
  /** A survivor seen writable since the fault: which, and when (lower bound). */
  promoted(): { nodeId: string; at: number } | undefined;
  /** Waits until a failover execution was started and none runs any more. */
  waitSettled(timeoutMs: number): Promise<boolean>;
  /**
   * Waits until the promoted node acknowledged a direct write (a 2-node cluster's new primary
   * holds its first commits for the semi-sync timeout).
   */
  waitFirstWriteOnNewPrimary(timeoutMs: number): Promise<boolean>;
  /** Stops writers and pollers, waits for the executions to settle, and measures. */
  figures(): Promise<TimelineFigures>;
  /** Every writer's acknowledgements, by writer name (vip0, db1-direct0, db2-direct, ...). */
  acks(): Record<string, Ack[]>;
}

interface Poller {
  samples: Array<{ sentAt: number; readOnly: boolean }>;
  stop(): Promise<void>;
}

/** Polls @@read_only on one node over its unix socket as root (never through the prober's path). */
function pollReadOnly(socketPath: string): Poller {
  const samples: Poller['samples'] = [];
  let stopped = false;
  let conn: mysql.Connection | undefined;
  const loop = async () => {
    while (!stopped) {
      try {
        if (!conn) {
          conn = await mysql.createConnection({
            socketPath,
            user: 'root',
            password: '',
            connectTimeout: 1000,
          });
          conn.on('error', () => {});
        }
        const sentAt = Date.now();
        const [rows] = await conn.query({ sql: 'SELECT @@GLOBAL.read_only AS ro', timeout: 1000 });
        samples.push({ sentAt, readOnly: Number((rows as Array<{ ro: number }>)[0]?.ro) !== 0 });
      } catch {
        conn?.destroy();
        conn = undefined;
        await sleep(100);
      }
      await sleep(POLL_MS);
    }
  };
  const done = loop();
  return {
    samples,
    async stop() {
      stopped = true;
      await done;
      conn?.destroy();
    },
  };
}

/** Parses a GTID position ("0-1-100,1-2-5") into domain -> {serverId, seq}. */
function parsePos(text: string): Map<number, { serverId: number; seq: number }> {
  const out = new Map<number, { serverId: number; seq: number }>();
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)-(\d+)-(\d+)\s*$/.exec(part);
    if (m) out.set(Number(m[1]), { serverId: Number(m[2]), seq: Number(m[3]) });
  }
  return out;
}

/**
 * Starts the writers and pollers of a timeline trial on `env` (stopped by figures(), or by the
 * env's cleanup if the trial throws first).
 */
export function startTimeline(env: TrialEnv, opts: TimelineOptions = {}): Timeline {
  const { cluster, cloud, store, entries } = env;
  const old = opts.oldPrimary ?? 'db1';
  const app = cluster.credentials.app;
  const others = cluster.nodes.filter((n) => n.id !== old).map((n) => n.id);
  let range = 0;
  const writer = (host: string, port: number, paceMs: number) =>
    startDirectWriter({
      host,
      port,
      user: app.user,
      password: app.password,
      paceMs,
      firstId: ++range * ID_RANGE + 1,
    });
  const vipWriters: Writer[] = Array.from({ length: opts.vipWriters ?? 1 }, () =>
    writer(cloud.vip.host, cloud.vip.port, opts.vipPaceMs ?? 2),
  );
  // To the old primary: its own clients (several, as an application has); to every other node:
  // one, which sees the first write the new primary accepts.
  const direct = new Map<string, Writer>();
  const oldDirect: Writer[] = [];
  for (const n of cluster.nodes) {
    if (n.id === old) {
      for (let i = 0; i < (opts.directToOld ?? 1); i++)
        oldDirect.push(writer(n.host, n.port, opts.directPaceMs ?? 5));
    } else if (opts.directToOthers ?? true) direct.set(n.id, writer(n.host, n.port, opts.directPaceMs ?? 5));
  }
  const pollers = new Map(others.map((id) => [id, pollReadOnly(cluster.node(id).socket)]));
  let stopped = false;
  const stopAll = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.allSettled([...vipWriters, ...oldDirect, ...direct.values()].map((w) => w.stop()));
    await Promise.allSettled([...pollers.values()].map((p) => p.stop()));
  };
  env.defer(stopAll);
  let faultAt = Number.NaN;

  const failoverExecutions = () =>
    cloud.sfn.executions().filter((e) => e.stateMachineArn === cloud.stateMachineArn);

  const promoted = () => {
    if (Number.isNaN(faultAt)) return undefined;
    let best: { nodeId: string; at: number } | undefined;
    for (const [nodeId, p] of pollers) {
      const i = p.samples.findIndex((s) => s.sentAt >= faultAt && !s.readOnly);
      if (i < 0) continue;
      const before = p.samples[i - 1];
      const at = before && before.sentAt >= faultAt ? before.sentAt : faultAt;
      // A direct acknowledgement can only be later than the change, but never trust the poll over it.
      const ack = direct.get(nodeId)?.firstAckOn(cluster.node(nodeId).serverId, faultAt);
      const first = Math.min(at, ack?.at ?? Number.POSITIVE_INFINITY);
      if (!best || first < best.at) best = { nodeId, at: first };
    }
    return best;
  };

  const waitSettled = (timeoutMs: number) =>
    waitUntil(() => {
      const ex = failoverExecutions();
      return ex.length > 0 && ex.every((e) => e.status !== 'RUNNING');
    }, timeoutMs);

  const writerNames = () =>
    new Map<Writer, string>([
      ...vipWriters.map((w, i) => [w, `vip${i}`] as const),
      ...oldDirect.map((w, i) => [w, `${old}-direct${i}`] as const),
      ...[...direct].map(([id, w]) => [w, `${id}-direct`] as const),
    ]);
  return {
    acks: () => Object.fromEntries([...writerNames()].map(([w, name]) => [name, w.acked])),
    markFault() {
      faultAt = Date.now();
      return faultAt;
    },
    get faultAt() {
      return faultAt;
    },
    failoverExecutions,
    promoted,
    waitSettled,
    waitFirstWriteOnNewPrimary: (timeoutMs) =>
      waitUntil(() => {
        const p = promoted();
        return (
          p !== undefined &&
          direct.get(p.nodeId)?.firstAckOn(cluster.node(p.nodeId).serverId, faultAt) !== undefined
        );
      }, timeoutMs),
    async figures(): Promise<TimelineFigures> {
      await stopAll();
      // Whatever is still running gets up to 90 s; a failover that never ends is itself stuck.
      await waitUntil(() => failoverExecutions().every((e) => e.status !== 'RUNNING'), 90_000);
      const ended = failoverExecutions();
      const running = ended.some((e) => e.status === 'RUNNING');
      const lastStop = Math.max(0, ...ended.map((e) => e.stopDate?.getTime() ?? 0));
      await sleep(Math.max(0, lastStop + STUCK_AFTER_MS - Date.now()));
      const state = await store.getClusterState(cloud.clusterName);
      const stuckInProgress = running || state?.failoverInProgress !== undefined ? 1 : 0;

      const promotions = ended.filter((e) =>
        e.states.some((s) => s.name === 'PromoteCandidate' && s.outcome === 'exited'),
      );
      const p = promoted();
      const outputCandidate = promotions
        .map((e) => (e.output ? (JSON.parse(e.output) as { candidate?: string }).candidate : undefined))
        .find((c) => c !== undefined);
      const newPrimary = p?.nodeId ?? outputCandidate ?? null;
      const oldServerId = cluster.node(old).serverId;
      const after = (acks: Ack[]) =>
        p ? acks.filter((a) => a.serverId === oldServerId && a.at > p.at).length : 0;
      const viaVip = vipWriters.reduce((s, w) => s + after(w.acked), 0);
      const directAfter = oldDirect.reduce((s, w) => s + after(w.acked), 0);
      const allAcks = [...vipWriters, ...oldDirect, ...direct.values()].flatMap((w) => w.acked);

      const writableAtEnd: string[] = [];
      for (const n of cluster.nodes) {
        if (!cluster.isRunning(n.id)) continue;
        const [row] = await cluster
          .query<{ ro: number }>(n.id, 'SELECT @@GLOBAL.read_only AS ro')
          .catch(() => [] as Array<{ ro: number }>);
        if (row && Number(row.ro) === 0) writableAtEnd.push(n.id);
      }
      const statePrimary = state?.primaryId ?? null;
      // Lost relative to the node that ends as primary: the promoted one, else the recorded one.
      const reference = newPrimary ?? statePrimary;
      const lostIds =
        reference !== null && cluster.isRunning(reference)
          ? new Set(await missingAcked(cluster, reference, allAcks))
          : null;
      const ackedLost = lostIds === null ? null : lostIds.size;
      const lostAcks = [...writerNames()].flatMap(([w, name]) =>
        w.acked
          .filter((a) => lostIds?.has(a.id))
          .map(
            (a) =>
              `${name} id ${a.id} on server ${a.serverId} sent +${(a.sentAt ?? Number.NaN) - faultAt} ms, acked +${a.at - faultAt} ms after the fault${p ? `, ${a.at - p.at} ms after the promotion` : ''}`,
          ),
      );

      let oldPrimaryErrant: number | null = null;
      let proberWritesOnOldPrimaryAfterPromotion: number | null = null;
      if (p && cluster.isRunning(old)) {
        const [hb] = await cluster
          .query<{ ms: number; s: number }>(
            old,
            'SELECT UNIX_TIMESTAMP(ts) * 1000 AS ms, server_id AS s FROM failover_meta.heartbeat WHERE id = 1',
          )
          .catch(() => []);
        proberWritesOnOldPrimaryAfterPromotion =
          hb && Number(hb.s) === oldServerId && Number(hb.ms) > p.at ? 1 : 0;
      }
      if (newPrimary && cluster.isRunning(old) && cluster.isRunning(newPrimary)) {
        const [o] = await cluster.query<{ p: string }>(old, 'SELECT @@GLOBAL.gtid_binlog_pos AS p');
        const [n] = await cluster.query<{ p: string }>(newPrimary, 'SELECT @@GLOBAL.gtid_slave_pos AS p');
        const received = parsePos(n?.p ?? '');
        oldPrimaryErrant = 0;
        for (const [domain, e] of parsePos(o?.p ?? '')) {
          if (e.serverId !== oldServerId) continue;
          const got = received.get(domain);
          oldPrimaryErrant += Math.max(0, e.seq - (got?.serverId === oldServerId ? got.seq : 0));
        }
      }

      const started = entries.find((e) => e.type === 'failover-started');
      const step = (name: string) =>
        entries.find((e) => e.type === 'failover-step' && e.name === name && e.result !== 'error');
      const promote = step('PromoteCandidate');
      const vip = step('MoveVip');
      const firstDirect = newPrimary
        ? direct.get(newPrimary)?.firstAckOn(cluster.node(newPrimary).serverId, faultAt)
        : undefined;
      const newServerId = newPrimary ? cluster.node(newPrimary).serverId : -1;
      const firstVip = vipWriters
        .map((w) => w.firstAckOn(newServerId, faultAt))
        .filter((a): a is Ack => a !== undefined)
        .sort((a, b) => a.at - b.at)[0];
      return {
        detectMs: started ? Number(started.detectedAt) - faultAt : null,
        promoteMs: promote && started ? Number(promote.endedAt) - Number(started.detectedAt) : null,
        vipMs: vip ? Number(vip.endedAt) - Number(vip.startedAt) : null,
        writableMs: firstDirect ? firstDirect.at - faultAt : null,
        rtoMs: firstVip ? firstVip.at - faultAt : null,
        ackedWrites: allAcks.length,
        ackedLost,
        lostAcks,
        oldPrimaryAcksAfterPromotion: viaVip + directAfter,
        oldPrimaryAcksAfterPromotionDirect: directAfter,
        oldPrimaryAcksAfterPromotionViaVip: viaVip,
        failovers: promotions.length,
        failoverAttempts: ended.length,
        executionStatuses: ended.map((e) => `${e.name}:${e.status}${e.error ? `(${e.error})` : ''}`),
        executionCauses: ended.flatMap((e) => (e.cause ? [e.cause.slice(0, 400)] : [])),
        failedSteps: entries
          .filter((e) => e.type === 'failover-step' && e.result === 'error')
          .map((e) => {
            const err = e.error as { name?: string; message?: string } | undefined;
            return `${String(e.name)}: ${err?.name ?? ''} ${String(err?.message ?? '').slice(0, 300)}`;
          }),
        stuckInProgress,
        newPrimary,
        writableAtEnd,
        statePrimary,
        needsRejoin: state?.needsRejoin ?? [],
        stateNamesWritable:
          writableAtEnd.length === 0 || (writableAtEnd.length === 1 && writableAtEnd[0] === statePrimary),
        vipHolderAtEnd: cloud.vipHolder() ?? null,
        oldPrimaryErrant,
        proberWritesOnOldPrimaryAfterPromotion,
      };
    },
  };
}

/** The figures every timeline trial reports, plus the Trial fields the CLI prints. */
export function timelineTrial(f: TimelineFigures, extra: Record<string, unknown> = {}): Trial {
  const { ackedLost, ...rest } = f;
  return {
    ...rest,
    ackedLost: ackedLost ?? 0,
    ackedLostMeasured: ackedLost !== null,
    ok: true,
    ...extra,
  };
}

/**
 * Starts a failover execution as the monitor (or an operator) would, from the state table's
 * current epoch; `extra` is merged into the request (e.g. `{ ignoreLag: true }`).
 */
export async function startFailoverExecution(
  env: TrialEnv,
  failedPrimary: string,
  extra: Record<string, unknown>,
): Promise<string> {
  const name = env.cloud.clusterName;
  const state = await env.store.getClusterState(name);
  if (!state) throw new Error(`no state for cluster ${name}`);
  const executionName = `${name}-failover-e${state.epoch + 1}`;
  const request = {
    cluster: name,
    kind: 'failover',
    failedPrimary,
    expectedEpoch: state.epoch,
    incidentId: `bench-${Date.now()}`,
    executionName,
    ...extra,
  };
  const sfn = new SFNClient({});
  try {
    await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: env.cloud.stateMachineArn,
        name: executionName,
        input: JSON.stringify(request),
      }),
    );
  } finally {
    sfn.destroy();
  }
  return executionName;
}

/**
 * A writer straight to every node but `oldPrimary`, for `writableMs` in scenarios that keep their
 * own VIP writer (crash, hang): ids from 10^9 up, clear of the VIP writer's.
 */
export function startWritableWatch(
  env: Pick<TrialEnv, 'cluster' | 'defer'>,
  oldPrimary = 'db1',
): { writableMs(nodeId: string | undefined, since: number): number | null } {
  const app = env.cluster.credentials.app;
  const writers = new Map<string, Writer>();
  let range = 0;
  for (const n of env.cluster.nodes) {
    if (n.id === oldPrimary) continue;
    writers.set(
      n.id,
      startDirectWriter({
        host: n.host,
        port: n.port,
        user: app.user,
        password: app.password,
        paceMs: 5,
        firstId: ++range * ID_RANGE + 1,
      }),
    );
  }
  env.defer(async () => {
    await Promise.allSettled([...writers.values()].map((w) => w.stop()));
  });
  return {
    writableMs(nodeId, since) {
      if (nodeId === undefined) return null;
      const ack = writers.get(nodeId)?.firstAckOn(env.cluster.node(nodeId).serverId, since);
      return ack ? ack.at - since : null;
    },
  };
}
