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
  private constructor(
    private readonly conn: mysql.Connection,
    readonly label: string,
    private readonly queryTimeoutMs: number,
  ) {}

  /** Opens a session; a hung server (TCP accepted, no greeting) fails after connectTimeoutMs. */
  static async open(
    endpoint: Endpoint,
    login: Login,
    timeouts: Timeouts,
    label: string,
  ): Promise<AdminSession> {
    const conn = await mysql.createConnection({
      host: endpoint.host,
      port: endpoint.port,
      user: login.user,
      password: login.password,
      connectTimeout: timeouts.connectTimeoutMs,
      multipleStatements: false,
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
    });
    // mysql2 emits 'error' on the connection for fatal errors after connect; without a
    // listener a server dying under an idle session would crash the Lambda.
    conn.on('error', () => {});
    return new AdminSession(conn, label, timeouts.queryTimeoutMs);
  }

  /** Runs one statement; `timeoutMs` overrides the session default (long waits like MASTER_GTID_WAIT). */
  async query<T = Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
    timeoutMs?: number,
  ): Promise<T[]> {
    const [rows] = await this.conn.query({ sql, values: params, timeout: timeoutMs ?? this.queryTimeoutMs });
    return rows as T[];
  }

  async execute(sql: string, params: unknown[] = [], timeoutMs?: number): Promise<{ affectedRows: number }> {
    const [res] = await this.conn.query({ sql, values: params, timeout: timeoutMs ?? this.queryTimeoutMs });
    return res as { affectedRows: number };
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

const REFUSED = new Set(['ECONNREFUSED', 'ECONNRESET', 'PROTOCOL_CONNECTION_LOST', 'EPIPE', 'EHOSTUNREACH']);
const TIMEOUT = new Set(['ETIMEDOUT', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ESOCKETTIMEDOUT']);
const AUTH = new Set([
  'ER_ACCESS_DENIED_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_SPECIFIC_ACCESS_DENIED_ERROR',
]);

/** Classifies a driver error: refused (process gone) is unambiguous, a timeout is not. */
export function classifyError(err: unknown): ProbeError {
  const e = err as { code?: string; message?: string; errno?: number };
  const code = e.code ?? 'UNKNOWN';
  let kind: ProbeErrorKind = 'other';
  if (REFUSED.has(code)) kind = 'refused';
  else if (TIMEOUT.has(code) || /timed? ?out/i.test(e.message ?? '')) kind = 'timeout';
  else if (AUTH.has(code)) kind = 'auth';
  return { kind, code, message: (e.message ?? String(err)).slice(0, 300) };
}
