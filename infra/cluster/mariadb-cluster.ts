/**
 * A real MariaDB 10.11 GTID replication cluster on one machine, for the sandbox, the tests and
 * the benchmark: N `mariadbd` processes, each with its own datadir, port and socket under a temp
 * dir, db1 primary, the others replicating with semi-sync (AFTER_SYNC).
 *
 * Start-up, all nodes in parallel: mariadb-install-db (~1-2 s) -> mariadbd -> ping; then the
 * accounts and schemas are created on the primary only, with the binlog on, BEFORE the replicas
 * attach. The replicas start from an empty gtid_slave_pos and replay them, so every node ends
 * with the same gtid_binlog_pos (0-1-N) and no replica has a GTID of its own (no errant
 * transactions, which a per-node `sql_log_bin=0` setup would also avoid but at the price of
 * N copies of the same DDL to keep in step).
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
} from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import mysql from 'mysql2/promise';
import { ADMIN_GRANTS } from '../../lib/operator/grants.ts';
import type { NetnsLab } from '../netns/lab.ts';
import {
  type CleanupEntry,
  groupMembers,
  isProcessAlive,
  killGroup,
  killHard,
  registerCleanup,
  startWatchdog,
  unregisterCleanup,
} from './cleanup-registry.ts';
import { renderMyCnf } from './my-cnf.ts';

export interface ClusterHarnessOptions {
  /** Number of nodes, default 3. Ids are 'db1', 'db2', ...; db1 starts as primary. */
  nodes?: number;
  /** Semi-sync AFTER_SYNC on the primary once the replicas attached; default true. */
  semiSync?: boolean;
  /**
   * rpl_semi_sync_master_timeout, default 10000 (the server's own default). Long enough that
   * a brief replica stall never silently degrades the primary to async during a test, short
   * enough that a test which kills every replica sees the fallback within its own timeout.
   */
  semiSyncTimeoutMs?: number;
  /** slave_parallel_threads, default 4 (with 1, relay-log catch-up under load takes seconds). */
  applierThreads?: number;
  /**
   * The cluster directory. Must not exist or be empty, because destroy() removes it.
   * Default: a fresh mkdtemp 'smf-cluster-' under os.tmpdir().
   */
  baseDir?: string;
  /**
   * Extra [mysqld] lines for every node, or per node id (e.g. a larger buffer pool for the
   * benchmark). Appended last, so they override the harness defaults.
   */
  extraMyCnf?: string | ((nodeId: string) => string);
  /**
   * `read_only=ON` in every node's my.cnf, as MHA and orchestrator recommend: a server that
   * mysqld_safe or systemd restarts comes back fenced. The harness sets read_only=OFF at runtime
   * on the primary it wires (as a promotion does), so only a restart brings the config's value
   * back. Default false (a stock my.cnf: a restarted primary is writable).
   */
  readOnlyInMyCnf?: boolean;
  /**
   * Network-namespace mode (root only, infra/netns/lab.ts; the lab's nodes must be db1..dbN):
   * each mariadbd runs in its node's namespace, listens on the node's own address, and every node
   * uses the same port (as on real hosts), so replication and the prober cross the lab's bridge.
   * Root queries keep using the unix socket. The caller owns the lab (close it after destroy()).
   */
  netns?: NetnsLab;
  log?: (msg: string) => void;
}

export interface HarnessNode {
  readonly id: string;
  /** 127.0.0.1, or the node's own address in network-namespace mode. */
  readonly host: string;
  /** Fixed for the node's life: restart() reuses it. */
  readonly port: number;
  readonly socket: string;
  readonly datadir: string;
  readonly serverId: number;
  /** Pid of the running mariadbd; undefined after crash() or stop(). */
  pid: number | undefined;
}

export interface HarnessCredentials {
  user: string;
  password: string;
  /** `<dir>/secrets/<name>.password`, mode 600. */
  passwordFile: string;
}

export type HarnessAccount = 'admin' | 'replication' | 'app';

/*
 * Global privileges of `failover_admin` on MariaDB 10.11 (ADMIN_GRANTS, canonical in
 * lib/operator/grants.ts), least privilege for the failover functions (each is exercised by
 * test/cluster/mariadb-cluster.test.ts):
 * - SLAVE MONITOR: SHOW SLAVE STATUS, SHOW ALL SLAVES STATUS.
 * - BINLOG MONITOR: SHOW BINLOG STATUS (= SHOW MASTER STATUS), SHOW BINARY LOGS.
 * - REPLICATION SLAVE ADMIN: STOP/START SLAVE, CHANGE MASTER, SET GLOBAL gtid_slave_pos,
 *   SET GLOBAL rpl_semi_sync_slave_*.
 * - RELOAD: RESET SLAVE [ALL] (10.11 still checks RELOAD there, not REPLICATION SLAVE ADMIN).
 * - REPLICATION MASTER ADMIN: SET GLOBAL rpl_semi_sync_master_*, SHOW SLAVE HOSTS.
 * - READ_ONLY ADMIN: SET GLOBAL read_only. Since 10.11 SUPER no longer implies it, and the same
 *   privilege also lets the account write while read_only=ON: the failover code must only
 *   write (heartbeat) on the node it believes is primary, or it creates errant GTIDs.
 * - CONNECTION ADMIN: KILL other users' sessions (fencing the old primary's clients).
 * - PROCESS: information_schema.PROCESSLIST and INNODB_TRX for every user's sessions.
 * Plus ALL PRIVILEGES ON failover_meta.* (heartbeat table). No SUPER, no ALL ON *.*, no
 * BINLOG ADMIN: none of the operations above needs them.
 */
export { ADMIN_GRANTS };

/** Schema-level rights of the `app` account: DML and DDL on `app`.* only, no read-only bypass. */
export const APP_GRANTS: string[] = [
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'CREATE',
  'DROP',
  'INDEX',
  'ALTER',
];

const ACCOUNT_USERS: Record<HarnessAccount, string> = {
  admin: 'failover_admin',
  replication: 'repl',
  app: 'app',
};
const ACCOUNT_HOSTS = ['127.0.0.1', 'localhost'] as const;
/** Unix socket paths are limited to 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const INSTALL_HINT =
  "mariadbd not found. Install Debian's mariadb-server: apt-get install -y --no-install-recommends mariadb-server mariadb-client";

/** Finds an executable in PATH, then the Debian sbin/bin directories. */
function findExecutable(name: string): string | undefined {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/usr/bin',
    '/usr/local/sbin',
    '/usr/local/bin',
  ];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Returns the path of the `mariadbd` binary (PATH, then /usr/sbin and /usr/bin).
 * @throws Error with installation instructions when it is missing.
 */
export function findMariadbd(): string {
  const found = findExecutable('mariadbd');
  if (found === undefined) throw new Error(INSTALL_HINT);
  return found;
}

function findInstallDb(): string {
  const found = findExecutable('mariadb-install-db') ?? findExecutable('mysql_install_db');
  if (found === undefined) throw new Error(INSTALL_HINT.replace('mariadbd', 'mariadb-install-db'));
  return found;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reserves `count` distinct free loopback ports (held open together so they differ, then released). */
async function pickFreePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('Failed to pick a free port');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

async function readTail(file: string, lines = 40, fromOffset = 0): Promise<string> {
  try {
    const text = (await readFile(file)).subarray(fromOffset).toString('utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function waitUntilGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function randomPassword(): string {
  return randomBytes(18).toString('base64url');
}

type NodeState = 'new' | 'running' | 'hung' | 'stopped' | 'crashed';

interface NodeRuntime {
  node: HarnessNode & { port: number };
  dir: string;
  cnf: string;
  errorLog: string;
  child: ChildProcess | undefined;
  state: NodeState;
}

/** Handle on a running harness cluster. Create it with {@link startCluster}. */
export class MariaDbCluster {
  readonly dir: string;
  readonly nodes: HarnessNode[];
  readonly credentials: Record<HarnessAccount, HarnessCredentials>;
  readonly semiSync: boolean;
  /** The namespace lab the nodes run in (network-namespace mode), else undefined. */
  readonly netns: NetnsLab | undefined;
  private readonly runtimes = new Map<string, NodeRuntime>();
  private readonly log: (msg: string) => void;
  private readonly mariadbd: string;
  private readonly cleanupEntry: CleanupEntry;
  /** Process groups of running mariadb-install-db scripts (each spawns its own mariadbd). */
  private readonly helperGroups = new Set<number>();
  private watchdogPid: number | undefined;
  private destroyed = false;

  /** @internal Use startCluster(). */
  constructor(
    dir: string,
    nodeCount: number,
    private readonly options: Required<Omit<ClusterHarnessOptions, 'baseDir' | 'log' | 'netns'>>,
    log: (msg: string) => void,
    netns?: NetnsLab,
  ) {
    this.dir = dir;
    this.netns = netns;
    this.log = log;
    this.semiSync = options.semiSync;
    this.mariadbd = findMariadbd();
    const secrets = join(dir, 'secrets');
    this.credentials = {
      admin: this.makeCredentials(secrets, 'admin'),
      replication: this.makeCredentials(secrets, 'replication'),
      app: this.makeCredentials(secrets, 'app'),
    };
    this.nodes = [];
    for (let i = 1; i <= nodeCount; i++) {
      const id = `db${i}`;
      const nodeDir = join(dir, id);
      const socket = join(nodeDir, 'mariadbd.sock');
      if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
        throw new Error(
          `Cluster dir ${dir} is too long: socket path ${socket} exceeds ${MAX_SOCKET_PATH} bytes`,
        );
      }
      const node = {
        id,
        host: netns === undefined ? '127.0.0.1' : netns.addressOf(id),
        port: 0,
        socket,
        datadir: join(nodeDir, 'data'),
        serverId: i,
        pid: undefined,
      };
      this.nodes.push(node);
      this.runtimes.set(id, {
        node,
        dir: nodeDir,
        cnf: join(nodeDir, 'my.cnf'),
        errorLog: join(nodeDir, 'error.log'),
        child: undefined,
        state: 'new',
      });
    }
    this.cleanupEntry = { dir, pids: () => this.livePids(), groups: () => [...this.helperGroups] };
    registerCleanup(this.cleanupEntry);
    this.watchdogPid = startWatchdog(dir);
  }

  private makeCredentials(secrets: string, account: HarnessAccount): HarnessCredentials {
    const user = ACCOUNT_USERS[account];
    return { user, password: randomPassword(), passwordFile: join(secrets, `${user}.password`) };
  }

  private livePids(): number[] {
    const pids: number[] = [];
    for (const rt of this.runtimes.values()) if (rt.node.pid !== undefined) pids.push(rt.node.pid);
    return pids;
  }

  private runtime(id: string): NodeRuntime {
    const rt = this.runtimes.get(id);
    if (rt === undefined)
      throw new Error(`Unknown harness node ${id} (have ${[...this.runtimes.keys()].join(', ')})`);
    return rt;
  }

  private assertNotDestroyed(): void {
    if (this.destroyed) throw new Error(`Cluster ${this.dir} was destroyed`);
  }

  /** The node with this id; throws on an unknown id. */
  node(id: string): HarnessNode {
    return this.runtime(id).node;
  }

  /** True while the node's mariadbd runs and is not frozen by hang(). */
  isRunning(id: string): boolean {
    return this.runtime(id).state === 'running';
  }

  /** Path of the node's error log (kept in its directory for post-mortems). */
  errorLogPath(id: string): string {
    return this.runtime(id).errorLog;
  }

  /** mysql2 connection options for an account over TCP (what the failover functions use). */
  connectionOptions(
    id: string,
    account: HarnessAccount,
  ): { host: string; port: number; user: string; password: string } {
    const node = this.node(id);
    const cred = this.credentials[account];
    return { host: node.host, port: node.port, user: cred.user, password: cred.password };
  }

  /** @internal Writes configs and secrets; ports are assigned here. */
  async prepare(ports: number[]): Promise<void> {
    const secrets = join(this.dir, 'secrets');
    mkdirSync(secrets, { recursive: true, mode: 0o700 });
    await Promise.all(
      Object.values(this.credentials).map((c) =>
        writeFile(c.passwordFile, `${c.password}\n`, { mode: 0o600 }),
      ),
    );
    for (const [index, rt] of [...this.runtimes.values()].entries()) {
      mkdirSync(join(rt.dir, 'tmp'), { recursive: true });
      await this.writeConfig(rt, ports[index]!);
    }
  }

  private async writeConfig(rt: NodeRuntime, port: number): Promise<void> {
    rt.node.port = port;
    const extra = this.options.extraMyCnf;
    await writeFile(
      rt.cnf,
      renderMyCnf({
        dir: rt.dir,
        datadir: rt.node.datadir,
        socket: rt.node.socket,
        pidFile: join(rt.dir, 'mariadbd.pid'),
        errorLog: rt.errorLog,
        tmpdir: join(rt.dir, 'tmp'),
        port,
        serverId: rt.node.serverId,
        applierThreads: this.options.applierThreads,
        semiSyncTimeoutMs: this.options.semiSyncTimeoutMs,
        extra: typeof extra === 'function' ? extra(rt.node.id) : extra,
        // The whole namespace is the node's host: listen on its own address and on the VIP it may hold.
        ...(this.netns === undefined ? {} : { bindAddress: '0.0.0.0', reportHost: rt.node.host }),
      }),
    );
  }

  /** @internal Runs mariadb-install-db, then starts the node; a port taken meanwhile gets a new one. */
  async initNode(id: string): Promise<void> {
    const rt = this.runtime(id);
    const t0 = Date.now();
    await this.installDb(rt);
    const t1 = Date.now();
    for (let attempt = 1; ; attempt++) {
      const logOffset = fileSize(rt.errorLog);
      try {
        await this.launch(rt, []);
        break;
      } catch (err) {
        const tail = await readTail(rt.errorLog, 15, logOffset);
        const collision = /Address already in use|already have another server running on port/i.test(tail);
        if (!collision || attempt >= 5) throw err;
        const [port] = await pickFreePorts(1);
        this.log(`${id}: port ${rt.node.port} was taken, retrying on ${port}`);
        await this.writeConfig(rt, port!);
      }
    }
    this.log(
      `${id}: install ${t1 - t0} ms, start ${Date.now() - t1} ms, port ${rt.node.port}, pid ${rt.node.pid}`,
    );
  }

  private async installDb(rt: NodeRuntime): Promise<void> {
    const logFile = join(rt.dir, 'install.log');
    const fd = openSync(logFile, 'a');
    try {
      this.assertNotDestroyed();
      // Own process group: killing the script alone would orphan its bootstrap mariadbd.
      const child = spawn(
        findInstallDb(),
        [`--defaults-file=${rt.cnf}`, '--auth-root-authentication-method=normal', '--skip-test-db'],
        { stdio: ['ignore', fd, fd], detached: true },
      );
      const group = child.pid;
      if (group !== undefined) this.helperGroups.add(group);
      const code = await new Promise<number | null>((resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (c) => resolve(c));
      }).finally(() => {
        if (group !== undefined) this.helperGroups.delete(group);
      });
      this.assertNotDestroyed();
      if (code !== 0) {
        throw new Error(
          `mariadb-install-db failed for ${rt.node.id} (exit ${code}):\n${await readTail(logFile)}\n--- error log ---\n${await readTail(rt.errorLog)}`,
        );
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Spawns mariadbd and waits until it answers over its socket; throws with the error log tail. */
  private async launch(rt: NodeRuntime, extraArgs: string[]): Promise<void> {
    const out = openSync(join(rt.dir, 'stderr.log'), 'a');
    let child: ChildProcess;
    try {
      this.assertNotDestroyed();
      const argv = [this.mariadbd, `--defaults-file=${rt.cnf}`, ...extraArgs];
      // `ip netns exec` execs in place, so the child's pid is mariadbd's own.
      const [cmd, ...args] = this.netns === undefined ? argv : this.netns.wrap(rt.node.id, argv);
      child = spawn(cmd!, args, { stdio: ['ignore', out, out] });
    } finally {
      closeSync(out);
    }
    child.on('error', () => {});
    // Unreferenced: a program that forgets destroy() still exits, and the exit hook kills it.
    child.unref();
    rt.child = child;
    rt.node.pid = child.pid;
    rt.state = 'running';
    const pid = child.pid;
    if (pid === undefined) {
      rt.state = 'crashed';
      throw new Error(`Failed to spawn ${this.mariadbd} for ${rt.node.id}`);
    }
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (!isProcessAlive(pid)) {
        rt.node.pid = undefined;
        rt.state = 'crashed';
        throw new Error(
          `mariadbd for ${rt.node.id} exited during start-up (port ${rt.node.port}). Error log tail (${rt.errorLog}):\n${await readTail(rt.errorLog)}\n--- stderr ---\n${await readTail(join(rt.dir, 'stderr.log'), 10)}`,
        );
      }
      if (existsSync(rt.node.socket)) {
        try {
          await this.query(rt.node.id, 'SELECT 1', [], { timeoutMs: 2000 });
          return;
        } catch {
          // still starting (socket created before the server accepts)
        }
      }
      if (Date.now() > deadline) {
        killHard(pid);
        await waitUntilGone(pid, 5000);
        rt.node.pid = undefined;
        rt.state = 'crashed';
        throw new Error(
          `mariadbd for ${rt.node.id} did not answer within ${START_TIMEOUT_MS} ms. Error log tail:\n${await readTail(rt.errorLog)}`,
        );
      }
      await sleep(50);
    }
  }

  /**
   * Runs one statement as root over the node's unix socket (no network, no harness account),
   * with a 2 s connect timeout and a query timeout (default 10 s). Returns the rows, or [] for
   * statements without a result set.
   */
  // biome-ignore lint/suspicious/noExplicitAny: rows are whatever the SQL selects; callers narrow.
  async query<T = any>(
    id: string,
    sql: string,
    params?: unknown[],
    opts?: { timeoutMs?: number },
  ): Promise<T[]> {
    const node = this.node(id);
    const conn = await mysql.createConnection({
      socketPath: node.socket,
      user: 'root',
      password: '',
      connectTimeout: 2000,
    });
    try {
      const [rows] = await conn.query({ sql, timeout: opts?.timeoutMs ?? 10_000 }, params);
      return Array.isArray(rows) ? (rows as T[]) : [];
    } finally {
      conn.destroy();
    }
  }

  /** SIGKILL the node's mariadbd and wait until the process is gone. */
  async crash(id: string): Promise<void> {
    const rt = this.runtime(id);
    const pid = rt.node.pid;
    if (pid === undefined) return;
    killHard(pid);
    if (!(await waitUntilGone(pid, 10_000))) throw new Error(`mariadbd ${id} (pid ${pid}) survived SIGKILL`);
    rt.node.pid = undefined;
    rt.state = 'crashed';
    this.log(`${id}: crashed (pid ${pid})`);
  }

  /** Freezes the node with SIGSTOP: TCP still accepts, nothing answers. */
  hang(id: string): void {
    const rt = this.runtime(id);
    if (rt.node.pid === undefined) throw new Error(`Cannot hang ${id}: not running`);
    process.kill(rt.node.pid, 'SIGSTOP');
    // The stop is asynchronous: kill() returns once the signal is queued, and each thread stops
    // when it next returns to user mode. On a loaded machine a thread may still answer a request
    // sent right after this call (seen once in CI: a probe answered 4 ms after the SIGSTOP). Wait
    // until every thread is stopped, so that "hung" means hung from here on.
    if (!waitAllThreadsStopped(rt.node.pid, 500))
      this.log(`${id}: SIGSTOP sent, not every thread seen stopped within 500 ms`);
    rt.state = 'hung';
    this.log(`${id}: hung (SIGSTOP)`);
  }

  /** Thaws a node frozen by hang(). */
  resume(id: string): void {
    const rt = this.runtime(id);
    if (rt.node.pid === undefined) throw new Error(`Cannot resume ${id}: not running`);
    process.kill(rt.node.pid, 'SIGCONT');
    rt.state = 'running';
    this.log(`${id}: resumed (SIGCONT)`);
  }

  /** Clean shutdown (SIGTERM, thawing a hung node first); SIGKILL after 30 s. */
  async stop(id: string): Promise<void> {
    const rt = this.runtime(id);
    const pid = rt.node.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGCONT');
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
    if (!(await waitUntilGone(pid, STOP_TIMEOUT_MS))) {
      this.log(`${id}: clean shutdown took over ${STOP_TIMEOUT_MS} ms, killing`);
      killHard(pid);
      await waitUntilGone(pid, 10_000);
    }
    rt.node.pid = undefined;
    rt.state = 'stopped';
    this.log(`${id}: stopped`);
  }

  /**
   * Starts a stopped or crashed node again on the same datadir and port and waits until it
   * answers. `initRplRole: 'SLAVE'` passes --init-rpl-role=SLAVE, which truncates binlog
   * transactions no replica acknowledged (an old primary rejoining after a crash). A restarted
   * node has semi-sync master OFF and read_only OFF (the config's) unless `readOnly: true`,
   * which starts it fenced from its first second; replication threads resume from its saved
   * master info.
   */
  async restart(id: string, opts?: { initRplRole?: 'SLAVE'; readOnly?: boolean }): Promise<void> {
    const rt = this.runtime(id);
    if (rt.node.pid !== undefined)
      throw new Error(`Cannot restart ${id}: still running (pid ${rt.node.pid})`);
    const t0 = Date.now();
    const args: string[] = [];
    if (opts?.initRplRole === 'SLAVE') args.push('--init-rpl-role=SLAVE');
    if (opts?.readOnly === true) args.push('--read-only=ON');
    await this.launch(rt, args);
    this.log(`${id}: restarted in ${Date.now() - t0} ms (pid ${rt.node.pid})`);
  }

  /**
   * The quick-restart fault (issue 11, T2): kill -9, then start it again `afterMs` later as
   * mysqld_safe or systemd would, with its config's read_only=OFF (or `readOnly: true`, as with
   * read_only=ON in its my.cnf). Resolves when it answers again; `restartedAt` is when it did.
   */
  async crashThenRestart(
    id: string,
    afterMs: number,
    opts: { readOnly?: boolean } = {},
  ): Promise<{ crashedAt: number; restartedAt: number }> {
    await this.crash(id);
    const crashedAt = Date.now();
    await sleep(Math.max(0, afterMs));
    await this.restart(id, opts.readOnly ? { readOnly: true } : undefined);
    return { crashedAt, restartedAt: Date.now() };
  }

  /**
   * Points `replicaId` at `primaryId` with the replication account (GTID slave_pos, 1 s connect
   * retry and heartbeat), starts it and sets read_only=ON on the replica (a replica must never
   * take writes: that is how errant GTIDs happen).
   */
  async replicate(replicaId: string, primaryId: string): Promise<void> {
    if (replicaId === primaryId) throw new Error(`A node cannot replicate from itself (${replicaId})`);
    const primary = this.node(primaryId);
    const repl = this.credentials.replication;
    await this.query(replicaId, 'STOP SLAVE');
    await this.query(
      replicaId,
      'CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, ' +
        'MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1',
      [primary.host, primary.port, repl.user, repl.password],
    );
    await this.query(replicaId, 'START SLAVE');
    await this.query(replicaId, 'SET GLOBAL read_only=ON');
    this.log(`${replicaId}: replicating from ${primaryId}`);
  }

  /** Waits until the replica's IO and SQL threads both run; throws with the last errors otherwise. */
  async waitForReplicaThreads(replicaId: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [status] = await this.query(replicaId, 'SHOW SLAVE STATUS');
      if (status?.Slave_IO_Running === 'Yes' && status?.Slave_SQL_Running === 'Yes') return;
      if (Date.now() > deadline) {
        throw new Error(
          `Replication on ${replicaId} not running after ${timeoutMs} ms: IO=${status?.Slave_IO_Running} ` +
            `(${status?.Last_IO_Errno}: ${status?.Last_IO_Error}) SQL=${status?.Slave_SQL_Running} ` +
            `(${status?.Last_SQL_Errno}: ${status?.Last_SQL_Error})`,
        );
      }
      await sleep(50);
    }
  }

  /** Every other running node has applied the primary's current gtid_binlog_pos. */
  async waitForReplicas(primaryId: string, timeoutMs = 10_000): Promise<void> {
    const [row] = await this.query<{ pos: string }>(primaryId, 'SELECT @@GLOBAL.gtid_binlog_pos AS pos');
    const pos = row?.pos ?? '';
    if (pos === '') return;
    const deadline = Date.now() + timeoutMs;
    const others = this.nodes.filter((n) => n.id !== primaryId && this.isRunning(n.id));
    await Promise.all(
      others.map(async (n) => {
        const seconds = Math.max(0.1, (deadline - Date.now()) / 1000);
        const [res] = await this.query<{ r: number }>(
          n.id,
          'SELECT MASTER_GTID_WAIT(?, ?) AS r',
          [pos, seconds],
          {
            timeoutMs: seconds * 1000 + 5000,
          },
        );
        if (Number(res?.r) !== 0) {
          const [st] = await this.query(n.id, 'SHOW SLAVE STATUS');
          throw new Error(
            `${n.id} did not reach ${primaryId}'s ${pos} within ${timeoutMs} ms: gtid_slave_pos via ` +
              `IO=${st?.Slave_IO_Running} SQL=${st?.Slave_SQL_Running} Gtid_IO_Pos=${st?.Gtid_IO_Pos} ` +
              `errors ${st?.Last_IO_Errno}/${st?.Last_SQL_Errno}: ${st?.Last_IO_Error}${st?.Last_SQL_Error}`,
          );
        }
      }),
    );
  }

  /** Turns semi-sync on for `primaryId` and waits until `clients` replicas are registered. */
  async enableSemiSync(primaryId: string, clients: number, timeoutMs = 10_000): Promise<void> {
    await this.query(primaryId, 'SET GLOBAL rpl_semi_sync_master_enabled=ON');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await this.query<{ Variable_name: string; Value: string }>(
        primaryId,
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_clients','Rpl_semi_sync_master_status')",
      );
      const status = Object.fromEntries(rows.map((r) => [r.Variable_name, r.Value]));
      if (
        Number(status.Rpl_semi_sync_master_clients) >= clients &&
        status.Rpl_semi_sync_master_status === 'ON'
      ) {
        return;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `Semi-sync on ${primaryId}: ${status.Rpl_semi_sync_master_clients} of ${clients} clients, ` +
            `status ${status.Rpl_semi_sync_master_status} after ${timeoutMs} ms`,
        );
      }
      await sleep(50);
    }
  }

  /** @internal Creates schemas and accounts on the primary (binlogged, so replicas replay them). */
  async bootstrapPrimary(primaryId: string): Promise<void> {
    const q = (sql: string, params?: unknown[]) => this.query(primaryId, sql, params);
    await q('CREATE DATABASE app');
    await q('CREATE DATABASE failover_meta');
    await q(
      'CREATE TABLE failover_meta.heartbeat (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, server_id INT NOT NULL)',
    );
    // In netns mode peers and the prober connect from the lab's subnet (skip_name_resolve: IP patterns).
    const hosts =
      this.netns === undefined ? ACCOUNT_HOSTS : [...ACCOUNT_HOSTS, this.netns.subnet.replace(/0\/24$/, '%')];
    for (const host of hosts) {
      const { admin, replication, app } = this.credentials;
      await q('CREATE USER ?@? IDENTIFIED BY ?', [admin.user, host, admin.password]);
      await q(`GRANT ${ADMIN_GRANTS.join(', ')} ON *.* TO ?@?`, [admin.user, host]);
      await q('GRANT ALL PRIVILEGES ON failover_meta.* TO ?@?', [admin.user, host]);
      await q('CREATE USER ?@? IDENTIFIED BY ?', [replication.user, host, replication.password]);
      await q('GRANT REPLICATION SLAVE ON *.* TO ?@?', [replication.user, host]);
      await q('CREATE USER ?@? IDENTIFIED BY ?', [app.user, host, app.password]);
      await q(`GRANT ${APP_GRANTS.join(', ')} ON app.* TO ?@?`, [app.user, host]);
    }
  }

  /**
   * Kills every mariadbd this cluster started (thawing hung ones first), then removes the
   * directory. Idempotent.
   */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const group of this.helperGroups) killGroup(group);
    const pids = [...this.livePids(), ...[...this.helperGroups].flatMap(groupMembers)];
    for (const pid of pids) killHard(pid);
    const survivors: number[] = [];
    for (const pid of pids) if (!(await waitUntilGone(pid, 10_000))) survivors.push(pid);
    for (const rt of this.runtimes.values()) {
      rt.node.pid = undefined;
      rt.state = 'crashed';
    }
    if (this.watchdogPid !== undefined) {
      try {
        process.kill(this.watchdogPid, 'SIGKILL');
      } catch {
        // already exited
      }
    }
    await rm(this.dir, { recursive: true, force: true });
    unregisterCleanup(this.cleanupEntry);
    if (survivors.length > 0) throw new Error(`mariadbd pids ${survivors.join(', ')} survived SIGKILL`);
    this.log(`cluster ${this.dir} destroyed`);
  }
}

function resolveDir(baseDir: string | undefined): string {
  if (baseDir === undefined) return mkdtempSync(join(tmpdir(), 'smf-cluster-'));
  if (existsSync(baseDir) && readdirSync(baseDir).length > 0) {
    throw new Error(
      `Cluster baseDir ${baseDir} is not empty: destroy() removes it, so it must be a fresh directory`,
    );
  }
  mkdirSync(baseDir, { recursive: true });
  return baseDir;
}

/**
 * Starts a MariaDB GTID replication cluster: nodes initialised and started in parallel, accounts
 * and schemas created on db1, every other node replicating from db1 (read_only=ON), semi-sync
 * AFTER_SYNC active with all replicas as clients. On any failure everything started so far is
 * killed and removed before the error propagates.
 */
/** `extra` with `read_only=ON` first (the caller's own lines, appended after it, still win). */
function withReadOnly(
  extra: string | ((nodeId: string) => string),
  readOnly: boolean,
): string | ((nodeId: string) => string) {
  if (!readOnly) return extra;
  if (typeof extra === 'function') return (id) => `read_only=ON\n${extra(id)}`;
  return `read_only=ON\n${extra}`;
}

export async function startCluster(opts: ClusterHarnessOptions = {}): Promise<MariaDbCluster> {
  const nodeCount = opts.nodes ?? 3;
  if (!Number.isInteger(nodeCount) || nodeCount < 1)
    throw new Error(`nodes must be a positive integer, got ${nodeCount}`);
  const log = opts.log ?? (() => {});
  const settings = {
    nodes: nodeCount,
    semiSync: opts.semiSync ?? true,
    semiSyncTimeoutMs: opts.semiSyncTimeoutMs ?? 10_000,
    applierThreads: opts.applierThreads ?? 4,
    extraMyCnf: withReadOnly(opts.extraMyCnf ?? '', opts.readOnlyInMyCnf === true),
    readOnlyInMyCnf: opts.readOnlyInMyCnf === true,
  };
  findMariadbd();
  findInstallDb();
  const t0 = Date.now();
  const dir = resolveDir(opts.baseDir);
  let cluster: MariaDbCluster | undefined;
  try {
    cluster = new MariaDbCluster(dir, nodeCount, settings, log, opts.netns);
    const c = cluster;
    // Namespace mode: every node is its own host, so they all take one port (clients reach the VIP on it).
    const ports = await pickFreePorts(opts.netns === undefined ? nodeCount : 1);
    await c.prepare(opts.netns === undefined ? ports : Array<number>(nodeCount).fill(ports[0]!));
    // allSettled: a node that fails must not leave its siblings' installs running past destroy().
    const inits = await Promise.allSettled(c.nodes.map((n) => c.initNode(n.id)));
    const failed = inits.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const tNodes = Date.now();
    const primary = c.nodes[0]!.id;
    if (opts.readOnlyInMyCnf === true) await c.query(primary, 'SET GLOBAL read_only=OFF');
    await c.bootstrapPrimary(primary);
    const replicas = c.nodes.slice(1).map((n) => n.id);
    await Promise.all(replicas.map((r) => c.replicate(r, primary)));
    await Promise.all(replicas.map((r) => c.waitForReplicaThreads(r)));
    if (settings.semiSync && replicas.length > 0) await c.enableSemiSync(primary, replicas.length);
    await c.waitForReplicas(primary);
    log(
      `cluster ready in ${Date.now() - t0} ms (nodes up ${tNodes - t0} ms, wiring ${Date.now() - tNodes} ms): ` +
        c.nodes.map((n) => `${n.id}=${n.host}:${n.port}`).join(' '),
    );
    return c;
  } catch (err) {
    if (cluster !== undefined) {
      await cluster.destroy().catch(() => {});
    } else {
      await rm(dir, { recursive: true, force: true });
    }
    throw err;
  }
}

/** True once every thread of `pid` is in the stopped state (`T`) per /proc; false after `withinMs`. */
function waitAllThreadsStopped(pid: number, withinMs: number): boolean {
  const until = Date.now() + withinMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    let all = true;
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        // Field 3, after the parenthesised command name (which may contain spaces).
        const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
        if (state !== 'T' && state !== 't') {
          all = false;
          break;
        }
      }
    } catch {
      return false; // gone, or no /proc: nothing to wait for
    }
    if (all) return true;
    if (Date.now() > until) return false;
    Atomics.wait(pause, 0, 0, 1);
  }
}
