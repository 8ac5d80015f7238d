import { isClonePluginActive } from '../adapters/mysql/clone-node.ts';
import { classifyError, type Login, type Timeouts, withSession } from '../adapters/mysql/connection.ts';
import { CLONE_GRANTS, INSTALL_CLONE_PLUGIN } from '../adapters/mysql/dialect/clone.ts';
import { checkFlavorMix } from '../adapters/mysql/dialect/flavor.ts';
import type { Dialect, Flavor } from '../adapters/mysql/dialect/types.ts';
import { ANY_DIALECT_WORDS } from '../adapters/mysql/dialect/vocabulary.ts';
import { type Inst, openInst, type SqlSession } from '../adapters/mysql/operations.ts';
import type { ClusterConfig, NodeConfig } from '../config/schema.ts';
import type { ReplicationStatus } from '../core/types.ts';
import type { ClusterState } from '../ports.ts';
import type { Runtime } from '../runtime.ts';
import { formatTable } from './common.ts';
import { ADMIN_SCHEMA, missingGlobalGrants, missingTableGrants, parseGrants } from './grants.ts';

export type Severity = 'error' | 'warning' | 'info';

export interface CheckFinding {
  severity: Severity;
  /** Short name of the check, e.g. "admin-grants", "read-only". */
  check: string;
  nodeId?: string;
  message: string;
  /** What to do about it. */
  fix: string;
}

export interface NodeFacts {
  nodeId: string;
  role: 'primary' | 'replica';
  adminConnect: boolean;
  replicationConnect: boolean;
  serverId?: number;
  version?: string;
  readOnly?: boolean;
  logBin?: boolean;
  logSlaveUpdates?: boolean;
  gtidStrictMode?: boolean;
  binlogFormat?: string;
  semiSyncMaster?: boolean;
  semiSyncSlave?: boolean;
  filters?: Record<string, string>;
  replication?: Pick<ReplicationStatus, 'sourceHost' | 'sourcePort' | 'ioState' | 'sqlRunning' | 'usingGtid'>;
  /** Detected from @@version / @@version_comment. */
  flavor?: Flavor;
  versionComment?: string;
  /** Everything it executed (MariaDB gtid_current_pos, MySQL gtid_executed), for the errant check. */
  gtidExecuted?: string;
  /**
   * The semi-sync timeout variable under the plugin it runs: rpl_semi_sync_master_timeout
   * (MariaDB, MySQL master/slave plugins) or rpl_semi_sync_source_timeout (MySQL 8.0.26+ plugins).
   */
  semiSyncTimeoutVariable?: string;
}

/** Runs `fn` on a session to node `n` as `login`: a real connection in checkCluster, a scripted one in tests. */
export type WithNodeSession = <T>(
  n: NodeConfig,
  login: Login,
  fn: (s: SqlSession) => Promise<T>,
) => Promise<T>;

/** What {@link inspectNodes} found: per-node facts, findings and the checks that passed. */
export interface NodeInspection {
  nodes: NodeFacts[];
  findings: CheckFinding[];
  passed: string[];
}

export interface CheckResult {
  report: string;
  cluster: string;
  primary: string;
  /** True when no finding is an error: a failover or switchover has what it needs. */
  ok: boolean;
  errors: number;
  warnings: number;
  findings: CheckFinding[];
  /** Checks that ran and found nothing. */
  passed: string[];
  nodes: NodeFacts[];
  vip: { provider: string; holder?: string; dryRun?: string };
}

/**
 * Pre-flight verification of a cluster, like masterha_check_repl: on every node the admin and
 * replication accounts connect and hold the privileges the failover steps use, binary logging
 * with log_slave_updates, GTID strict mode, replicas read-only and replicating from the primary
 * over GTID, unique server_ids, semi-sync as configured, the same replication filters, and the
 * VIP provider answering (plus a DryRun where the API offers one). Reads only.
 */
export async function checkCluster(rt: Runtime, c: ClusterConfig): Promise<CheckResult> {
  const state = await rt.store.getClusterState(c.name);
  const primary = state?.primaryId ?? c.primary;
  const logins = await rt.logins(c);
  const t: Timeouts = {
    connectTimeoutMs: Math.max(c.detection.connectTimeoutMs, 2000),
    queryTimeoutMs: Math.max(c.detection.queryTimeoutMs, 3000),
  };
  const withNode: WithNodeSession = (n, login, fn) =>
    withSession({ host: n.host, port: n.port }, login, t, n.id, fn);
  const inspected = await inspectNodes(c, primary, logins, withNode, state);
  const findings: CheckFinding[] = [...inspected.findings];
  const passed = new Set<string>(inspected.passed);
  const add = (f: CheckFinding) => findings.push(f);
  const pass = (check: string) => passed.add(check);
  const nodes = inspected.nodes;

  if (state?.needsRejoin?.length) {
    add({
      severity: 'warning',
      check: 'needs-rejoin',
      message: `${state.needsRejoin.join(', ')} ${state.needsRejoin.length > 1 ? 'are former primaries' : 'is a former primary'} not rejoined yet: not a failover candidate until then`,
      fix: `serverless invoke -f rejoin --data '{"cluster":"${c.name}","node":"${state.needsRejoin[0]}"}'`,
    });
  }
  checkFencing(c, nodes, add, pass);
  if (state?.blockedUntil && state.blockedUntil > rt.now()) {
    add({
      severity: 'info',
      check: 'anti-flap-block',
      message: `automatic failover is blocked until ${new Date(state.blockedUntil).toISOString()}`,
      fix: `After checking the cluster: serverless invoke -f acknowledge --data '{"cluster":"${c.name}"}'`,
    });
  }

  const vip = await checkVip(rt, c, primary, state?.failoverInProgress !== undefined, add, pass);
  // The EC2 and Lambda clients of these checks load here, not at the function's import.
  const { checkFailoverActions } = await import('./check-failover-actions.ts');
  await checkFailoverActions(c, add, pass);

  const errors = findings.filter((f) => f.severity === 'error').length;
  const warnings = findings.filter((f) => f.severity === 'warning').length;
  const order: Record<Severity, number> = { error: 0, warning: 1, info: 2 };
  findings.sort((a, b) => order[a.severity] - order[b.severity]);
  const lines = [
    `check of cluster ${c.name} (primary ${primary}): ${errors === 0 ? 'OK' : 'NOT READY'} — ${errors} error(s), ${warnings} warning(s)`,
    ...formatTable(
      ['node', 'role', 'server_id', 'ro', 'log_bin', 'slave_upd', 'strict', 'semi m/s', 'replication'],
      nodes.map((n) => [
        n.nodeId,
        n.role,
        n.serverId === undefined ? '-' : String(n.serverId),
        flag(n.readOnly),
        flag(n.logBin),
        flag(n.logSlaveUpdates),
        flag(n.gtidStrictMode),
        `${flag(n.semiSyncMaster)}/${flag(n.semiSyncSlave)}`,
        n.replication
          ? `${n.replication.sourceHost}:${n.replication.sourcePort} io=${n.replication.ioState} sql=${n.replication.sqlRunning ? 'Yes' : 'No'} gtid=${n.replication.usingGtid}`
          : n.adminConnect
            ? '-'
            : 'UNREACHABLE',
      ]),
    ),
    `VIP ${c.vip.provider}${vip.holder ? ` on ${vip.holder}` : ''}${vip.dryRun ? ` (${vip.dryRun})` : ''}`,
  ];
  for (const f of findings) {
    lines.push(
      `${f.severity.toUpperCase().padEnd(7)} ${f.check}${f.nodeId ? ` [${f.nodeId}]` : ''}: ${f.message}`,
    );
    lines.push(`        fix: ${f.fix}`);
  }
  lines.push(`passed: ${[...passed].join(', ') || '-'}`);
  return {
    report: lines.join('\n'),
    cluster: c.name,
    primary,
    ok: errors === 0,
    errors,
    warnings,
    findings,
    passed: [...passed],
    nodes,
    vip,
  };
}

/**
 * The node part of `check`, on whatever sessions `withNode` opens: every node's accounts,
 * grants (the list its dialect needs), binary log and GTID settings, read-only state, replication
 * and semi-sync, in its own dialect (MariaDB, MySQL 5.7, 8.0, 8.4); then what only the whole
 * cluster shows: one flavor on every node, unique server_ids, the same filters, and replicas
 * with transactions the primary lacks (errant, by the flavor's GTID algebra). Reads only.
 */
export async function inspectNodes(
  c: ClusterConfig,
  primary: string,
  logins: { admin: Login; replication: Login },
  withNode: WithNodeSession,
  state?: Pick<ClusterState, 'needsRejoin'>,
): Promise<NodeInspection> {
  const findings: CheckFinding[] = [];
  const passed = new Set<string>();
  const add = (f: CheckFinding) => findings.push(f);
  const pass = (check: string) => passed.add(check);

  const nodes = await Promise.all(c.nodes.map((n) => checkNode(c, n, primary, logins, withNode, add, pass)));

  const mix = checkFlavorMix(
    nodes.map((n) => ({
      nodeId: n.nodeId,
      ...(n.version === undefined ? {} : { version: n.version }),
      ...(n.versionComment === undefined ? {} : { versionComment: n.versionComment }),
    })),
    primary,
  );
  if (mix.kind === 'refused') {
    add({
      severity: 'error',
      check: 'flavor',
      message: mix.reason,
      fix: 'Run one server flavor (all MariaDB or all MySQL) on every node of the cluster; failover refuses a mixed one.',
    });
  } else if (mix.kind === 'ok') pass(`one flavor (${mix.flavor === 'mysql' ? 'MySQL' : 'MariaDB'})`);
  for (const w of mix.warnings) {
    if (w.includes('not reachable')) continue; // reported as admin-connect already
    add({
      severity: 'warning',
      check: 'flavor',
      message: w,
      fix: "Keep replicas at the primary's version or newer.",
    });
  }
  if (mix.kind !== 'refused') await checkErrant(c, primary, nodes, logins.admin, withNode, state, add, pass);

  // Cluster-wide consistency.
  const byServerId = new Map<number, string[]>();
  for (const n of nodes)
    if (n.serverId !== undefined)
      byServerId.set(n.serverId, [...(byServerId.get(n.serverId) ?? []), n.nodeId]);
  let dupes = false;
  for (const [id, ids] of byServerId) {
    if (ids.length > 1) {
      dupes = true;
      add({
        severity: 'error',
        check: 'server-id',
        message: `server_id ${id} is used by ${ids.join(', ')}: replication silently skips events from "itself"`,
        fix: 'Give every node a unique server_id in its my.cnf and restart it.',
      });
    }
  }
  if (!dupes && byServerId.size > 0) pass('server-id unique');
  const filterSets = nodes
    .filter((n) => n.filters)
    .map((n) => ({ id: n.nodeId, key: JSON.stringify(n.filters) }));
  const distinct = new Set(filterSets.map((f) => f.key));
  if (distinct.size > 1) {
    add({
      severity: 'warning',
      check: 'replication-filters',
      message: `replication filters differ between nodes: ${nodes
        .filter((n) => n.filters)
        .map((n) => `${n.nodeId} ${describeFilters(n.filters!)}`)
        .join('; ')}`,
      fix: 'Use the same replicate_* / binlog_*_db settings on every node: after a failover the new primary would otherwise ship a different set of changes.',
    });
  } else if (filterSets.length > 0) pass('replication filters consistent');

  return { nodes, findings, passed: [...passed] };
}

/**
 * Replicas holding transactions the primary lacks: errant = what a replica executed minus what
 * the primary executed (MySQL: GTID_SUBTRACT semantics on the sets; MariaDB: per-domain
 * positions). The primary is read AFTER the replicas, so a replica that merely received the
 * primary's newest writes between the two reads is never taken for errant.
 */
async function checkErrant(
  c: ClusterConfig,
  primary: string,
  nodes: readonly NodeFacts[],
  admin: Login,
  withNode: WithNodeSession,
  state: Pick<ClusterState, 'needsRejoin'> | undefined,
  add: (f: CheckFinding) => void,
  pass: (check: string) => void,
): Promise<void> {
  const p = c.nodes.find((n) => n.id === primary);
  const replicas = nodes.filter(
    (n) =>
      n.nodeId !== primary && n.gtidExecuted !== undefined && !(state?.needsRejoin ?? []).includes(n.nodeId),
  );
  if (!p || replicas.length === 0) return;
  let fresh: { executed: string; gtid: Dialect['gtid'] };
  try {
    fresh = await withNode(p, admin, async (s) => {
      const inst = await openInst(s, p.id);
      return { executed: (await inst.readGtidPosition()).executed, gtid: inst.dialect.gtid };
    });
  } catch {
    return; // the primary's own findings say why it cannot be read
  }
  let clean = true;
  for (const r of replicas) {
    const errant = fresh.gtid.errant(r.gtidExecuted ?? '', [fresh.executed]);
    if (errant.count === 0) continue;
    clean = false;
    add({
      severity: 'error',
      check: 'errant-transactions',
      nodeId: r.nodeId,
      message: `has ${errant.count} transaction(s) the primary ${primary} does not have (${errant.description}): it cannot be promoted safely, and a failover to it would serve them to everyone`,
      fix: `serverless invoke -f rejoin --data '{"cluster":"${c.name}","node":"${r.nodeId}"}' (it refuses and lists the options: rebuild, or apply them on ${primary} first).`,
    });
  }
  if (clean) pass('no errant transactions');
}

/**
 * A replica's heartbeat period bounds what its silence can prove: a quiet primary (no writes)
 * sends it nothing for a whole period, so the analysis only counts "the replicas stopped
 * receiving" after 1.2 periods. A period longer than the confirmation window means a hung or
 * cut-off primary is confirmed late, or (beyond the monitor's 10 s of history) only once the
 * replica's IO thread gives up after slave_net_timeout. MariaDB's default is slave_net_timeout/2,
 * 30 s.
 */
function checkHeartbeatPeriod(
  c: ClusterConfig,
  n: NodeConfig,
  w: Words,
  periodSeconds: number | null | undefined,
  netTimeout: number,
  add: (f: CheckFinding) => void,
  pass: (check: string) => void,
): void {
  if (typeof periodSeconds !== 'number' || !Number.isFinite(periodSeconds)) return;
  const windowMs = c.detection.confirmWindowMs;
  const timeoutText = Number.isFinite(netTimeout) ? ` (${w.netTimeout} ${netTimeout} s)` : '';
  if (periodSeconds * 1000 > windowMs) {
    add({
      severity: 'error',
      check: 'heartbeat-period',
      nodeId: n.id,
      message: `heartbeat period ${periodSeconds} s${timeoutText} is longer than the detection window of ${windowMs} ms (detection.confirmWindowMs): a quiet primary sends this replica nothing for ${periodSeconds} s, so its silence proves nothing and a hung or cut-off primary is confirmed only after ~${Math.max(windowMs / 1000, periodSeconds * 1.2).toFixed(1)} s or once the IO thread gives up`,
      fix: `On ${n.id}: ${w.stop}; ${w.change} ${w.opt}_HEARTBEAT_PERIOD=1; ${w.start}; and SET GLOBAL ${w.netTimeout}=3 (also in its my.cnf: ${w.netTimeout}=3).`,
    });
  } else pass('heartbeat period');
}

/** How the node's dialect spells what the fixes ask the operator to run. */
interface Words {
  stop: string;
  start: string;
  change: string;
  opt: 'MASTER' | 'SOURCE';
  netTimeout: string;
  autoPosition: string;
  resetAll: string;
}

function wordsOf(d: Dialect): Words {
  const modern = d.name === 'mysql8';
  const renamed =
    d.version.flavor === 'mysql' && d.version.major >= 8 && (d.version.minor > 0 || d.version.patch >= 26);
  return {
    stop: d.stopReplication().sql,
    start: d.startReplication().sql,
    change: modern ? 'CHANGE REPLICATION SOURCE TO' : 'CHANGE MASTER TO',
    opt: modern ? 'SOURCE' : 'MASTER',
    netTimeout: renamed ? 'replica_net_timeout' : 'slave_net_timeout',
    autoPosition:
      d.version.flavor === 'mariadb'
        ? 'MASTER_USE_GTID=slave_pos'
        : `${modern ? 'SOURCE' : 'MASTER'}_AUTO_POSITION=1`,
    resetAll: d.resetReplicaAll().sql,
  };
}

function flag(v: boolean | undefined): string {
  return v === undefined ? '?' : v ? 'ON' : 'OFF';
}

function describeFilters(f: Record<string, string>): string {
  const set = Object.entries(f).filter(([, v]) => v !== '');
  return set.length ? set.map(([k, v]) => `${k}=${v}`).join(' ') : '(none)';
}

async function checkNode(
  c: ClusterConfig,
  n: NodeConfig,
  primaryId: string,
  logins: { admin: Login; replication: Login },
  withNode: WithNodeSession,
  add: (f: CheckFinding) => void,
  pass: (check: string) => void,
): Promise<NodeFacts> {
  const role = n.id === primaryId ? 'primary' : 'replica';
  const facts: NodeFacts = { nodeId: n.id, role, adminConnect: false, replicationConnect: false };
  try {
    await withNode(n, logins.admin, async (s) => {
      facts.adminConnect = true;
      const clonePlugin = () => isClonePluginActive(s, n.id);
      await readAdminFacts(c, n, primaryId, await openInst(s, n.id), facts, logins, add, pass, clonePlugin);
    });
  } catch (err) {
    if (!facts.adminConnect) {
      const e = classifyError(err);
      add({
        severity: 'error',
        check: 'admin-connect',
        nodeId: n.id,
        message: `cannot connect as ${logins.admin.user} to ${n.host}:${n.port}: ${e.code} ${e.message}`,
        fix:
          e.kind === 'auth'
            ? `Check the account ${logins.admin.user}@<functions' address> and its password reference.`
            : "Check that the server runs and that the functions' security group / network reaches the port.",
      });
    } else {
      add({
        severity: 'error',
        check: 'admin-queries',
        nodeId: n.id,
        message: `checks failed after connecting: ${(err as Error).message}`,
        fix: 'See the message; the admin account may lack a privilege named there.',
      });
    }
  }
  try {
    await withNode(n, logins.replication, async (s) => {
      facts.replicationConnect = true;
      const inst = await openInst(s, n.id);
      const grants = parseGrants(await inst.readGrants());
      const missing = missingGlobalGrants(grants, inst.dialect.replicationGrants());
      if (missing.length) {
        add({
          severity: 'error',
          check: 'replication-grants',
          nodeId: n.id,
          message: `${logins.replication.user} lacks ${missing.join(', ')}: replicas cannot replicate from ${n.id} once it is primary`,
          fix: `GRANT ${missing.join(', ')} ON *.* TO '${logins.replication.user}'@'<replica hosts>';`,
        });
      } else pass('replication account');
    });
  } catch (err) {
    const e = classifyError(err);
    add({
      severity: 'error',
      check: 'replication-connect',
      nodeId: n.id,
      message: `cannot connect as ${logins.replication.user}: ${e.code} ${e.message}`,
      fix: `Create the replication account on ${n.id} (it replicates from the primary like every account) and check its password reference.`,
    });
  }
  return facts;
}

async function readAdminFacts(
  c: ClusterConfig,
  n: NodeConfig,
  primaryId: string,
  inst: Inst,
  facts: NodeFacts,
  logins: { admin: Login; replication: Login },
  add: (f: CheckFinding) => void,
  pass: (check: string) => void,
  clonePlugin: () => Promise<boolean>,
): Promise<void> {
  const d = inst.dialect;
  const w = wordsOf(d);
  const mysql = d.version.flavor === 'mysql';
  facts.flavor = d.version.flavor;
  // Versions first: the flavor check needs them even when a later read fails.
  const v = await inst.readServerSettings();
  facts.serverId = v.serverId;
  facts.version = v.version;
  facts.versionComment = v.versionComment;
  const grants = parseGrants(await inst.readGrants());
  const needs = d.adminGrants();
  const missing = missingGlobalGrants(
    grants,
    needs.map((g) => g.privilege),
  );
  for (const p of missing) {
    add({
      severity: 'error',
      check: 'admin-grants',
      nodeId: n.id,
      message: `${logins.admin.user} lacks ${p}, needed for ${needs.find((g) => g.privilege === p)?.usedFor ?? 'the failover steps'}`,
      fix: `GRANT ${p} ON *.* TO '${logins.admin.user}'@'<functions' hosts>';`,
    });
  }
  const meta = grants.get(`${ADMIN_SCHEMA}.*`);
  const global = grants.get('*.*');
  if (!meta?.has('ALL') && !global?.has('ALL')) {
    add({
      severity: 'warning',
      check: 'admin-grants',
      nodeId: n.id,
      message: `${logins.admin.user} has no ALL PRIVILEGES ON ${ADMIN_SCHEMA}.*: the heartbeat write fails and replica lag is measured by Seconds_Behind_Master only`,
      fix: `GRANT ALL PRIVILEGES ON ${ADMIN_SCHEMA}.* TO '${logins.admin.user}'@'<functions' hosts>';`,
    });
  }
  const tableMissing = missingTableGrants(grants, d.tableGrants());
  for (const g of tableMissing) {
    const [schema, table] = g.table.split('.');
    add({
      severity: 'error',
      check: 'admin-grants',
      nodeId: n.id,
      message: `${logins.admin.user} lacks ${g.privilege} on ${g.table}, needed for ${g.usedFor}`,
      fix: `GRANT ${g.privilege} ON ${schema}.${table} TO '${logins.admin.user}'@'<functions' hosts>';`,
    });
  }
  if (missing.length === 0 && tableMissing.length === 0) pass('admin grants');
  if (d.rejoin.clone) await checkCloneReadiness(n, d, grants, logins.admin, clonePlugin, add, pass);

  const semi = await inst.readSemiSync();
  const semiNames = d.semiSyncNames(semi.family);
  facts.semiSyncTimeoutVariable = semiNames.sourceTimeout;
  facts.readOnly = v.readOnly;
  facts.logBin = v.logBin;
  facts.logSlaveUpdates = v.logReplicaUpdates;
  facts.gtidStrictMode = v.gtidStrict;
  facts.binlogFormat = v.binlogFormat;
  facts.semiSyncMaster = semi.masterEnabled;
  facts.semiSyncSlave = semi.slaveEnabled;
  facts.gtidExecuted = (await inst.readGtidPosition()).executed;
  const filters: Record<string, string> = { ...v.filters };
  try {
    const ms = await inst.readBinlogStatus();
    filters.binlog_do_db = ms?.doDb ?? '';
    filters.binlog_ignore_db = ms?.ignoreDb ?? '';
  } catch {
    // BINLOG MONITOR / REPLICATION CLIENT missing: reported above with the grants.
  }
  facts.filters = filters;

  if (!facts.logBin) {
    add({
      severity: 'error',
      check: 'log-bin',
      nodeId: n.id,
      message: 'log_bin is OFF: this node cannot be promoted (replicas could not replicate from it)',
      fix: 'Set log_bin=<name> in its my.cnf and restart it.',
    });
  } else pass('log_bin');
  const lsu = mysql && w.netTimeout === 'replica_net_timeout' ? 'log_replica_updates' : 'log_slave_updates';
  if (!facts.logSlaveUpdates) {
    add({
      severity: 'error',
      check: 'log-slave-updates',
      nodeId: n.id,
      message: `${lsu} is OFF: after promotion its binlog lacks what it replicated, other replicas cannot follow it`,
      fix: `Set ${lsu}=ON in its my.cnf and restart it.`,
    });
  } else pass(lsu);
  if (!facts.gtidStrictMode) {
    add(
      mysql
        ? {
            severity: 'error',
            check: 'gtid-mode',
            nodeId: n.id,
            message: `${v.gtidSetting}: GTID auto-positioning (repoint, catch-up, rejoin) needs gtid_mode=ON and enforce_gtid_consistency=ON`,
            fix: 'Set enforce_gtid_consistency=ON and gtid_mode=ON on every node (online: OFF_PERMISSIVE, ON_PERMISSIVE, then ON, as the MySQL manual describes) and in every my.cnf.',
          }
        : {
            severity: 'warning',
            check: 'gtid-strict-mode',
            nodeId: n.id,
            message:
              'gtid_strict_mode is OFF: out-of-order or duplicate GTIDs are accepted silently, errant transactions go unnoticed',
            fix: 'SET GLOBAL gtid_strict_mode=ON and add gtid_strict_mode=ON to its my.cnf.',
          },
    );
  } else pass(mysql ? 'gtid_mode' : 'gtid_strict_mode');
  if (facts.binlogFormat !== 'ROW') {
    add({
      severity: 'warning',
      check: 'binlog-format',
      nodeId: n.id,
      message: `binlog_format is ${facts.binlogFormat}: ROW is the safe format for failover`,
      fix: 'Set binlog_format=ROW in its my.cnf.',
    });
  }

  const repl = await inst.readReplicaStatus();
  if (repl) {
    facts.replication = {
      sourceHost: repl.sourceHost,
      sourcePort: repl.sourcePort,
      ioState: repl.ioState,
      sqlRunning: repl.sqlRunning,
      usingGtid: repl.usingGtid,
    };
  }
  const semiPlugin = (side: 'source' | 'replica') => {
    const plugin = side === 'source' ? semiNames.sourcePlugin : semiNames.replicaPlugin;
    const installed = side === 'source' ? semi.sourceInstalled : semi.replicaInstalled;
    if (installed || !c.failover.semiSync) return true;
    add({
      severity: 'warning',
      check: 'semi-sync',
      nodeId: n.id,
      message: `semi-sync is configured (failover.semiSync) but the semi-sync ${side} plugin is not installed on ${n.id}: ${side === 'source' ? 'once primary, its commits are acknowledged without any replica having them' : 'it never acknowledges, so the primary falls back to async'}`,
      fix: `INSTALL PLUGIN ${plugin?.name ?? `rpl_semi_sync_${side}`} SONAME '${plugin?.soname ?? ''}'; on every node (a failover may promote any of them), and plugin-load-add in its my.cnf.`,
    });
    return false;
  };
  if (n.id === primaryId) {
    if (facts.readOnly) {
      add({
        severity: 'error',
        check: 'read-only',
        nodeId: n.id,
        message: `the primary is ${v.superReadOnly ? 'super_read_only' : 'read_only'}=ON: clients cannot write`,
        fix: `If it really is the primary: SET GLOBAL ${v.superReadOnly ? 'super_read_only=OFF; SET GLOBAL ' : ''}read_only=OFF. Otherwise see status for the real topology.`,
      });
    }
    if (repl) {
      add({
        severity: 'warning',
        check: 'primary-replication',
        nodeId: n.id,
        message: `the primary is itself configured as a replica of ${repl.sourceHost}:${repl.sourcePort}`,
        fix: `${w.stop}; ${w.resetAll}; on the primary unless this is intended (circular replication is not supported).`,
      });
    }
    if (semiPlugin('source') && c.failover.semiSync && !facts.semiSyncMaster) {
      add({
        severity: 'warning',
        check: 'semi-sync',
        nodeId: n.id,
        message: `semi-sync is configured (failover.semiSync) but ${semiNames.sourceEnabled} is OFF on the primary: acknowledged commits may be lost in a crash`,
        fix: `SET GLOBAL ${semiNames.sourceEnabled}=ON on the primary (only there: on replicas it stalls them).`,
      });
    }
    return;
  }
  if (facts.readOnly === false) {
    add({
      severity: 'error',
      check: 'read-only',
      nodeId: n.id,
      message:
        'replica is read_only=OFF: any client write there becomes an errant transaction and breaks failover',
      fix: `SET GLOBAL ${mysql ? 'super_read_only' : 'read_only'}=ON on it, and put ${mysql ? 'super_read_only' : 'read_only'}=ON in its my.cnf.`,
    });
  } else {
    pass('replicas read_only');
    if (v.superReadOnly === false) {
      add({
        severity: 'warning',
        check: 'super-read-only',
        nodeId: n.id,
        message:
          'replica is read_only=ON but super_read_only=OFF: accounts with CONNECTION_ADMIN or SUPER (admin tools, our own) can still write there, and each such write is an errant transaction',
        fix: 'SET GLOBAL super_read_only=ON on it, and put super_read_only=ON in its my.cnf.',
      });
    }
  }
  if (!repl) {
    add({
      severity: 'error',
      check: 'replication',
      nodeId: n.id,
      message: 'not configured as a replica',
      fix: `serverless invoke -f rejoin --data '{"cluster":"${c.name}","node":"${n.id}"}'`,
    });
    return;
  }
  if (repl.ioState !== 'Yes' || !repl.sqlRunning) {
    add({
      severity: 'error',
      check: 'replication',
      nodeId: n.id,
      message: `replication threads IO=${repl.ioState} SQL=${repl.sqlRunning ? 'Yes' : 'No'}${repl.lastIoError ? ` IO error ${repl.lastIoErrno}: ${repl.lastIoError}` : ''}${repl.lastSqlError ? ` SQL error ${repl.lastSqlErrno}: ${repl.lastSqlError}` : ''}`,
      fix: `Fix the error shown, then ${w.start} (or rejoin the node).`,
    });
  } else pass('replication running');
  if (!repl.autoPosition) {
    add({
      severity: 'error',
      check: 'gtid-mode',
      nodeId: n.id,
      message: `replicates with ${mysql ? `Auto_Position=0` : `Using_Gtid=${repl.usingGtid || 'No'}`} (file/position): repointing after a failover needs GTID positions`,
      fix: `${w.stop}; ${w.change} ${w.autoPosition}; ${w.start};`,
    });
  } else pass('GTID replication');
  // Without SELECT on performance_schema the period cannot be read (reported with the grants).
  if (tableMissing.length === 0)
    checkHeartbeatPeriod(c, n, w, await inst.readHeartbeatPeriod(repl), v.replicaNetTimeout, add, pass);
  const source = c.nodes.find((x) => x.host === repl.sourceHost && x.port === repl.sourcePort);
  const primary = c.nodes.find((x) => x.id === primaryId);
  if (!source) {
    add({
      severity: 'warning',
      check: 'replication-source',
      nodeId: n.id,
      message: `replicates from ${repl.sourceHost}:${repl.sourcePort}, which is not a node of the cluster`,
      fix: 'Check the node list in the config, or rejoin the node.',
    });
  } else if (source.id !== primary?.id) {
    add({
      severity: 'warning',
      check: 'replication-source',
      nodeId: n.id,
      message: `replicates from ${source.id}, not from the primary ${primaryId}: a failover repoints it, a chain is not supported`,
      fix: `serverless invoke -f rejoin --data '{"cluster":"${c.name}","node":"${n.id}"}'`,
    });
  } else pass('replicas follow the primary');
  if (semiPlugin('replica') && c.failover.semiSync && !facts.semiSyncSlave) {
    add({
      severity: 'warning',
      check: 'semi-sync',
      nodeId: n.id,
      message: `${semiNames.replicaEnabled} is OFF: this replica never acknowledges, and once promoted its replicas would not either`,
      fix: `SET GLOBAL ${semiNames.replicaEnabled}=ON; ${w.stop} IO_THREAD; ${w.start} IO_THREAD; and add it to my.cnf.`,
    });
  }
}

/**
 * Whether `rejoin` with `rebuild: true` can clone onto or from this node (MySQL 8.0.17+): the
 * clone plugin active and BACKUP_ADMIN / CLONE_ADMIN for the admin account. Only the rebuild
 * needs them, so a gap is information, not an error: rejoin refuses the rebuild until then.
 */
async function checkCloneReadiness(
  n: NodeConfig,
  d: Dialect,
  grants: Map<string, Set<string>>,
  admin: Login,
  clonePlugin: () => Promise<boolean>,
  add: (f: CheckFinding) => void,
  pass: (check: string) => void,
): Promise<void> {
  const lacking = missingGlobalGrants(
    grants,
    CLONE_GRANTS.map((g) => g.privilege),
  );
  const active = await clonePlugin();
  const gaps = [
    ...(active ? [] : ['the clone plugin is not active']),
    ...lacking.map(
      (p) => `${admin.user} lacks ${p} (${CLONE_GRANTS.find((g) => g.privilege === p)?.usedFor})`,
    ),
  ];
  if (gaps.length === 0) {
    pass('rebuild by clone');
    return;
  }
  const server = `MySQL ${d.version.major}.${d.version.minor}.${d.version.patch}`;
  add({
    severity: 'info',
    check: 'rebuild-clone',
    nodeId: n.id,
    message: `rejoin with "rebuild": true (CLONE) is unavailable on ${n.id} (${server}) until this is fixed: ${gaps.join('; ')}. Failover, switchover and rejoin without rebuild do not need it`,
    fix: [
      ...(active ? [] : [`${INSTALL_CLONE_PLUGIN}; and plugin-load-add=mysql_clone.so in its my.cnf`]),
      ...(lacking.length
        ? [`GRANT ${lacking.join(', ')} ON *.* TO '${admin.user}'@'<functions' hosts>';`]
        : []),
    ].join('; '),
  });
}

async function checkVip(
  rt: Runtime,
  c: ClusterConfig,
  primary: string,
  failoverRunning: boolean,
  add: (f: CheckFinding) => void,
  pass: (check: string) => void,
): Promise<CheckResult['vip']> {
  if (c.vip.provider === 'none') {
    add({
      severity: 'info',
      check: 'vip',
      message: 'vip.provider is none: clients must find the new primary by themselves after a failover',
      fix: 'Configure a VIP provider if clients connect to a fixed address.',
    });
    return { provider: 'none' };
  }
  let holder: string | undefined;
  try {
    const mover = await rt.vipMover(c);
    holder = await mover?.currentHolder();
    pass('VIP provider reachable');
  } catch (err) {
    add({
      severity: 'error',
      check: 'vip-provider',
      message: `cannot read the holder of ${c.vip.address} through ${c.vip.provider}: ${(err as Error).name}: ${(err as Error).message}`,
      fix: 'Check the provider credentials/role (Describe* permissions), the region and that the functions reach the API endpoint.',
    });
    return { provider: c.vip.provider };
  }
  if (holder !== primary) {
    add({
      severity: 'error',
      check: 'vip-holder',
      message: `${c.vip.address} is held by ${holder ?? 'no configured node'}, not by the primary ${primary}`,
      fix: `Move it to ${primary} (or run a switchover to the holder if that is the real primary).`,
    });
  } else pass('VIP on the primary');
  let dryRun: string;
  if (c.vip.provider === 'aws-route-table' && holder && !failoverRunning) {
    dryRun = await dryRunReplaceRoute(c, holder, add);
  } else if (c.vip.provider === 'aws-secondary-ip') {
    dryRun =
      'AssignPrivateIpAddresses has no DryRun: the move permission is checked only by IAM at failover time';
  } else {
    dryRun = 'no dry-run call available for this provider';
  }
  return { provider: c.vip.provider, ...(holder ? { holder } : {}), dryRun };
}

/**
 * ReplaceRoute with DryRun=true, pointing each route at the ENI it already points at: AWS answers
 * DryRunOperation (allowed) or UnauthorizedOperation; an endpoint that ignores DryRun changes
 * nothing either, because the target is the current one.
 */
async function dryRunReplaceRoute(
  c: ClusterConfig,
  holder: string,
  add: (f: CheckFinding) => void,
): Promise<string> {
  if (c.vip.provider !== 'aws-route-table') return 'n/a';
  const eni = c.nodes.find((n) => n.id === holder)?.networkInterfaceId;
  if (!eni) return 'skipped: holder has no networkInterfaceId';
  const { EC2Client, ReplaceRouteCommand } = await import('../adapters/sdk/ec2-route.ts');
  const client = new EC2Client(c.vip.region ? { region: c.vip.region, maxAttempts: 1 } : { maxAttempts: 1 });
  try {
    for (const rtb of c.vip.routeTableIds) {
      try {
        await client.send(
          new ReplaceRouteCommand({
            RouteTableId: rtb,
            DestinationCidrBlock: `${c.vip.address}/32`,
            NetworkInterfaceId: eni,
            DryRun: true,
          }),
        );
        return 'the endpoint ignored DryRun (nothing changed: the route already pointed there)';
      } catch (err) {
        const name = (err as Error).name;
        if (name === 'DryRunOperation') continue;
        add({
          severity: 'error',
          check: 'vip-permission',
          message: `ReplaceRoute DryRun on ${rtb}: ${name}: ${(err as Error).message}`,
          fix: 'Allow ec2:ReplaceRoute on the route tables for the functions role.',
        });
        return `DryRun refused: ${name}`;
      }
    }
    return 'ReplaceRoute DryRun allowed';
  } finally {
    client.destroy();
  }
}

/**
 * What fencing the old primary can and cannot guarantee with this configuration (issue 11).
 * The failover SQL-fences the old primary or takes the VIP from it before any promotion, and the
 * health check fences it whenever it answers writable (also during a failover). Two gaps remain
 * that only STONITH or the servers' own configuration close; they are reported, not hidden.
 */
export function checkFencing(
  c: ClusterConfig,
  nodes: readonly Pick<NodeFacts, 'semiSyncTimeoutVariable' | 'flavor'>[],
  add: (f: CheckFinding) => void,
  pass: (check: string) => void,
): void {
  // A resumed or restarted old primary is fenced by the health check within about one round.
  const refenceMs = c.detection.intervalMs + c.detection.connectTimeoutMs + 1000;
  // The variable as the nodes' semi-sync plugins name it; both names while no node answered.
  const names = [
    ...new Set(nodes.flatMap((n) => (n.semiSyncTimeoutVariable ? [n.semiSyncTimeoutVariable] : []))),
  ];
  const timeoutVar = names.length > 0 ? names.join(' / ') : ANY_DIALECT_WORDS.semiSyncSourceTimeout;
  // MySQL's fence is super_read_only (read_only alone lets SUPER / CONNECTION_ADMIN accounts write).
  const fence = nodes.some((n) => n.flavor === 'mysql') ? 'super_read_only=ON' : 'read_only=ON';
  const fenceOff = fence.replace('=ON', '=OFF');
  if (c.failover.semiSyncTimeoutMs <= refenceMs) {
    add({
      severity: 'error',
      check: 'fencing',
      message: `failover.semiSyncTimeoutMs (${c.failover.semiSyncTimeoutMs} ms, ${timeoutVar} on the promoted primary) is not longer than the health check needs to fence an old primary that resumes (about ${refenceMs} ms): commits it held would fall back to async and be ACKNOWLEDGED before the fence, and be lost`,
      fix: `Set failover.semiSyncTimeoutMs (and ${timeoutVar} on the primary) above ${refenceMs} ms; 10000 is the server default.`,
    });
  }
  if (c.failover.stonith.enabled) {
    pass('fencing: STONITH stops an old primary that does not take the SQL fence');
    return;
  }
  add({
    severity: 'warning',
    check: 'fencing',
    message: `without STONITH two cases stay open: (1) a primary frozen (SIGSTOP, a stall) longer than ${timeoutVar} (${c.failover.semiSyncTimeoutMs} ms) acknowledges the commits it held the moment it resumes, before any fence can reach it; (2) a crashed primary that mysqld_safe or systemd restarts with ${fenceOff} takes writes from clients connected to it directly (never through the VIP: it leaves the old primary before any promotion) until the health check fences it, about ${refenceMs} ms`,
    fix: `Enable failover.stonith (the old primary's instance is stopped before the promotion), and put ${fence} in every node's my.cnf (the failover and the switchover set ${fenceOff} at runtime on the node they promote), so that a restarted server comes back fenced.`,
  });
}
