import {
  onNode,
  readReplication,
  readSemiSyncMaster,
  replicateFrom,
  setSemiSyncMaster,
  waitForGtid,
} from '../adapters/mysql/admin.ts';
import type { AdminSession, Login, Timeouts } from '../adapters/mysql/connection.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { timeouts } from '../failover/steps.ts';
import type { Runtime } from '../runtime.ts';
import { EVENT_TTL_SECONDS, OperatorRefusedError, requireNode, sleep } from './common.ts';
import { type RebuildResult, rebuildFromPrimary } from './rebuild.ts';

/** Transactions of one (domain, server_id) that the node has and the primary lacks. */
export interface ErrantEntry {
  domain: number;
  serverId: number;
  /** The node's last seq from that server in that domain. */
  nodeSeq: number;
  /** The primary's last seq from that server in that domain (0: none at all). */
  primarySeq: number;
  /** The node's last GTID of the entry, e.g. 0-1-107. */
  gtid: string;
}

export interface RejoinResult {
  report: string;
  cluster: string;
  node: string;
  primary: string;
  outcome: 'rejoined' | 'rebuilt' | 'refused';
  nodeGtid: { binlogPos: string; binlogState: string; slavePos: string };
  primaryGtid: { binlogPos: string; binlogState: string };
  errant: ErrantEntry[];
  /** Options offered when refused. */
  options?: string[];
  rebuild?: RebuildResult;
  replication?: { io: string; sql: boolean; caughtUp: boolean };
  /** Semi-sync on the primary after the rejoin (policy failover.semiSync): restored when it was off. */
  semiSync?: { enabledNow: boolean; active: boolean; clients: number };
  ms: number;
}

/**
 * Entries of the node's gtid_binlog_state (last seq per domain AND server_id) that the
 * primary's gtid_binlog_state does not reach. Positions (last GTID per domain) cannot show
 * these: an old primary's 0-1-105 looks "covered" by a new primary at 0-2-110, yet 0-1-105
 * never reached it. With gtid_strict_mode seqs grow per domain, so per (domain, server) the
 * last seq tells whether the primary has that server's transactions up to the node's.
 */
export function findErrantByState(nodeState: string, primaryState: string): ErrantEntry[] {
  const parse = (text: string) => {
    const m = new Map<string, { domain: number; serverId: number; seq: number }>();
    for (const raw of text.split(',')) {
      const e = /^\s*(\d+)-(\d+)-(\d+)\s*$/.exec(raw);
      if (!e) continue;
      const [domain, serverId, seq] = [Number(e[1]), Number(e[2]), Number(e[3])];
      const k = `${domain}-${serverId}`;
      if ((m.get(k)?.seq ?? -1) < seq) m.set(k, { domain, serverId, seq });
    }
    return m;
  };
  const mine = parse(nodeState);
  const theirs = parse(primaryState);
  const out: ErrantEntry[] = [];
  for (const [k, e] of mine) {
    const p = theirs.get(k)?.seq ?? 0;
    if (p < e.seq)
      out.push({
        domain: e.domain,
        serverId: e.serverId,
        nodeSeq: e.seq,
        primarySeq: p,
        gtid: `${k}-${e.seq}`,
      });
  }
  return out.sort((a, b) => a.domain - b.domain || a.serverId - b.serverId);
}

async function readGtidState(s: AdminSession) {
  const [r] = await s.query<{ b: string; st: string; sl: string; c: string; sid: string }>(
    'SELECT @@gtid_binlog_pos AS b, @@gtid_binlog_state AS st, @@gtid_slave_pos AS sl, @@gtid_current_pos AS c, @@server_id AS sid',
  );
  return {
    binlogPos: r?.b ?? '',
    binlogState: r?.st ?? '',
    slavePos: r?.sl ?? '',
    currentPos: r?.c ?? '',
    serverId: Number(r?.sid),
  };
}

/**
 * Semi-sync master back ON on the primary once a replica replicates from it (policy
 * failover.semiSync): a failover leaves it OFF where no replica could acknowledge (a 2-node
 * cluster), and the rejoined node is the replica that can. Waits briefly for the replica to
 * register as a semi-sync client.
 */
async function restoreSemiSync(
  c: ClusterConfig,
  primary: ClusterConfig['nodes'][number],
  admin: Login,
  t: Timeouts,
): Promise<{ enabledNow: boolean; active: boolean; clients: number }> {
  return onNode(primary.id, primary, admin, t, 'Rejoin (semi-sync on the primary)', async (s) => {
    const before = await readSemiSyncMaster(s);
    if (!before.enabled || before.waitPoint !== 'AFTER_SYNC')
      await setSemiSyncMaster(s, { enabled: true, timeoutMs: c.failover.semiSyncTimeoutMs });
    const until = Date.now() + 5000;
    let now = await readSemiSyncMaster(s);
    while ((!now.active || now.clients === 0) && Date.now() < until) {
      await sleep(100);
      now = await readSemiSyncMaster(s);
    }
    return { enabledNow: !before.enabled, active: now.active, clients: now.clients };
  });
}

/**
 * Brings `nodeId` (a returned former primary or any diverged node) back as a replica of the
 * current primary. It is made read-only first, so nothing new diverges while it is compared.
 * Nothing extra on it (every transaction it has is on the primary): gtid_slave_pos is set to
 * its gtid_current_pos and it replicates from the primary with GTID (slave_pos), threads
 * verified, and it leaves the needs-rejoin list. Errant transactions: refused with the list
 * and the options, unless `rebuild`, which copies the primary's data onto it first.
 */
export async function rejoinNode(
  rt: Runtime,
  c: ClusterConfig,
  nodeId: string,
  opts: { rebuild: boolean },
): Promise<RejoinResult> {
  const t0 = rt.now();
  const n = requireNode(c, nodeId);
  const state = await rt.store.getClusterState(c.name);
  const primaryId = state?.primaryId ?? c.primary;
  if (nodeId === primaryId) {
    throw new OperatorRefusedError(
      `${nodeId} is the current primary of ${c.name}: there is nothing to rejoin it to. Nothing was changed.`,
      { cluster: c.name, nodeId },
    );
  }
  if (state?.failoverInProgress) {
    throw new OperatorRefusedError(
      `${state.failoverInProgress.executionName} is in progress on ${c.name}: rejoin after it ended. Nothing was changed.`,
      { cluster: c.name },
    );
  }
  const p = requireNode(c, primaryId);
  const logins = await rt.logins(c);
  const t = timeouts(c);
  const primaryGtid = await onNode(p.id, p, logins.admin, t, 'Rejoin (read primary)', async (s) => {
    const g = await readGtidState(s);
    return { binlogPos: g.binlogPos, binlogState: g.binlogState };
  });

  // Fence first: from here on the node cannot diverge further while it is compared.
  const nodeGtid = await onNode(n.id, n, logins.admin, t, 'Rejoin (fence node)', async (s) => {
    await s.execute('SET GLOBAL read_only = ON');
    await s.execute('SET GLOBAL rpl_semi_sync_master_enabled = OFF');
    return readGtidState(s);
  });
  const errant = findErrantByState(nodeGtid.binlogState, primaryGtid.binlogState);
  const base = {
    cluster: c.name,
    node: nodeId,
    primary: primaryId,
    nodeGtid: {
      binlogPos: nodeGtid.binlogPos,
      binlogState: nodeGtid.binlogState,
      slavePos: nodeGtid.slavePos,
    },
    primaryGtid,
    errant,
  };
  const wasPrimary = state?.needsRejoin?.includes(nodeId) ?? false;

  if (errant.length > 0 && !opts.rebuild) {
    const ownOnly = errant.every((e) => e.serverId === nodeGtid.serverId);
    const options = [
      ...(wasPrimary && ownOnly
        ? [
            `If these are the transactions that waited for a semi-sync acknowledgement when ${nodeId} crashed (the unacknowledged tail), restart its mariadbd with --init-rpl-role=SLAVE: it truncates them from the binlog ("Successfully truncated binlog"), then run rejoin again.`,
          ]
        : []),
      `Rebuild it from ${primaryId} (its user data is replaced by a consistent copy of the primary's): serverless invoke -f rejoin --data '{"cluster":"${c.name}","node":"${nodeId}","rebuild":true}'`,
      `If the errant transactions must be kept, apply them on ${primaryId} by hand first (they are in ${nodeId}'s binlog), then rebuild.`,
    ];
    const report = [
      `rejoin of ${nodeId} to ${primaryId} REFUSED: ${nodeId} has ${errant.length} errant transaction set(s) the primary does not have`,
      ...errant.map(
        (e) =>
          `  domain ${e.domain}, server_id ${e.serverId}: ${nodeId} has up to ${e.gtid}, ${primaryId} ${e.primarySeq ? `only up to ${e.domain}-${e.serverId}-${e.primarySeq}` : 'none from that server'}`,
      ),
      `  ${nodeId} gtid_binlog_state ${nodeGtid.binlogState || '(empty)'}; ${primaryId} ${primaryGtid.binlogState || '(empty)'}`,
      `${nodeId} was left read-only and not replicating. Options:`,
      ...options.map((o, i) => `  ${i + 1}. ${o}`),
    ].join('\n');
    await rt.store.putEvent(
      {
        cluster: c.name,
        at: rt.now(),
        type: 'RejoinRefused',
        message: report.split('\n')[0]!,
        data: { nodeId, errant },
      },
      EVENT_TTL_SECONDS,
    );
    return { report, outcome: 'refused', ...base, options, ms: rt.now() - t0 };
  }

  let rebuild: RebuildResult | undefined;
  if (opts.rebuild) {
    rebuild = await rebuildFromPrimary({ ...p, nodeId: p.id }, { ...n, nodeId: n.id }, logins.admin);
  }
  const replication = await onNode(n.id, n, logins.admin, t, 'Rejoin (replicate)', async (s) => {
    await s.execute('STOP SLAVE', [], 10_000);
    // An old primary's gtid_slave_pos is stale (from before it was promoted): start from what it
    // has executed. After a rebuild it was set to the snapshot's position already.
    if (!rebuild) await s.execute('SET GLOBAL gtid_slave_pos = @@gtid_current_pos');
    await replicateFrom(s, p, logins.replication, { semiSync: c.failover.semiSync });
    const until = Date.now() + 10_000;
    let r = await readReplication(s);
    while (!(r?.ioState === 'Yes' && r.sqlRunning) && Date.now() < until) {
      if (r && (r.lastIoErrno || r.lastSqlErrno)) break;
      await sleep(100);
      r = await readReplication(s);
    }
    if (!(r?.ioState === 'Yes' && r.sqlRunning)) {
      throw new Error(
        `${nodeId} does not replicate from ${primaryId} after CHANGE MASTER: IO=${r?.ioState} SQL=${r?.sqlRunning} ${r?.lastIoErrno ? `IO error ${r.lastIoErrno}: ${r.lastIoError}` : ''} ${r?.lastSqlErrno ? `SQL error ${r.lastSqlErrno}: ${r.lastSqlError}` : ''}`.trim(),
      );
    }
    const caughtUp = await waitForGtid(s, primaryGtid.binlogPos, 10);
    return { io: r.ioState, sql: r.sqlRunning, caughtUp };
  });
  const semiSync = c.failover.semiSync ? await restoreSemiSync(c, p, logins.admin, t) : undefined;
  const listed = await rt.store.removeNeedsRejoin(c.name, nodeId);
  const outcome = rebuild ? 'rebuilt' : 'rejoined';
  const message = `${nodeId} ${outcome === 'rebuilt' ? 'rebuilt from and ' : ''}rejoined as a replica of ${primaryId}${listed ? ' (removed from needs-rejoin)' : ''}.`;
  await rt.store.putEvent(
    { cluster: c.name, at: rt.now(), type: 'NodeRejoined', message, data: { nodeId, outcome, rebuild } },
    EVENT_TTL_SECONDS,
  );
  await rt.notifier.notify({ cluster: c.name, severity: 'info', subject: `${nodeId} rejoined`, message });
  const lines = [
    `rejoin of ${nodeId}: ${outcome.toUpperCase()} as a replica of ${primaryId} in ${rt.now() - t0} ms`,
    `  ${nodeId} had gtid_binlog_pos ${nodeGtid.binlogPos || '(empty)'}; ${primaryId} ${primaryGtid.binlogPos || '(empty)'}`,
  ];
  if (errant.length)
    lines.push(`  errant transactions discarded by the rebuild: ${errant.map((e) => e.gtid).join(', ')}`);
  if (rebuild)
    lines.push(
      `  rebuild: ${rebuild.schemas.length} schema(s), ${rebuild.tables} table(s), ${rebuild.views} view(s), ${rebuild.rows} row(s) in ${rebuild.ms} ms from snapshot ${rebuild.snapshotGtid}${rebuild.skipped.length ? `; NOT copied: ${rebuild.skipped.join(', ')}` : ''}`,
    );
  lines.push(
    `  replication IO=${replication.io} SQL=${replication.sql ? 'Yes' : 'No'}, ${replication.caughtUp ? 'caught up with' : 'still catching up with'} ${primaryId}; read_only=ON`,
  );
  if (semiSync)
    lines.push(
      `  semi-sync on ${primaryId}: ${semiSync.enabledNow ? 'enabled again' : 'already enabled'}, ${semiSync.active ? 'active' : 'NOT active'} with ${semiSync.clients} semi-sync replica(s)`,
    );
  return {
    report: lines.join('\n'),
    outcome,
    ...base,
    ...(rebuild ? { rebuild } : {}),
    ...(semiSync ? { semiSync } : {}),
    replication,
    ms: rt.now() - t0,
  };
}
