import mysql from 'mysql2/promise';
import { MissingPrivilegeError, NodeUnreachableError } from '../../errors.ts';
import {
  type AdminSession,
  classifyError,
  type Endpoint,
  type Login,
  type Timeouts,
  withSession,
} from './connection.ts';
import { type Inst, type OpsClock, openInst } from './operations.ts';
import { parseReplicaRow } from './probe.ts';

export interface ReplicaOf {
  host: string;
  port: number;
}

/**
 * Runs admin statements against one node, translating driver errors into typed errors:
 * unreachable -> NodeUnreachableError (retried by the state machine), privilege -> MissingPrivilegeError.
 */
export async function onNode<T>(
  nodeId: string,
  endpoint: Endpoint,
  login: Login,
  timeouts: Timeouts,
  operation: string,
  fn: (s: AdminSession) => Promise<T>,
): Promise<T> {
  try {
    return await withSession(endpoint, login, timeouts, nodeId, fn);
  } catch (err) {
    throw translateError(err, nodeId, operation);
  }
}

/**
 * Opens a session on one node, detects its dialect once (MariaDB, MySQL 5.7, 8.0, 8.4) and hands
 * its named operations to `fn`: the way the failover steps, switchover and rejoin talk to a
 * server. Errors are translated as by {@link onNode}.
 */
export function onInst<T>(
  nodeId: string,
  endpoint: Endpoint,
  login: Login,
  timeouts: Timeouts,
  operation: string,
  fn: (inst: Inst) => Promise<T>,
  clock?: OpsClock,
): Promise<T> {
  return onNode(nodeId, endpoint, login, timeouts, operation, async (s) =>
    fn(await openInst(s, nodeId, clock)),
  );
}

export type { Inst };

export function translateError(err: unknown, nodeId: string, operation: string): Error {
  if (err instanceof Error && err.name.endsWith('Error') && 'transient' in err) return err;
  const c = classifyError(err);
  const msg = `${operation} on ${nodeId} failed: ${c.code}: ${c.message}`;
  if (c.kind === 'refused' || c.kind === 'timeout' || c.kind === 'unreachable')
    return new NodeUnreachableError(msg, { nodeId, code: c.code });
  const code = (err as { code?: string }).code ?? '';
  if (
    code === 'ER_SPECIFIC_ACCESS_DENIED_ERROR' ||
    code === 'ER_DBACCESS_DENIED_ERROR' ||
    c.kind === 'auth'
  ) {
    return new MissingPrivilegeError(`${msg}. Grant the failover admin account the privilege named above.`, {
      nodeId,
      code,
    });
  }
  return err instanceof Error ? err : new Error(msg);
}

/** SHOW ALL SLAVES STATUS, first connection (we use one unnamed connection). */
export async function readReplication(s: AdminSession) {
  const rows = await s.query<Record<string, unknown>>('SHOW ALL SLAVES STATUS');
  return rows[0] ? parseReplicaRow(rows[0]) : undefined;
}

export async function readGtid(s: AdminSession): Promise<{ binlog: string; current: string; slave: string }> {
  const [r] = await s.query<{ b: string; c: string; s: string }>(
    'SELECT @@gtid_binlog_pos AS b, @@gtid_current_pos AS c, @@gtid_slave_pos AS s',
  );
  return { binlog: r?.b ?? '', current: r?.c ?? '', slave: r?.s ?? '' };
}

/**
 * Waits until the SQL thread has applied `gtidPos` (MASTER_GTID_WAIT). Returns false on timeout.
 * The IO thread must be stopped first, or the target keeps moving.
 */
export async function waitForGtid(
  s: AdminSession,
  gtidPos: string,
  timeoutSeconds: number,
): Promise<boolean> {
  if (!gtidPos) return true;
  const [r] = await s.query<{ w: number | string }>(
    'SELECT MASTER_GTID_WAIT(?, ?) AS w',
    [gtidPos, timeoutSeconds],
    Math.ceil(timeoutSeconds * 1000) + 2000,
  );
  return Number(r?.w) === 0;
}

/**
 * Makes `s` a writable primary: no replication config, read_only off, semi-sync per policy.
 * `semiSync: false` with `disableSemiSync` switches the semi-sync master OFF explicitly (a node
 * that was primary before may still have it ON): with no replica to acknowledge, every commit
 * would wait rpl_semi_sync_master_timeout.
 */
export async function promoteToPrimary(
  s: AdminSession,
  opts: { semiSync: boolean; semiSyncTimeoutMs: number; disableSemiSync?: boolean },
): Promise<void> {
  await s.execute('STOP SLAVE', [], 10_000);
  await s.execute('RESET SLAVE ALL');
  if (opts.semiSync) await setSemiSyncMaster(s, { enabled: true, timeoutMs: opts.semiSyncTimeoutMs });
  else if (opts.disableSemiSync) await setSemiSyncMaster(s, { enabled: false });
  await s.execute('SET GLOBAL read_only = OFF');
}

/** Semi-sync master ON (AFTER_SYNC, the given timeout) or OFF on `s`. */
export async function setSemiSyncMaster(
  s: AdminSession,
  opts: { enabled: boolean; timeoutMs?: number },
): Promise<void> {
  if (!opts.enabled) {
    await s.execute('SET GLOBAL rpl_semi_sync_master_enabled = OFF');
    return;
  }
  if (opts.timeoutMs !== undefined)
    await s.execute(`SET GLOBAL rpl_semi_sync_master_timeout = ${Math.floor(opts.timeoutMs)}`);
  await s.execute("SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'");
  await s.execute('SET GLOBAL rpl_semi_sync_master_enabled = ON');
}

/**
 * A string literal for statements that take no placeholders (CHANGE MASTER, START SLAVE UNTIL),
 * correct under the session's sql_mode. mysql2 escapes with backslashes (`it\'s`), which
 * NO_BACKSLASH_ESCAPES reads as the end of the literal: a password with `'` then breaks the
 * statement (and the server echoes the rest of it, password included, in its syntax error).
 * Under that mode the only escape is a doubled quote, and a backslash is an ordinary character.
 */
export function sqlStringLiteral(value: string, noBackslashEscapes: boolean): string {
  if (!noBackslashEscapes) return mysql.escape(value);
  if (value.includes('\0')) throw new Error('a NUL byte cannot be written as a string literal here');
  return `'${value.replace(/'/g, "''")}'`;
}

/** Whether the session reads string literals under NO_BACKSLASH_ESCAPES (global sql_mode is inherited). */
async function noBackslashEscapes(s: AdminSession): Promise<boolean> {
  const [r] = await s.query<{ nbe: number | string }>(
    "SELECT FIND_IN_SET('NO_BACKSLASH_ESCAPES', @@session.sql_mode) > 0 AS nbe",
  );
  return Number(r?.nbe) === 1;
}

/**
 * Points `s` at `source` with GTID auto-positioning and detection-friendly settings.
 * CHANGE MASTER takes no placeholders, so values are quoted here, for the session's sql_mode.
 */
export async function replicateFrom(
  s: AdminSession,
  source: ReplicaOf,
  repl: Login,
  opts: { semiSync?: boolean; untilGtid?: string; noDelay?: boolean } = {},
): Promise<void> {
  await s.execute('STOP SLAVE', [], 10_000);
  const nbe = await noBackslashEscapes(s);
  const q = (v: string) => sqlStringLiteral(v, nbe);
  await s.execute(
    `CHANGE MASTER TO MASTER_HOST=${q(source.host)}, MASTER_PORT=${Number(source.port)},
       MASTER_USER=${q(repl.user)}, MASTER_PASSWORD=${q(repl.password)},
       MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1${opts.noDelay ? ', MASTER_DELAY=0' : ''}`,
  );
  // The IO thread registers as a semi-sync replica only if this is ON when it connects.
  if (opts.semiSync) await s.execute('SET GLOBAL rpl_semi_sync_slave_enabled = ON');
  if (opts.untilGtid) await s.execute(`START SLAVE UNTIL master_gtid_pos = ${q(opts.untilGtid)}`);
  else await s.execute('START SLAVE');
}

/**
 * Collects on `s` (the candidate) what `source` (another replica) received and the candidate
 * lacks: replicate from it until `untilGtid` (the source's received position, so errant local
 * writes further down its binlog are never copied), wait, stop. Returns false on timeout.
 */
export async function catchUpFrom(
  s: AdminSession,
  source: ReplicaOf,
  repl: Login,
  untilGtid: string,
  timeoutSeconds: number,
): Promise<boolean> {
  await replicateFrom(s, source, repl, { untilGtid, noDelay: true });
  try {
    return await waitForGtid(s, untilGtid, timeoutSeconds);
  } finally {
    await s.execute('STOP SLAVE', [], 10_000);
    // The IO thread fetched past the UNTIL position (possibly the source's errant tail): drop
    // the relay log so a retried step that restarts the SQL thread can never apply it.
    await s.execute('RESET SLAVE');
  }
}

/** The semi-sync master settings and status of `s`, for the promotion's audit entry. */
export async function readSemiSyncMaster(
  s: AdminSession,
): Promise<{ enabled: boolean; waitPoint: string; active: boolean; clients: number }> {
  const [v] = await s.query<{ e: number | string; w: string }>(
    'SELECT @@rpl_semi_sync_master_enabled AS e, @@rpl_semi_sync_master_wait_point AS w',
  );
  const rows = await s.query<{ Variable_name: string; Value: string }>(
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status','Rpl_semi_sync_master_clients')",
  );
  const st = Object.fromEntries(rows.map((r) => [r.Variable_name, r.Value]));
  return {
    enabled: Number(v?.e) === 1,
    waitPoint: String(v?.w ?? ''),
    active: st.Rpl_semi_sync_master_status === 'ON',
    clients: Number(st.Rpl_semi_sync_master_clients ?? 0),
  };
}

/** What {@link fencePrimary} did: sessions killed, and how many read_only attempts it took. */
export interface FenceResult {
  killed: number;
  attempts: number;
}

/**
 * Fences a node that must not take writes: `read_only=ON` that never waits, with client sessions
 * killed while it cannot apply, then every remaining client session ended (not replication,
 * not system threads, not us). Bounded by `budgetMs`; throws when read_only did not apply.
 *
 * Why not a plain `SET GLOBAL read_only=ON`: it waits for the backup lock behind every commit in
 * flight, and on an old primary whose replicas left (frozen by a failover, repointed) those
 * commits wait for a semi-sync ACK that never comes. At rpl_semi_sync_master_timeout they fall
 * back to async and are ACKNOWLEDGED, and only then does read_only apply (measured: the
 * statement sat in "Waiting for backup lock" behind "Waiting for semi-sync ACK from slave" for the
 * whole 10 s). Killing the connection ends that wait at once without an acknowledgement (the
 * client sees the connection lost), and read_only then applies in a millisecond.
 *
 * @param opts.graceMs how long commits in flight may finish on their own before their sessions
 *   are killed (0 for a failover: nothing the old primary acknowledges from now on is safe).
 * @param opts.budgetMs give up (throw) when read_only has not applied by then.
 */
export async function fencePrimary(
  s: AdminSession,
  opts: { graceMs?: number; budgetMs?: number } = {},
): Promise<FenceResult> {
  const r = await applyReadOnly(s, opts);
  return { killed: r.killed + (await killClientSessions(s)), attempts: r.attempts };
}

/**
 * `read_only=ON` that never waits: each attempt fails at once (lock_wait_timeout=0) while a
 * commit or lock is in flight; after `graceMs` the client sessions are killed between attempts
 * so that it can apply. Throws when it has not applied within `budgetMs`. The first half of
 * {@link fencePrimary}, for callers that end the sessions later themselves (a switchover's grace).
 */
export async function applyReadOnly(
  s: AdminSession,
  opts: { graceMs?: number; budgetMs?: number } = {},
): Promise<FenceResult> {
  const started = Date.now();
  const budgetMs = Math.max(opts.budgetMs ?? 2500, opts.graceMs ?? 0);
  const graceUntil = started + (opts.graceMs ?? 0);
  await s.execute('SET SESSION lock_wait_timeout = 0');
  let killed = 0;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      await s.execute('SET GLOBAL read_only = ON');
      return { killed, attempts };
    } catch (err) {
      if ((err as { code?: string }).code !== 'ER_LOCK_WAIT_TIMEOUT') throw err;
      if (Date.now() - started >= budgetMs) {
        throw new Error(
          `read_only=ON did not apply within ${budgetMs} ms (${attempts} attempts, ${killed} sessions killed): a commit or lock kept it waiting`,
        );
      }
    }
    if (Date.now() >= graceUntil) killed += await killClientSessions(s);
    else await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Ends every client session (KILL CONNECTION: the client sees the connection lost, never an
 * acknowledgement), except replication, system threads and this session. Sessions of our own
 * admin account are no exception: it bypasses read_only, and a probe's heartbeat that a frozen
 * server held waits for a semi-sync ACK like any commit, keeping read_only from applying.
 */
export async function killClientSessions(s: AdminSession): Promise<number> {
  const rows = await s.query<{ ID: number | string }>(
    `SELECT ID FROM information_schema.PROCESSLIST
      WHERE ID <> CONNECTION_ID() AND USER NOT IN ('system user', 'event_scheduler')
        AND COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO', 'Slave_SQL', 'Slave_worker')`,
  );
  let killed = 0;
  for (const r of rows) {
    try {
      await s.execute(`KILL CONNECTION ${Number(r.ID)}`);
      killed++;
    } catch {
      // The session may have ended on its own between the SELECT and the KILL.
    }
  }
  return killed;
}

/** True when `s` answers read_only=ON. */
export async function isReadOnly(s: AdminSession): Promise<boolean> {
  const [r] = await s.query<{ ro: number | string }>('SELECT @@global.read_only AS ro');
  return Number(r?.ro) === 1;
}

/**
 * Freezes what a replica received: stops its IO thread (no-op without replication). Against a
 * hung or cut-off source this takes ~2 s (the thread sits in a socket read). Returns false when
 * the node has no replication configured.
 */
export async function stopReplicationIo(s: AdminSession): Promise<boolean> {
  if (!(await readReplication(s))) return false;
  await s.execute('STOP SLAVE IO_THREAD', [], 10_000);
  return true;
}

/**
 * A failover's freeze of one survivor: stops its IO thread and says whether this call stopped a
 * running one ('stopped'), found it stopped already ('already-stopped': by an operator, or by an
 * earlier freeze) or found no replication ('no-replication'). Only 'stopped' nodes are restarted
 * when the failover ends without a promotion.
 */
export async function freezeReplicationIo(
  s: AdminSession,
): Promise<'stopped' | 'already-stopped' | 'no-replication'> {
  const r = await readReplication(s);
  if (!r) return 'no-replication';
  await s.execute('STOP SLAVE IO_THREAD', [], 10_000);
  return r.ioState === 'No' ? 'already-stopped' : 'stopped';
}

/**
 * Undoes a failover's freeze on a replica that was not promoted: makes sure it replicates from
 * `source` (the old primary) again with both threads started. Idempotent: a replica already
 * replicating from `source` with its IO thread running is left alone. Returns what it did.
 */
export async function restartReplicationIo(
  s: AdminSession,
  source: ReplicaOf,
  repl: Login,
): Promise<'running' | 'restarted' | 'repointed' | 'no-replication'> {
  const r = await readReplication(s);
  if (!r) return 'no-replication';
  if (r.sourceHost !== source.host || r.sourcePort !== source.port) {
    // CatchUpCandidate's collection left it pointing at another replica (relay log reset).
    await replicateFrom(s, source, repl);
    return 'repointed';
  }
  if (r.ioState !== 'No' && r.sqlRunning) return 'running';
  await s.execute('START SLAVE');
  return 'restarted';
}

/** Whether the node takes writes now (read_only=OFF): a promoted candidate does, a fenced node does not. */
export async function isWritable(s: AdminSession): Promise<boolean> {
  const [r] = await s.query<{ ro: number | string }>('SELECT @@read_only AS ro');
  return Number(r?.ro) === 0;
}
