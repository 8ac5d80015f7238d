import type { NodeProbe } from '../../core/types.ts';
import { UnsupportedServerError } from '../../errors.ts';
import { AdminSession, classifyError, type Endpoint, type Login, type Timeouts } from './connection.ts';
import { detectFlavor } from './dialect/flavor.ts';
import { mariadbDialect } from './dialect/mariadb.ts';
import { probeBatch, runProbeBatch, toReplicationStatus } from './dialect/probe-batch.ts';
import type { Dialect } from './dialect/types.ts';

export interface ProbeTarget extends Endpoint {
  nodeId: string;
  /** The node the state table believes is the primary: it gets the heartbeat write. */
  isPrimary: boolean;
  /**
   * Asked right before the heartbeat write (the monitor re-reads the state table): false skips
   * the write (`writable` stays unknown). A write that would execute more than
   * HEARTBEAT_BOUND_MS after this check began is not made at all (see writeHeartbeat).
   */
  beforeHeartbeat?: () => Promise<boolean>;
}

/** What the prober needs of a session: AdminSession is one (tests script one). */
export type ProbeSession = Pick<AdminSession, 'query' | 'queryBatch' | 'execute'>;

/**
 * The heartbeat row is written only within this long after the caller's last check that the node
 * is the recorded primary of the current epoch. A failover needs longer than this from claiming
 * the epoch to a writable candidate (its fence's head start, the VIP move and the last fence
 * check's connect timeout come first), so a heartbeat can never land on an old primary after
 * the candidate became writable, also not one delayed by a frozen server (SIGSTOP, then SIGCONT).
 */
export const HEARTBEAT_BOUND_MS = 250;

/**
 * The dialect that speaks to the server on `s`, from @@version and @@version_comment: one
 * round trip, once per connection (the prober caches it on the held connection). Throws the
 * driver's error as it came (a timeout stays a timeout for the evidence).
 */
export async function detectDialect(s: Pick<ProbeSession, 'query'>): Promise<Dialect> {
  const [row] = await s.query('SELECT @@version AS version, @@version_comment AS comment');
  const version = String(row?.version ?? '');
  const comment = String(row?.comment ?? '');
  try {
    return detectFlavor(version, comment).dialect;
  } catch (err) {
    // A MariaDB older than the dialects cover still answers the statements the prober has
    // always sent (`check` refuses it with the reason): probing it keeps its evidence.
    if (err instanceof UnsupportedServerError && /mariadb/i.test(`${version} ${comment}`)) {
      const m = /^(?:5\.5\.5-)?(\d+)\.(\d+)\.(\d+)/.exec(version);
      return mariadbDialect({
        flavor: 'mariadb',
        major: Number(m?.[1] ?? 0),
        minor: Number(m?.[2] ?? 0),
        patch: Number(m?.[3] ?? 0),
      });
    }
    throw err;
  }
}

/**
 * Probes one node with short timeouts on a fresh connection. Never throws: an unreachable node
 * is a fact for the analysis, not an exception. The primary gets a heartbeat write guarded by
 * read_only, so a probe can never create an errant transaction on a node that is in fact a
 * replica.
 */
export async function probeNode(target: ProbeTarget, login: Login, timeouts: Timeouts): Promise<NodeProbe> {
  const started = performance.now();
  let session: AdminSession | undefined;
  try {
    session = await AdminSession.open(target, login, timeouts, target.nodeId, { batches: true });
    const probe = await readNode(session, target, await detectDialect(session));
    probe.probeMs = Math.round(performance.now() - started);
    return probe;
  } catch (err) {
    return {
      nodeId: target.nodeId,
      reachable: false,
      error: classifyError(err),
      probeMs: Math.round(performance.now() - started),
    };
  } finally {
    await session?.close();
  }
}

/**
 * Reads one node on an open session in its dialect: one batch (settings, GTIDs, semi-sync,
 * replica status and, on replicas, the heartbeat lag: one round trip on a batching session),
 * then on the primary the heartbeat write. Throws on any failure of the batch.
 */
export async function readNode(s: ProbeSession, target: ProbeTarget, dialect: Dialect): Promise<NodeProbe> {
  const batch = probeBatch(dialect, { heartbeatLag: !target.isPrimary });
  const results = await runProbeBatch(batch, (statements) => s.queryBatch(statements));
  const r = batch.parse(results);
  // The server's clock when this answer left it: bounds the heartbeat write below.
  const serverNow = r.serverNow;
  const readAt = performance.now();
  const probe: NodeProbe = {
    nodeId: target.nodeId,
    reachable: true,
    probeMs: 0,
    flavor: r.flavor,
    serverId: r.serverId,
    version: r.version,
    readOnly: r.readOnly,
    ...(r.superReadOnly === undefined ? {} : { superReadOnly: r.superReadOnly }),
    logBin: r.logBin,
    logSlaveUpdates: r.logSlaveUpdates,
    gtidBinlogPos: r.gtidBinlogPos,
    gtidCurrentPos: r.gtidCurrentPos,
    gtidSlavePos: r.gtidSlavePos,
    semiSync: r.semiSync,
    longestTrxSeconds: r.longestTrxSeconds,
  };
  if (r.replication) probe.replication = toReplicationStatus(r.replication);
  if (target.isPrimary) {
    const checkAt = performance.now();
    const mayWrite = target.beforeHeartbeat ? await target.beforeHeartbeat().catch(() => false) : true;
    // Too slow a check proves nothing about now: skip rather than write on stale knowledge.
    if (mayWrite && performance.now() - checkAt < HEARTBEAT_BOUND_MS) {
      // Server time by which the write must execute: at most HEARTBEAT_BOUND_MS after the check
      // began (serverNow is no later than readAt, so this errs early, never late).
      const deadline = serverNow + (checkAt - readAt + HEARTBEAT_BOUND_MS) / 1000;
      probe.writable = await writeHeartbeat(s, deadline);
    }
  } else probe.heartbeatLagMs = r.heartbeatLagMs ?? null;
  return probe;
}

/**
 * pt-heartbeat style write. `WHERE @@global.read_only = 0` keeps it from ever committing on a
 * read-only node (our admin account can bypass read_only). `SYSDATE(6) < deadline` (the time
 * the statement executes, not when it was sent) keeps a write that a frozen server receives and
 * runs only after SIGCONT, seconds later and perhaps after a failover, from changing anything.
 * A timeout here means the primary answers but cannot commit (e.g. waiting for semi-sync acks):
 * not writable, yet reachable.
 */
async function writeHeartbeat(s: ProbeSession, deadline: number): Promise<boolean> {
  const sql = `INSERT INTO failover_meta.heartbeat (id, ts, server_id)
               SELECT 1, NOW(6), @@server_id FROM DUAL
                WHERE @@global.read_only = 0 AND UNIX_TIMESTAMP(SYSDATE(6)) < ${deadline.toFixed(6)}
               ON DUPLICATE KEY UPDATE ts = VALUES(ts), server_id = VALUES(server_id)`;
  try {
    const res = await s.execute(sql);
    return res.affectedRows > 0;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ER_NO_SUCH_TABLE' || code === 'ER_BAD_DB_ERROR') {
      await ensureHeartbeatTable(s);
      const res = await s.execute(sql).catch(() => ({ affectedRows: 0 }));
      return res.affectedRows > 0;
    }
    return false;
  }
}

/** Creates failover_meta.heartbeat on the primary (replicated to the replicas). */
export async function ensureHeartbeatTable(s: Pick<AdminSession, 'execute'>): Promise<void> {
  await s.execute('CREATE DATABASE IF NOT EXISTS failover_meta');
  await s.execute(
    `CREATE TABLE IF NOT EXISTS failover_meta.heartbeat (
       id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, server_id INT NOT NULL) ENGINE=InnoDB`,
  );
}
