import type { NodeProbe, ReplicationStatus, SemiSyncStatus } from '../../core/types.ts';
import {
  type AdminSession,
  classifyError,
  type Endpoint,
  type Login,
  type Timeouts,
  withSession,
} from './connection.ts';

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

/**
 * The heartbeat row is written only within this long after the caller's last check that the node
 * is the recorded primary of the current epoch. A failover needs longer than this from claiming
 * the epoch to a writable candidate (its fence's head start, the VIP move and the last fence
 * check's connect timeout come first), so a heartbeat can never land on an old primary after
 * the candidate became writable, also not one delayed by a frozen server (SIGSTOP, then SIGCONT).
 */
export const HEARTBEAT_BOUND_MS = 250;

type Row = Record<string, unknown>;

const str = (v: unknown): string => (v === null || v === undefined ? '' : String(v));
const num = (v: unknown): number => (v === null || v === undefined || v === '' ? 0 : Number(v));
const bool = (v: unknown): boolean => v === 1 || v === '1' || v === 'ON' || v === true || v === 'Yes';

/** Parses one row of SHOW ALL SLAVES STATUS (MariaDB column names). */
export function parseReplicaRow(r: Row): ReplicationStatus {
  const sbm = r.Seconds_Behind_Master;
  const io = str(r.Slave_IO_Running);
  return {
    sourceHost: str(r.Master_Host),
    sourcePort: num(r.Master_Port),
    ioState: io === 'Yes' || io === 'Connecting' || io === 'Preparing' ? io : 'No',
    sqlRunning: str(r.Slave_SQL_Running) === 'Yes',
    lastIoErrno: num(r.Last_IO_Errno),
    lastIoError: str(r.Last_IO_Error),
    lastSqlErrno: num(r.Last_SQL_Errno),
    lastSqlError: str(r.Last_SQL_Error),
    secondsBehindMaster: sbm === null || sbm === undefined || sbm === '' ? null : Number(sbm),
    gtidIoPos: str(r.Gtid_IO_Pos),
    heartbeatsReceived: r.Slave_received_heartbeats === undefined ? null : num(r.Slave_received_heartbeats),
    heartbeatPeriodSeconds:
      r.Slave_heartbeat_period === undefined || r.Slave_heartbeat_period === null
        ? null
        : Number(r.Slave_heartbeat_period),
    usingGtid: str(r.Using_Gtid),
  };
}

/**
 * Probes one node with short timeouts. Never throws: an unreachable node is a fact for the
 * analysis, not an exception. The primary gets a heartbeat write guarded by read_only, so a
 * probe can never create an errant transaction on a node that is in fact a replica.
 */
export async function probeNode(target: ProbeTarget, login: Login, timeouts: Timeouts): Promise<NodeProbe> {
  const started = performance.now();
  try {
    return await withSession(target, login, timeouts, target.nodeId, async (s) => {
      const probe = await readNode(s, target);
      probe.probeMs = Math.round(performance.now() - started);
      return probe;
    });
  } catch (err) {
    return {
      nodeId: target.nodeId,
      reachable: false,
      error: classifyError(err),
      probeMs: Math.round(performance.now() - started),
    };
  }
}

/** Reads one node on an open session (the probe's queries and heartbeat); throws on any failure. */
export async function readNode(s: AdminSession, target: ProbeTarget): Promise<NodeProbe> {
  const [v] = await s.query(
    `SELECT @@server_id AS server_id, @@version AS version, @@read_only AS read_only, @@log_bin AS log_bin,
            @@log_slave_updates AS log_slave_updates, @@gtid_binlog_pos AS gtid_binlog_pos,
            @@gtid_current_pos AS gtid_current_pos, @@gtid_slave_pos AS gtid_slave_pos,
            @@rpl_semi_sync_master_enabled AS sm_enabled, @@rpl_semi_sync_slave_enabled AS ss_enabled,
            UNIX_TIMESTAMP(SYSDATE(6)) AS server_now,
            (SELECT COALESCE(MAX(TIMESTAMPDIFF(SECOND, trx_started, NOW())), 0) FROM information_schema.innodb_trx) AS longest_trx`,
  );
  if (!v) throw new Error('empty variables row');
  // The server's clock when this answer left it: bounds the heartbeat write below.
  const serverNow = Number(v.server_now);
  const readAt = performance.now();
  const status = await s.query<{ Variable_name: string; Value: string }>(
    `SHOW GLOBAL STATUS WHERE Variable_name IN
       ('Rpl_semi_sync_master_status','Rpl_semi_sync_master_clients','Rpl_semi_sync_slave_status')`,
  );
  const st = Object.fromEntries(status.map((r) => [r.Variable_name, r.Value]));
  const replicaRows = await s.query<Row>('SHOW ALL SLAVES STATUS');
  const semiSync: SemiSyncStatus = {
    masterEnabled: bool(v.sm_enabled),
    masterActive: bool(st.Rpl_semi_sync_master_status),
    masterClients: num(st.Rpl_semi_sync_master_clients),
    slaveEnabled: bool(v.ss_enabled),
    slaveActive: bool(st.Rpl_semi_sync_slave_status),
  };
  const probe: NodeProbe = {
    nodeId: target.nodeId,
    reachable: true,
    probeMs: 0,
    serverId: num(v.server_id),
    version: str(v.version),
    readOnly: bool(v.read_only),
    logBin: bool(v.log_bin),
    logSlaveUpdates: bool(v.log_slave_updates),
    gtidBinlogPos: str(v.gtid_binlog_pos),
    gtidCurrentPos: str(v.gtid_current_pos),
    gtidSlavePos: str(v.gtid_slave_pos),
    semiSync,
    longestTrxSeconds: num(v.longest_trx),
  };
  const first = replicaRows[0];
  if (first) probe.replication = parseReplicaRow(first);
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
  } else probe.heartbeatLagMs = await readHeartbeatLag(s);
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
async function writeHeartbeat(s: AdminSession, deadline: number): Promise<boolean> {
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
export async function ensureHeartbeatTable(s: AdminSession): Promise<void> {
  await s.execute('CREATE DATABASE IF NOT EXISTS failover_meta');
  await s.execute(
    `CREATE TABLE IF NOT EXISTS failover_meta.heartbeat (
       id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, server_id INT NOT NULL) ENGINE=InnoDB`,
  );
}

async function readHeartbeatLag(s: AdminSession): Promise<number | null> {
  try {
    const [row] = await s.query<{ lag_us: string | number | null }>(
      'SELECT TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) AS lag_us FROM failover_meta.heartbeat WHERE id = 1',
    );
    return row?.lag_us === null || row?.lag_us === undefined ? null : Math.round(Number(row.lag_us) / 1000);
  } catch {
    return null;
  }
}
