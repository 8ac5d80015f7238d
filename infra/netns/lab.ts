/**
 * A network-namespace lab (root only): every database node is a host with its own address, so
 * partitions, address moves and ARP are the kernel's, not a model's.
 *
 *   root namespace: bridge smfbr<tag>, 10.77.0.1/24   (the prober, the clients, the local cloud)
 *     ├─ veth ── namespace smf<tag>-db1: eth0 10.77.0.11/24, lo up
 *     ├─ veth ── namespace smf<tag>-db2: eth0 10.77.0.12/24
 *     └─ ...
 *
 * Addresses exist only on the bridge and inside the namespaces created here. Everything the lab
 * creates is removed by close(), by the process exit hooks (cleanup registry), and by a detached
 * watchdog when this process is SIGKILLed: processes in the namespaces first, then the
 * namespaces, then the bridge.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import {
  type CleanupEntry,
  killHard,
  registerCleanup,
  unregisterCleanup,
} from '../cluster/cleanup-registry.ts';

export interface NetnsLabOptions {
  /** Node ids, one namespace each, addressed .11, .12, ... in order. */
  nodes: string[];
  /** A /24 that exists nowhere else on this machine; default 10.77.0.0/24. */
  subnet?: string;
  log?: (msg: string) => void;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface NetnsLab {
  /** The root namespace's address on the bridge (.1): where probes and clients come from. */
  readonly hostAddress: string;
  /** e.g. '10.77.0.0/24' */
  readonly subnet: string;
  readonly prefixLength: 24;
  readonly bridge: string;
  /** The interface name inside every node namespace. */
  readonly device: 'eth0';
  readonly nodes: readonly string[];
  /** The node's own address (.11 for the first node). */
  addressOf(nodeId: string): string;
  /** `<subnet>.<hostOctet>`, for VIPs and other lab addresses. */
  addressAt(hostOctet: number): string;
  namespaceOf(nodeId: string): string;
  /** argv that runs `argv` inside the node's namespace (`ip netns exec <ns> ...`). */
  wrap(nodeId: string, argv: string[]): string[];
  /** Runs `argv` in the node's namespace and collects its output (never throws on exit codes). */
  exec(nodeId: string, argv: string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
  /** Starts `argv` in the node's namespace without waiting (killed by close() if still running). */
  spawnBackground(nodeId: string, argv: string[]): ChildProcess;
  /** IPv4 addresses on the node's eth0 (without prefix length). */
  addresses(nodeId: string): Promise<string[]>;
  /** Cuts the node off: its eth0 goes down (both the bridge and its peers lose it). */
  partition(nodeId: string): Promise<void>;
  /** Brings the node's eth0 back up. */
  heal(nodeId: string): Promise<void>;
  close(): Promise<void>;
}

const SUBNET_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/;
const NODE_ID_RE = /^[A-Za-z0-9_-]{1,16}$/;

function findTool(name: string): string | undefined {
  for (const dir of [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/usr/bin',
    '/sbin',
    '/bin',
  ]) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Checks what the lab needs and returns why it cannot run ('' when it can): root, `ip`
 * (iproute2) and `arping` (Debian iputils-arping, used by the guest steps).
 */
export function netnsLabUnavailableReason(): string {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push(`root (running as uid ${process.getuid?.() ?? 'unknown'})`);
  if (findTool('ip') === undefined) missing.push('`ip` (apt-get install -y iproute2)');
  if (findTool('arping') === undefined) missing.push('`arping` (apt-get install -y iputils-arping)');
  return missing.length === 0 ? '' : `The network-namespace lab needs ${missing.join(', ')}`;
}

function ipSync(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function ipQuiet(args: string[]): void {
  try {
    ipSync(args);
  } catch {
    // already gone
  }
}

function run(argv: string[], timeoutMs = 10_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', (err) => resolve({ code: 127, stdout, stderr: `${stderr}${err.message}` }));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

/** Pids of every process in namespace `ns` (`ip netns pids`). */
function namespacePids(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .split(/\s+/)
      .filter((s) => /^\d+$/.test(s))
      .map(Number);
  } catch {
    return [];
  }
}

const WATCHDOG_SCRIPT = `
owner="$1"; dir="$2"; bridge="$3"; shift 3
while kill -0 "$owner" 2>/dev/null && [ -d "$dir" ]; do sleep 0.5; done
[ -d "$dir" ] || exit 0
for ns in "$@"; do
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null; done
done
sleep 0.5
for ns in "$@"; do ip netns del "$ns" 2>/dev/null; done
ip link del "$bridge" 2>/dev/null
rm -rf -- "$dir"
`;

/**
 * Creates the lab: a bridge with `.1` in the root namespace and one namespace per node with a
 * veth into the bridge and its own address. Throws, naming what is missing, when not root or
 * when `ip`/`arping` are absent, and when the subnet is already in use on this machine.
 */
export async function startNetnsLab(opts: NetnsLabOptions): Promise<NetnsLab> {
  const reason = netnsLabUnavailableReason();
  if (reason !== '') throw new Error(reason);
  const subnet = opts.subnet ?? '10.77.0.0/24';
  const m = SUBNET_RE.exec(subnet);
  if (!m || [m[1], m[2], m[3]].some((o) => Number(o) > 255))
    throw new Error(`subnet must be a /24 like 10.77.0.0/24, got ${subnet}`);
  const net = `${m[1]}.${m[2]}.${m[3]}`;
  if (opts.nodes.length === 0 || opts.nodes.length > 200) throw new Error('nodes: 1 to 200 node ids');
  for (const id of opts.nodes) if (!NODE_ID_RE.test(id)) throw new Error(`Invalid node id ${id}`);
  const inUse = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
  if (inUse.includes(` ${net}.`))
    throw new Error(`Subnet ${subnet} is already in use on this machine (another lab?): pick another`);
  const log = opts.log ?? (() => {});

  const tag = randomBytes(3).toString('hex');
  const bridge = `smfbr${tag}`;
  const nsOf = new Map(opts.nodes.map((id) => [id, `smf${tag}-${id}`]));
  const addrOf = new Map(opts.nodes.map((id, i) => [id, `${net}.${11 + i}`]));
  const dir = mkdtempSync(join(tmpdir(), 'smf-netns-'));
  const background = new Set<ChildProcess>();
  let closed = false;

  const teardownSync = () => {
    for (const child of background) if (child.pid !== undefined) killHard(child.pid);
    background.clear();
    for (const ns of nsOf.values()) for (const pid of namespacePids(ns)) killHard(pid);
    for (const ns of nsOf.values()) ipQuiet(['netns', 'del', ns]);
    ipQuiet(['link', 'del', bridge]);
  };
  const entry: CleanupEntry = {
    dir,
    pids: () => [],
    groups: () => [],
    teardownSync,
  };
  registerCleanup(entry);
  const watchdog = spawn(
    'sh',
    ['-c', WATCHDOG_SCRIPT, 'smf-netns-watchdog', String(process.pid), dir, bridge, ...nsOf.values()],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.on('error', () => {});
  watchdog.unref();

  const close = async () => {
    if (closed) return;
    closed = true;
    teardownSync();
    try {
      if (watchdog.pid !== undefined) process.kill(watchdog.pid, 'SIGKILL');
    } catch {
      // already exited
    }
    rmSync(dir, { recursive: true, force: true });
    unregisterCleanup(entry);
    log(`netns lab ${tag} removed`);
  };

  try {
    const t0 = Date.now();
    ipSync(['link', 'add', bridge, 'type', 'bridge']);
    ipSync(['addr', 'add', `${net}.1/24`, 'dev', bridge]);
    ipSync(['link', 'set', bridge, 'up']);
    opts.nodes.forEach((id, i) => {
      const ns = nsOf.get(id)!;
      const hostSide = `smfv${tag}${i}`;
      const peer = `smfp${tag}${i}`;
      ipSync(['netns', 'add', ns]);
      ipSync(['link', 'add', hostSide, 'type', 'veth', 'peer', 'name', peer]);
      ipSync(['link', 'set', peer, 'netns', ns]);
      ipSync(['link', 'set', hostSide, 'master', bridge]);
      ipSync(['link', 'set', hostSide, 'up']);
      ipSync(['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
      ipSync(['-n', ns, 'addr', 'add', `${addrOf.get(id)}/24`, 'dev', 'eth0']);
      ipSync(['-n', ns, 'link', 'set', 'eth0', 'up']);
      ipSync(['-n', ns, 'link', 'set', 'lo', 'up']);
    });
    log(
      `netns lab ${tag}: bridge ${bridge} ${net}.1, ${opts.nodes.length} namespaces in ${Date.now() - t0} ms`,
    );
  } catch (err) {
    await close();
    throw new Error(`Creating the netns lab failed: ${(err as Error).message}`);
  }

  const nsFor = (id: string) => {
    const ns = nsOf.get(id);
    if (ns === undefined) throw new Error(`Unknown lab node ${id} (have ${opts.nodes.join(', ')})`);
    return ns;
  };
  const wrap = (id: string, argv: string[]) => ['ip', 'netns', 'exec', nsFor(id), ...argv];

  return {
    hostAddress: `${net}.1`,
    subnet,
    prefixLength: 24,
    bridge,
    device: 'eth0',
    nodes: [...opts.nodes],
    addressOf: (id) => {
      nsFor(id);
      return addrOf.get(id)!;
    },
    addressAt: (octet) => {
      if (!Number.isInteger(octet) || octet < 2 || octet > 254) throw new Error(`Bad host octet ${octet}`);
      return `${net}.${octet}`;
    },
    namespaceOf: nsFor,
    wrap,
    exec: (id, argv, o) => run(wrap(id, argv), o?.timeoutMs),
    spawnBackground: (id, argv) => {
      const [cmd, ...args] = wrap(id, argv);
      const child = spawn(cmd!, args, { stdio: 'ignore' });
      child.on('error', () => {});
      background.add(child);
      child.on('exit', () => background.delete(child));
      return child;
    },
    addresses: async (id) => {
      const r = await run(['ip', '-n', nsFor(id), '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      return [...r.stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)].map((x) => x[1]!);
    },
    partition: async (id) => {
      ipSync(['-n', nsFor(id), 'link', 'set', 'eth0', 'down']);
      log(`netns: ${id} partitioned (eth0 down)`);
    },
    heal: async (id) => {
      ipSync(['-n', nsFor(id), 'link', 'set', 'eth0', 'up']);
      log(`netns: ${id} healed (eth0 up)`);
    },
    close,
  };
}
