import mysql from 'mysql2/promise';

export interface Ack {
  id: number;
  serverId: number;
  /** Epoch ms at which the commit was acknowledged to the client. */
  at: number;
  /** Epoch ms at which the INSERT was sent. */
  sentAt?: number;
}

export interface WriterOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Table to write to, created by the caller: (id BIGINT PRIMARY KEY, at BIGINT, payload VARCHAR). */
  table?: string;
  /** Pause between writes (ms); 0 writes back to back. */
  paceMs?: number;
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
}

export interface Writer {
  acked: Ack[];
  errors: number;
  /** Epoch ms of the first ack on a server other than `serverId`, after `since`. */
  firstAckOn(serverId: number, since: number): Ack | undefined;
  stop(): Promise<void>;
}

/**
 * A client that writes through the VIP and records every acknowledged id: the durability
 * check compares these with what the new primary holds. A write whose outcome is unknown
 * (connection lost mid-commit) is not counted as acknowledged.
 */
export function startWriter(opts: WriterOptions): Writer {
  const table = opts.table ?? 'app.writes';
  const acked: Ack[] = [];
  let errors = 0;
  let stopped = false;
  let nextId = 1;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const loop = async () => {
    while (!stopped) {
      let conn: mysql.Connection | undefined;
      try {
        conn = await mysql.createConnection({
          host: opts.host,
          port: opts.port,
          user: opts.user,
          password: opts.password,
          connectTimeout: opts.connectTimeoutMs ?? 1000,
        });
        conn.on('error', () => {});
        const [rows] = await conn.query({ sql: 'SELECT @@server_id AS s', timeout: 2000 });
        const serverId = Number((rows as Array<{ s: number }>)[0]?.s);
        while (!stopped) {
          const id = nextId++;
          const sentAt = Date.now();
          await conn.query({
            sql: `INSERT INTO ${table} (id, at, payload) VALUES (?, ?, ?)`,
            values: [id, sentAt, 'x'.repeat(32)],
            timeout: opts.queryTimeoutMs ?? 3000,
          });
          acked.push({ id, serverId, at: Date.now(), sentAt });
          if (opts.paceMs) await sleep(opts.paceMs);
        }
      } catch {
        errors++;
        if (!stopped) await sleep(20);
      } finally {
        conn?.destroy();
      }
    }
  };
  const done = loop();
  return {
    acked,
    get errors() {
      return errors;
    },
    firstAckOn(serverId, since) {
      return acked.find((a) => a.serverId === serverId && a.at >= since);
    },
    async stop() {
      stopped = true;
      await done;
    },
  };
}

/** Creates the writer's table on the primary (as root through the harness). */
export const WRITES_TABLE_DDL =
  'CREATE TABLE IF NOT EXISTS app.writes (id BIGINT PRIMARY KEY, at BIGINT NOT NULL, payload VARCHAR(64) NOT NULL) ENGINE=InnoDB';

/** Acknowledged ids that `nodeId` does not hold: the durability check after a failover. */
export async function missingAcked(
  cluster: { query<T>(nodeId: string, sql: string): Promise<T[]> },
  nodeId: string,
  acked: readonly Pick<Ack, 'id'>[],
  table = 'app.writes',
): Promise<number[]> {
  const rows = await cluster.query<{ id: string | number }>(nodeId, `SELECT id FROM ${table}`);
  const present = new Set(rows.map((r) => Number(r.id)));
  return acked.map((a) => a.id).filter((id) => !present.has(id));
}

export interface DirectWriterOptions extends WriterOptions {
  /** First id this writer inserts; give each concurrent writer its own range (they share the table). */
  firstId: number;
}

/** MariaDB's answer to a write on a read_only node (ER_OPTION_PREVENTS_STATEMENT). */
const READ_ONLY_ERRNO = 1290;

/**
 * A writer like {@link startWriter}, with its own id range so several run against one table, as
 * many application clients do: some through the VIP, some connected straight to one node. A node
 * that refuses writes because it is read_only keeps the connection (a replica is asked again
 * every `paceMs`, and the first acknowledgement after its promotion is visible to within that);
 * any other error reconnects. `queryTimeoutMs` defaults to 60 s, as an application without a
 * statement timeout waits: a commit frozen with its server (SIGSTOP) and then held by the
 * semi-sync timeout must still reach its acknowledgement.
 */
export function startDirectWriter(opts: DirectWriterOptions): Writer {
  const table = opts.table ?? 'app.writes';
  const acked: Ack[] = [];
  let errors = 0;
  let stopped = false;
  let nextId = opts.firstId;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let current: mysql.Connection | undefined;
  const loop = async () => {
    while (!stopped) {
      let conn: mysql.Connection | undefined;
      try {
        conn = await mysql.createConnection({
          host: opts.host,
          port: opts.port,
          user: opts.user,
          password: opts.password,
          connectTimeout: opts.connectTimeoutMs ?? 1000,
        });
        current = conn;
        conn.on('error', () => {});
        const [rows] = await conn.query({ sql: 'SELECT @@server_id AS s', timeout: 2000 });
        const serverId = Number((rows as Array<{ s: number }>)[0]?.s);
        while (!stopped) {
          const id = nextId++;
          const sentAt = Date.now();
          try {
            await conn.query({
              sql: `INSERT INTO ${table} (id, at, payload) VALUES (?, ?, ?)`,
              values: [id, sentAt, 'x'.repeat(32)],
              timeout: opts.queryTimeoutMs ?? 60_000,
            });
            acked.push({ id, serverId, at: Date.now(), sentAt });
          } catch (err) {
            if ((err as { errno?: number }).errno !== READ_ONLY_ERRNO) throw err;
            errors++;
            await sleep(Math.max(10, opts.paceMs ?? 0));
            continue;
          }
          if (opts.paceMs) await sleep(opts.paceMs);
        }
      } catch {
        errors++;
        if (!stopped) await sleep(20);
      } finally {
        conn?.destroy();
      }
    }
  };
  const done = loop();
  return {
    acked,
    get errors() {
      return errors;
    },
    firstAckOn(serverId, since) {
      return acked.find((a) => a.serverId === serverId && a.at >= since);
    },
    async stop() {
      stopped = true;
      // A statement waiting on a frozen or semi-sync-blocked node would hold stop() for its
      // timeout, and destroy() does not settle it: its outcome stays unknown (not acknowledged).
      current?.destroy();
      await Promise.race([done, sleep(1000)]);
    },
  };
}
