import mysql from 'mysql2/promise';
import type { ProbeError, ProbeErrorKind } from '../../core/types.ts';

export interface Endpoint {
  host: string;
  port: number;
}

export interface Login {
  user: string;
  password: string;
}

export interface Timeouts {
  connectTimeoutMs: number;
  queryTimeoutMs: number;
}

/** A connection with per-statement timeouts; a hung server never blocks a caller forever. */
export class AdminSession {
  /**
   * False once any statement failed, also one the caller caught: a statement that timed out
   * stays queued in the driver, so a session is only reused while every statement succeeded.
   */
  clean = true;

  private constructor(
    private readonly conn: mysql.Connection,
    readonly label: string,
    private readonly queryTimeoutMs: number,
    private readonly reopen: () => Promise<AdminSession>,
  ) {}

  /** A second session to the same server with the same login and timeouts (the caller closes it). */
  openSibling(): Promise<AdminSession> {
    return this.reopen();
  }

  /** Opens a session; a hung server (TCP accepted, no greeting) fails after connectTimeoutMs. */
  static async open(
    endpoint: Endpoint,
    login: Login,
    timeouts: Timeouts,
    label: string,
    // batches: allow queryBatch (mysql2 multipleStatements). Only for sessions that never send
    // text from outside the code: the prober's own connections.
    opts: { batches?: boolean } = {},
  ): Promise<AdminSession> {
    const conn = await mysql.createConnection({
      host: endpoint.host,
      port: endpoint.port,
      user: login.user,
      password: login.password,
      connectTimeout: timeouts.connectTimeoutMs,
      multipleStatements: opts.batches === true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
    });
    // mysql2 emits 'error' on the connection for fatal errors after connect; without a
    // listener a server dying under an idle session would crash the Lambda.
    conn.on('error', () => {});
    return new AdminSession(conn, label, timeouts.queryTimeoutMs, () =>
      AdminSession.open(endpoint, login, timeouts, label),
    );
  }

  /** Runs one statement; `timeoutMs` overrides the session default (long waits like MASTER_GTID_WAIT). */
  async query<T = Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
    timeoutMs?: number,
  ): Promise<T[]> {
    try {
      const [rows] = await this.conn.query({
        sql,
        values: params,
        timeout: timeoutMs ?? this.queryTimeoutMs,
      });
      return rows as T[];
    } catch (err) {
      this.clean = false;
      throw scrubDriverError(err);
    }
  }

  async execute(sql: string, params: unknown[] = [], timeoutMs?: number): Promise<{ affectedRows: number }> {
    try {
      const [res] = await this.conn.query({ sql, values: params, timeout: timeoutMs ?? this.queryTimeoutMs });
      return res as { affectedRows: number };
    } catch (err) {
      this.clean = false;
      throw scrubDriverError(err);
    }
  }

  /**
   * Runs constant statements (no parameters) and returns one row list per statement. On a
   * session opened with `batches` they go as ONE multi-statement query, one round trip, bounded
   * as a whole by the timeout; otherwise one by one. A statement that returns no rows gives [].
   * The server stops at the first failing statement; the error is thrown, nothing is returned.
   */
  async queryBatch(statements: readonly string[], timeoutMs?: number): Promise<Record<string, unknown>[][]> {
    const asRows = (r: unknown) => (Array.isArray(r) ? (r as Record<string, unknown>[]) : []);
    if (this.conn.config.multipleStatements !== true || statements.length === 1) {
      const out: Record<string, unknown>[][] = [];
      for (const sql of statements) out.push(asRows(await this.query(sql, [], timeoutMs)));
      return out;
    }
    try {
      const [results] = await this.conn.query({
        sql: statements.join(';\n'),
        timeout: timeoutMs ?? this.queryTimeoutMs,
      });
      // More than one statement: mysql2 answers one entry per statement.
      return (results as unknown[]).map(asRows);
    } catch (err) {
      this.clean = false;
      throw scrubDriverError(err);
    }
  }

  /**
   * Calls `fn` once when the connection ends or fails on its own (the server closed it or died:
   * the kernel closes a dead mariadbd's sockets at once), including after our own close().
   */
  onClose(fn: () => void): void {
    let called = false;
    const once = () => {
      if (called) return;
      called = true;
      fn();
    };
    this.conn.once('end', once);
    this.conn.on('error', once);
  }

  async close(): Promise<void> {
    // end() waits for the server; a hung server would stall us, so destroy after a bound.
    const done = this.conn.end().catch(() => {});
    const timer = new Promise<void>((r) => setTimeout(r, 200).unref());
    await Promise.race([done, timer]);
    this.conn.destroy();
  }
}

/** Opens a session, runs fn, always closes. */
export async function withSession<T>(
  endpoint: Endpoint,
  login: Login,
  timeouts: Timeouts,
  label: string,
  fn: (s: AdminSession) => Promise<T>,
): Promise<T> {
  const s = await AdminSession.open(endpoint, login, timeouts, label);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/**
 * String literals that hold a secret in a statement: CHANGE MASTER's MASTER_PASSWORD, CREATE/ALTER
 * USER's IDENTIFIED BY, PASSWORD('...'). Where the literal ends depends on the sql_mode (a
 * backslash escapes or not), so everything up to the LAST quote of its kind goes: more, never less.
 */
const SECRET_LITERAL =
  /(MASTER_PASSWORD\s*=\s*|IDENTIFIED\s+BY\s+|PASSWORD\s*\(\s*)(['"])(?:[\s\S]*\2|[\s\S]*$)/gi;
/** The server's syntax errors quote the statement from the failing token on: "near '...' at line 2". */
const NEAR_QUOTE = /(near )'[\s\S]*'( at line \d+)?/gi;

/** Removes secret literals from statement text or from a message that quotes a statement. */
export function redactStatement(text: string): string {
  return text.replace(SECRET_LITERAL, '$1***');
}

/**
 * A driver error made safe to leave the adapter: mysql2 attaches the whole statement (`sql`,
 * with MASTER_PASSWORD in clear for CHANGE MASTER) and the server's message quotes part of it
 * ("near 'secret', MASTER_USE_GTID=..."). Lambda prints every enumerable property of an error
 * that leaves a handler, so the statement goes and the messages keep no quoted statement text.
 * Code, errno and sqlState stay: callers classify on them.
 */
export function scrubDriverError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const e = err as Error & { sql?: unknown; sqlMessage?: unknown };
  const secrets = typeof e.sql === 'string' ? secretValues(e.sql) : [];
  // Only a statement that carried a secret loses the quoted text of its messages: the server
  // quotes the value itself ("String '<password>' is too long for MASTER_PASSWORD") or the
  // statement from the failing token on ("near '<password>', MASTER_USE_GTID...").
  const clean = (text: string) => {
    let r = redactStatement(text);
    if (secrets.length === 0) return r;
    for (const v of secrets) r = r.split(v).join('***');
    return r.replace(NEAR_QUOTE, "$1'***'$2").replace(/'(?:[^'\n]|'')*'/g, "'***'");
  };
  if ('sql' in e) delete e.sql;
  if (typeof e.sqlMessage === 'string') e.sqlMessage = clean(e.sqlMessage);
  e.message = clean(e.message);
  if (typeof e.stack === 'string') e.stack = clean(e.stack);
  return e;
}

/** The secret values of a statement, as written and unescaped in either quoting style. */
function secretValues(sql: string): string[] {
  const out = new Set<string>();
  for (const m of sql.matchAll(SECRET_LITERAL)) {
    const text = m[0].slice(m[1]!.length);
    const q = m[2]!;
    const raw = text.endsWith(q) && text.length > 1 ? text.slice(1, -1) : text.slice(1);
    for (const v of [raw, raw.replace(/\\(.)/g, '$1'), raw.split(q + q).join(q)])
      if (v.length >= 3) out.add(v);
  }
  return [...out].sort((a, b) => b.length - a.length);
}

const REFUSED = new Set(['ECONNREFUSED', 'ECONNRESET', 'PROTOCOL_CONNECTION_LOST', 'EPIPE']);
// An ICMP "unreachable" comes from a router or the local stack when the path (or the host) is
// gone: a partition looks exactly like this, so it must never take the crash fast path.
const NO_ROUTE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);
const TIMEOUT = new Set(['ETIMEDOUT', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ESOCKETTIMEDOUT']);
const AUTH = new Set([
  'ER_ACCESS_DENIED_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_SPECIFIC_ACCESS_DENIED_ERROR',
]);

/**
 * Classifies a driver error: refused (process gone) is unambiguous; a timeout or an unreachable
 * host (no route: a partition or a host that is down) is not.
 */
export function classifyError(err: unknown): ProbeError {
  const e = err as { code?: string; message?: string; errno?: number };
  const code = e.code ?? 'UNKNOWN';
  let kind: ProbeErrorKind = 'other';
  if (REFUSED.has(code)) kind = 'refused';
  else if (NO_ROUTE.has(code)) kind = 'unreachable';
  else if (TIMEOUT.has(code) || /timed? ?out/i.test(e.message ?? '')) kind = 'timeout';
  else if (AUTH.has(code)) kind = 'auth';
  return { kind, code, message: (e.message ?? String(err)).slice(0, 300) };
}
