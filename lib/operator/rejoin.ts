import { onInst, onNode } from '../adapters/mysql/admin.ts';
import { type CloneOutcome, cloneNode } from '../adapters/mysql/clone-node.ts';
import type { Login, Timeouts } from '../adapters/mysql/connection.ts';
import { type MysqlRejoinPlan, planMysqlRejoin } from '../adapters/mysql/dialect/rejoin-plan.ts';
import type { GtidPositions, ServerVersion } from '../adapters/mysql/dialect/types.ts';
import { type OpsClock, openInst } from '../adapters/mysql/operations.ts';
import { type RebuildResult, rebuildFromPrimary } from '../adapters/mysql/rebuild.ts';
import type { ClusterConfig } from '../config/schema.ts';
import { instClock, sourceOf, timeouts } from '../failover/steps.ts';
import type { Runtime } from '../runtime.ts';
import { EVENT_TTL_SECONDS, OperatorRefusedError, requireNode } from './common.ts';

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
  /** 'cloned': MySQL, the node cloned the primary and restarts; run rejoin again (no rebuild) once it is up. */
  outcome: 'rejoined' | 'rebuilt' | 'cloned' | 'refused';
  nodeGtid: { binlogPos: string; binlogState: string; slavePos: string };
  primaryGtid: { binlogPos: string; binlogState: string };
  /** MariaDB: errant (domain, server_id) entries. Empty on MySQL: see `mysql`. */
  errant: ErrantEntry[];
  /** MySQL: the decision on GTID sets (errant by GTID_SUBTRACT, purged, or follow). */
  mysql?: MysqlRejoinPlan;
  /** Options offered when refused. */
  options?: string[];
  rebuild?: RebuildResult;
  /** MySQL rebuild by CLONE INSTANCE: how the clone ended. */
  clone?: CloneOutcome;
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

/** A node's GTID facts as the rejoin reads them, for either flavor. */
export interface RejoinGtid {
  flavor: 'mariadb' | 'mysql';
  version: ServerVersion;
  /** MariaDB gtid_binlog_pos; MySQL gtid_executed. */
  binlogPos: string;
  /** MariaDB gtid_binlog_state; '' on MySQL. */
  binlogState: string;
  /** MariaDB gtid_slave_pos; '' on MySQL. */
  slavePos: string;
  /** MySQL gtid_purged; '' on MariaDB. */
  purged: string;
  executed: string;
  serverId: number;
}

function rejoinGtid(g: GtidPositions, version: ServerVersion): RejoinGtid {
  return {
    flavor: g.flavor,
    version,
    binlogPos: g.binlog ?? g.executed,
    binlogState: g.binlogState ?? '',
    slavePos: g.slave ?? '',
    purged: g.purged,
    executed: g.executed,
    serverId: g.serverId ?? 0,
  };
}

/** What rejoin decides from the two nodes' GTIDs (pure): follow, or refuse with the reason and options. */
export type RejoinDecision =
  | { kind: 'follow'; errant: ErrantEntry[]; mysql?: MysqlRejoinPlan }
  | { kind: 'refuse'; errant: ErrantEntry[]; mysql?: MysqlRejoinPlan; reason: string; options: string[] };

/**
 * Decides whether `nodeId` may follow `primaryId` on their GTIDs alone. MariaDB: errant
 * (domain, server_id) entries of gtid_binlog_state ({@link findErrantByState}). MySQL:
 * GTID_SUBTRACT of the gtid_executed sets, and what the primary purged ({@link planMysqlRejoin}).
 * A node of the other flavor than the primary is refused: their GTIDs cannot be compared.
 */
export function decideRejoin(
  c: Pick<ClusterConfig, 'name'>,
  nodeId: string,
  primaryId: string,
  nodeGtid: RejoinGtid,
  primaryGtid: RejoinGtid,
  wasPrimary: boolean,
): RejoinDecision {
  if (nodeGtid.flavor !== primaryGtid.flavor) {
    const name = (f: string) => (f === 'mysql' ? 'MySQL' : 'MariaDB');
    return {
      kind: 'refuse',
      errant: [],
      reason: `${nodeId} runs ${name(nodeGtid.flavor)} and ${primaryId} ${name(primaryGtid.flavor)}: a mixed cluster cannot replicate safely (their GTIDs cannot be compared)`,
      options: [`Run one flavor on every node of ${c.name}, then rejoin ${nodeId}.`],
    };
  }
  if (nodeGtid.flavor === 'mysql') {
    const plan = planMysqlRejoin({
      nodeId,
      primaryId,
      nodeExecuted: nodeGtid.executed,
      primaryExecuted: primaryGtid.executed,
      primaryPurged: primaryGtid.purged,
      nodeVersion: nodeGtid.version,
    });
    return plan.kind === 'follow'
      ? { kind: 'follow', errant: [], mysql: plan }
      : { kind: 'refuse', errant: [], mysql: plan, reason: plan.reason, options: plan.options };
  }
  const errant = findErrantByState(nodeGtid.binlogState, primaryGtid.binlogState);
  if (errant.length === 0) return { kind: 'follow', errant };
  const ownOnly = errant.every((e) => e.serverId === nodeGtid.serverId);
  return {
    kind: 'refuse',
    errant,
    reason: `${nodeId} has ${errant.length} errant transaction set(s) the primary does not have`,
    options: [
      ...(wasPrimary && ownOnly
        ? [
            `If these are the transactions that waited for a semi-sync acknowledgement when ${nodeId} crashed (the unacknowledged tail), restart its mariadbd with --init-rpl-role=SLAVE: it truncates them from the binlog ("Successfully truncated binlog"), then run rejoin again.`,
          ]
        : []),
      `Rebuild it from ${primaryId} (its user data is replaced by a consistent copy of the primary's): serverless invoke -f rejoin --data '{"cluster":"${c.name}","node":"${nodeId}","rebuild":true}'`,
      `If the errant transactions must be kept, apply them on ${primaryId} by hand first (they are in ${nodeId}'s binlog), then rebuild.`,
    ],
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
  clock: OpsClock,
): Promise<{ enabledNow: boolean; active: boolean; clients: number }> {
  return onInst(
    primary.id,
    primary,
    admin,
    t,
    'Rejoin (semi-sync on the primary)',
    async (inst) => {
      const before = await inst.readSemiSync();
      if (!before.masterEnabled || before.waitPoint !== 'AFTER_SYNC')
        await inst.enableSemiSyncPrimary({ timeoutMs: c.failover.semiSyncTimeoutMs });
      const until = clock.now() + 5000;
      let now = await inst.readSemiSync();
      while ((!now.masterActive || now.masterClients === 0) && clock.now() < until) {
        await clock.sleep(100);
        now = await inst.readSemiSync();
      }
      return { enabledNow: !before.masterEnabled, active: now.masterActive, clients: now.masterClients };
    },
    clock,
  );
}

/** How long rejoin waits for CLONE INSTANCE to return (the function's own timeout is 900 s). */
const CLONE_WAIT_MS = 840_000;

/**
 * Brings `nodeId` (a returned former primary or any diverged node) back as a replica of the
 * current primary. It is made read-only first, so nothing new diverges while it is compared.
 * Nothing extra on it (every transaction it has is on the primary, {@link decideRejoin}): it
 * follows the primary with GTID auto-positioning from what it executed itself (MariaDB:
 * gtid_slave_pos = gtid_current_pos first), threads verified, and it leaves the needs-rejoin
 * list. Errant transactions: refused with the list and the options, unless `rebuild` (MariaDB),
 * which copies the primary's data onto it first. Speaks each node's dialect (named operations).
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
  const clock = instClock(rt);
  const primaryFacts = await onInst(
    p.id,
    p,
    logins.admin,
    t,
    'Rejoin (read primary)',
    async (inst) => rejoinGtid(await inst.readGtidPosition(), inst.dialect.version),
    clock,
  );
  const primaryGtid = { binlogPos: primaryFacts.binlogPos, binlogState: primaryFacts.binlogState };

  // Fence first: from here on the node cannot diverge further while it is compared.
  const nodeGtid = await onInst(
    n.id,
    n,
    logins.admin,
    t,
    'Rejoin (fence node)',
    async (inst) => {
      await inst.setReadOnly(true);
      await inst.disableSemiSyncPrimary();
      return rejoinGtid(await inst.readGtidPosition(), inst.dialect.version);
    },
    clock,
  );
  const wasPrimary = state?.needsRejoin?.includes(nodeId) ?? false;
  const decision = decideRejoin(c, nodeId, primaryId, nodeGtid, primaryFacts, wasPrimary);
  const errant = decision.errant;
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
    ...(decision.mysql ? { mysql: decision.mysql } : {}),
  };
  // A rebuild cures errant or purged history (MariaDB: the logical copy of rebuild.ts; MySQL:
  // CLONE INSTANCE), never a mixed pair.
  const mustRefuse = decision.kind === 'refuse' && (!opts.rebuild || nodeGtid.flavor !== primaryFacts.flavor);
  if (decision.kind === 'refuse' && mustRefuse) {
    const options = decision.options;
    const report = [
      `rejoin of ${nodeId} to ${primaryId} REFUSED: ${decision.reason}`,
      ...errant.map(
        (e) =>
          `  domain ${e.domain}, server_id ${e.serverId}: ${nodeId} has up to ${e.gtid}, ${primaryId} ${e.primarySeq ? `only up to ${e.domain}-${e.serverId}-${e.primarySeq}` : 'none from that server'}`,
      ),
      nodeGtid.flavor === 'mysql'
        ? `  ${nodeId} gtid_executed ${nodeGtid.executed || '(empty)'}; ${primaryId} ${primaryFacts.executed || '(empty)'}`
        : `  ${nodeId} gtid_binlog_state ${nodeGtid.binlogState || '(empty)'}; ${primaryId} ${primaryGtid.binlogState || '(empty)'}`,
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
  if (opts.rebuild && nodeGtid.flavor === 'mysql') {
    // MySQL: the clone plugin replaces data and GTID history at once (8.0.17+, same version on
    // both). The node restarts; a second rejoin (no rebuild) then finds nothing errant and follows.
    const clone = await onNode(n.id, n, logins.admin, t, 'Rejoin (clone)', async (s) => {
      const inst = await openInst(s, n.id, clock);
      return cloneNode(s, {
        nodeId,
        recipient: inst.dialect.version,
        donor: primaryFacts.version,
        source: { ...sourceOf(p, logins.admin), nodeId: primaryId },
        quote: inst.quote,
        timeoutMs: CLONE_WAIT_MS,
      });
    });
    const next =
      clone === 'restarting'
        ? `${nodeId} restarts with ${primaryId}'s data and GTID history; once it answers, run rejoin again without rebuild: it follows ${primaryId}.`
        : clone === 'restart-by-hand'
          ? `${nodeId} holds ${primaryId}'s data but no supervisor restarts it (error 3707): start its mysqld by hand, then run rejoin again without rebuild.`
          : `The clone did not end within ${CLONE_WAIT_MS / 1000} s and may still run: watch performance_schema.clone_status on ${nodeId}; when it shows Completed and the node restarted, run rejoin again without rebuild.`;
    const message = `${nodeId} cloned from ${primaryId} (${clone}). ${next}`;
    await rt.store.putEvent(
      { cluster: c.name, at: rt.now(), type: 'NodeCloned', message, data: { nodeId, clone } },
      EVENT_TTL_SECONDS,
    );
    return {
      report: [
        `rejoin of ${nodeId}: CLONED from ${primaryId} in ${rt.now() - t0} ms (CLONE INSTANCE, ${clone})`,
        ...(decision.mysql?.kind === 'errant'
          ? [`  errant transactions discarded by the clone: ${decision.mysql.errant}`]
          : []),
        `  ${next}`,
        `  check my.cnf on ${nodeId} has read_only=ON and super_read_only=ON: the restarted server reads them from there.`,
      ].join('\n'),
      outcome: 'cloned',
      ...base,
      clone,
      ms: rt.now() - t0,
    };
  }
  if (opts.rebuild) {
    rebuild = await rebuildFromPrimary({ ...p, nodeId: p.id }, { ...n, nodeId: n.id }, logins.admin);
  }
  const replication = await onInst(
    n.id,
    n,
    logins.admin,
    t,
    'Rejoin (replicate)',
    async (inst) => {
      await inst.stopReplication();
      // An old primary's replication position is stale (from before it was promoted): start from
      // what it has executed. After a rebuild it was set to the snapshot's position already.
      if (!rebuild) await inst.adoptOwnGtidHistory();
      await inst.followPrimary(sourceOf(p, logins.replication), { semiSync: c.failover.semiSync });
      // ReplicationNotRunningError names the IO and SQL errors (fails fast on 1236 and the like).
      const r = await inst.waitReplicationRunning(10_000, 100);
      const caughtUp = (await inst.applyRelayLog(primaryFacts.binlogPos, 10)) === 'reached';
      return { io: r.ioState, sql: r.sqlRunning, caughtUp };
    },
    clock,
  );
  const semiSync = c.failover.semiSync ? await restoreSemiSync(c, p, logins.admin, t, clock) : undefined;
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
    `  ${nodeId} had ${nodeGtid.flavor === 'mysql' ? 'gtid_executed' : 'gtid_binlog_pos'} ${nodeGtid.binlogPos || '(empty)'}; ${primaryId} ${primaryGtid.binlogPos || '(empty)'}`,
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
