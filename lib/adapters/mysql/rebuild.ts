/**
 * Rebuilds a diverged node from the primary over plain SQL (mysql2), the way
 * `mariadb-dump --all-databases --single-transaction --gtid` + reload would, so it also runs
 * in Lambda where no mariadb-dump binary exists:
 *
 *   primary: START TRANSACTION WITH CONSISTENT SNAPSHOT; binlog_snapshot_file/position ->
 *            BINLOG_GTID_POS = the GTID position the copy corresponds to
 *   node:    STOP SLAVE; RESET SLAVE ALL; drop every user schema; recreate schemas, tables
 *            (rows streamed in batches) and views from the snapshot; RESET MASTER (its own
 *            diverged binlog history goes, so no errant GTID survives);
 *            SET GLOBAL gtid_slave_pos = snapshot position
 * The caller then points it at the primary (MASTER_USE_GTID=slave_pos).
 *
 * MariaDB only: rejoin refuses a MySQL rebuild and names its options (RESET BINARY LOGS AND
 * GTIDS or RESET MASTER plus a consistent copy, or CLONE).
 *
 * Scope: user schemas (everything but mysql, information_schema, performance_schema, sys).
 * Accounts (the mysql schema) replicate like any change and are left as they are; stored
 * routines, triggers and events are listed as skipped. Bounded by the function's timeout:
 * for large data sets rebuild by hand (mariadb-dump / mariadb-backup).
 */
import type { Connection as CoreConnection } from 'mysql2';
import mysql from 'mysql2/promise';
import { MissingPrivilegeError } from '../../errors.ts';
import { missingGlobalGrants, parseGrants, REBUILD_GRANTS } from '../../operator/grants.ts';
import type { Endpoint, Login } from './connection.ts';

export interface RebuildResult {
  /** The primary's GTID position the copy corresponds to; the node's gtid_slave_pos now. */
  snapshotGtid: string;
  schemas: string[];
  tables: number;
  views: number;
  rows: number;
  /** Objects not copied (routines, triggers, events), for the report. */
  skipped: string[];
  ms: number;
}

const SYSTEM_SCHEMAS = ['mysql', 'information_schema', 'performance_schema', 'sys'];
const BATCH_ROWS = 500;

const id = (name: string) => `\`${name.replaceAll('`', '``')}\``;

async function connect(endpoint: Endpoint, login: Login): Promise<mysql.Connection> {
  const conn = await mysql.createConnection({
    host: endpoint.host,
    port: endpoint.port,
    user: login.user,
    password: login.password,
    connectTimeout: 3000,
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    multipleStatements: false,
  });
  conn.on('error', () => {});
  return conn;
}

async function grantsOf(conn: mysql.Connection): Promise<string[]> {
  const [rows] = await conn.query('SHOW GRANTS FOR CURRENT_USER()');
  return (rows as Record<string, string>[]).map((r) => String(Object.values(r)[0] ?? ''));
}

/**
 * Copies the primary's user schemas onto `node` and sets its gtid_slave_pos to the copy's
 * position. Destroys the node's user data: call it only for a node that must be rebuilt.
 *
 * @throws MissingPrivilegeError (before changing anything) when the admin account lacks the
 *   rebuild privileges (REBUILD_GRANTS) on either side.
 */
export async function rebuildFromPrimary(
  primary: Endpoint & { nodeId: string },
  node: Endpoint & { nodeId: string },
  login: Login,
): Promise<RebuildResult> {
  const t0 = Date.now();
  const src = await connect(primary, login);
  let dst: mysql.Connection | undefined;
  try {
    dst = await connect(node, login);
    for (const [conn, nodeId] of [
      [src, primary.nodeId],
      [dst, node.nodeId],
    ] as const) {
      const missing = missingGlobalGrants(parseGrants(await grantsOf(conn)), REBUILD_GRANTS);
      if (missing.length) {
        throw new MissingPrivilegeError(
          `Rebuild of ${node.nodeId} refused before changing anything: ${login.user} on ${nodeId} lacks ${missing.join(', ')}. ` +
            `A rebuild copies every user schema, which the failover account normally cannot: GRANT ${REBUILD_GRANTS.join(', ')} ON *.* TO '${login.user}'@'<host>' on the primary (it replicates), run the rebuild, then REVOKE them. Or rebuild by hand with mariadb-dump --all-databases --single-transaction --gtid.`,
          { nodeId, missing },
        );
      }
    }

    await src.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    await src.query('START TRANSACTION WITH CONSISTENT SNAPSHOT');
    const [snap] = await src.query("SHOW STATUS LIKE 'binlog_snapshot_%'");
    const st = Object.fromEntries(
      (snap as Array<{ Variable_name: string; Value: string }>).map((r) => [r.Variable_name, r.Value]),
    );
    const [gp] = await src.query('SELECT BINLOG_GTID_POS(?, ?) AS g', [
      st.Binlog_snapshot_file,
      Number(st.Binlog_snapshot_position),
    ]);
    const snapshotGtid = String((gp as Array<{ g: string | null }>)[0]?.g ?? '');

    const [schemaRows] = await src.query(
      `SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN (${SYSTEM_SCHEMAS.map(() => '?').join(',')}) ORDER BY 1`,
      SYSTEM_SCHEMAS,
    );
    const schemas = (schemaRows as Array<{ s: string }>).map((r) => r.s);

    // The node: stop replication before touching its data, then wipe its user schemas.
    await dst.query('STOP SLAVE');
    await dst.query('RESET SLAVE ALL');
    await dst.query('SET SESSION foreign_key_checks = 0');
    await dst.query('SET SESSION unique_checks = 0');
    // Not binlogging the reload needs BINLOG ADMIN; without it RESET MASTER below clears it anyway.
    await dst.query('SET SESSION sql_log_bin = 0').catch(() => {});
    const [dstSchemas] = await dst.query(
      `SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN (${SYSTEM_SCHEMAS.map(() => '?').join(',')})`,
      SYSTEM_SCHEMAS,
    );
    for (const r of dstSchemas as Array<{ s: string }>) await dst.query(`DROP DATABASE ${id(r.s)}`);

    let tables = 0;
    let views = 0;
    let rows = 0;
    const skipped: string[] = [];
    for (const schema of schemas) {
      const [cdb] = await src.query(`SHOW CREATE DATABASE ${id(schema)}`);
      await dst.query(String((cdb as Array<Record<string, string>>)[0]?.['Create Database']));
      const [objs] = await src.query(
        'SELECT TABLE_NAME AS t, TABLE_TYPE AS k FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1',
        [schema],
      );
      const list = objs as Array<{ t: string; k: string }>;
      for (const o of list.filter((x) => x.k !== 'VIEW')) {
        const [ct] = await src.query(`SHOW CREATE TABLE ${id(schema)}.${id(o.t)}`);
        await dst.query(`USE ${id(schema)}`);
        await dst.query(String((ct as Array<Record<string, string>>)[0]?.['Create Table']));
        rows += await copyRows(src, dst, schema, o.t);
        tables++;
      }
      for (const o of list.filter((x) => x.k === 'VIEW')) {
        const [cv] = await src.query(`SHOW CREATE VIEW ${id(schema)}.${id(o.t)}`);
        await dst.query(`USE ${id(schema)}`);
        await dst.query(String((cv as Array<Record<string, string>>)[0]?.['Create View']));
        views++;
      }
      const [other] = await src.query(
        `SELECT 'routine' AS k, ROUTINE_NAME AS n FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?
         UNION ALL SELECT 'trigger', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?
         UNION ALL SELECT 'event', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?`,
        [schema, schema, schema],
      );
      for (const x of other as Array<{ k: string; n: string }>) skipped.push(`${x.k} ${schema}.${x.n}`);
    }
    await src.query('COMMIT');

    // Its own (diverged) binlog history goes; it continues from the snapshot's position.
    await dst.query('RESET MASTER');
    await dst.query('SET GLOBAL gtid_slave_pos = ?', [snapshotGtid]);
    return { snapshotGtid, schemas, tables, views, rows, skipped, ms: Date.now() - t0 };
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (/ACCESS_DENIED/.test(code)) {
      throw new MissingPrivilegeError(
        `Rebuild of ${node.nodeId} failed: ${(err as Error).message}. Grant the rebuild privileges (${REBUILD_GRANTS.join(', ')}) to ${login.user} and retry.`,
        { nodeId: node.nodeId, code },
        { cause: err },
      );
    }
    throw err;
  } finally {
    src.destroy();
    dst?.destroy();
  }
}

async function copyRows(
  src: mysql.Connection,
  dst: mysql.Connection,
  schema: string,
  table: string,
): Promise<number> {
  // The promise wrapper has no streaming query; its callback connection does.
  const core = (src as unknown as { connection: CoreConnection }).connection;
  const stream = core.query({ sql: `SELECT * FROM ${id(schema)}.${id(table)}`, rowsAsArray: true }).stream();
  let batch: unknown[][] = [];
  let n = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    await dst.query(`INSERT INTO ${id(schema)}.${id(table)} VALUES ?`, [batch]);
    n += batch.length;
    batch = [];
  };
  for await (const row of stream as AsyncIterable<unknown[]>) {
    batch.push(row);
    if (batch.length >= BATCH_ROWS) await flush();
  }
  await flush();
  return n;
}
