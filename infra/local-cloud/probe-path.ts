/**
 * The prober's own network path to each database node, with fault injection.
 *
 * In production the health check runs in its own subnet/ENI; replication runs between the
 * database hosts. A partition between the prober and a node therefore leaves replication
 * untouched. Locally everything is on loopback, so the prober's traffic is routed through one
 * TCP forwarder per node (the config's `probeHost`/`probePort`, via the local cloud's
 * `nodeOverrides`) while replication and the failover steps keep using `host`/`port` directly.
 *
 * Modes per node:
 *   - `pass`:   bytes flow both ways.
 *   - `drop`:   a blackhole, what a partition looks like to the prober. New connections are
 *               accepted and then never answered (no greeting), existing connections stop
 *               delivering in both directions (bytes are held, as TCP retransmits would, and
 *               flow again when the path heals, unless a side gave up first). The prober sees
 *               connect or query TIMEOUTS, never a refusal. (A real partition leaves the SYN
 *               unanswered instead of completing it; mysql2's connectTimeout spans the TCP
 *               connect and the server greeting, so the prober cannot tell the two apart: it
 *               gets ETIMEDOUT after connectTimeoutMs either way.)
 *   - `refuse`: new connections are reset at once and existing ones are reset: what a host
 *               with no listener answers (ECONNREFUSED / ECONNRESET).
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export type ProbePathMode = 'pass' | 'drop' | 'refuse';

export interface ProbePathEndpoint {
  host: string;
  port: number;
}

/** Where node `id` really is; resolved per connection (undefined: the connection is reset). */
export type ProbePathResolver = (id: string) => ProbePathEndpoint | undefined;

export interface ProbePathStats {
  /** Connections accepted since start. */
  accepted: number;
  /** Connections open now. */
  open: number;
  /** Most connections open at the same time since start (or the last resetStats). */
  maxOpen: number;
}

export interface ProbePaths {
  /** `nodeOverrides` for startLocalCloud: route the prober of each node through its forwarder. */
  nodeOverrides: Record<string, { probeHost: string; probePort: number }>;
  /** Sets the mode of one node's path, or of every path when `nodeId` is '*'. */
  set(nodeId: string, mode: ProbePathMode): void;
  mode(nodeId: string): ProbePathMode;
  stats(nodeId: string): ProbePathStats;
  resetStats(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  /** Bytes held while the path drops; delivered in order when it passes again. */
  heldUp: Array<Buffer | string>;
  heldDown: Array<Buffer | string>;
  teardown: () => void;
}

interface Path {
  id: string;
  resolve: ProbePathResolver;
  server: Server;
  mode: ProbePathMode;
  pairs: Set<Pair>;
  stats: ProbePathStats;
}

/**
 * Starts one forwarder per node on 127.0.0.1 (free ports), all in `pass` mode.
 *
 * @param ids the node ids.
 * @param resolve where each node really is, asked per connection (so the paths can exist before
 *   the cluster's ports are known, e.g. `resolveFromFailoverConfig`).
 */
export async function startProbePaths(
  ids: readonly string[],
  resolve: ProbePathResolver,
): Promise<ProbePaths> {
  const paths = new Map<string, Path>();
  try {
    for (const id of ids) paths.set(id, await startPath(id, resolve));
  } catch (err) {
    await Promise.allSettled([...paths.values()].map(closePath));
    throw err;
  }
  const get = (id: string): Path => {
    const p = paths.get(id);
    if (!p) throw new Error(`No probe path for node "${id}" (known: ${[...paths.keys()].join(', ')})`);
    return p;
  };
  return {
    nodeOverrides: Object.fromEntries(
      [...paths].map(([id, p]) => [id, { probeHost: '127.0.0.1', probePort: portOf(p.server) }]),
    ),
    set(nodeId, mode) {
      for (const p of nodeId === '*' ? [...paths.values()] : [get(nodeId)]) setMode(p, mode);
    },
    mode: (nodeId) => get(nodeId).mode,
    stats: (nodeId) => ({ ...get(nodeId).stats }),
    resetStats() {
      for (const p of paths.values()) {
        p.stats.accepted = 0;
        p.stats.maxOpen = p.stats.open;
      }
    },
    async close() {
      await Promise.allSettled([...paths.values()].map(closePath));
      paths.clear();
    },
  };
}

function portOf(server: Server): number {
  const a = server.address();
  return typeof a === 'object' && a ? a.port : 0;
}

async function startPath(id: string, resolve: ProbePathResolver): Promise<Path> {
  const path: Path = {
    id,
    resolve,
    server: createServer({ noDelay: true }),
    mode: 'pass',
    pairs: new Set(),
    stats: { accepted: 0, open: 0, maxOpen: 0 },
  };
  path.server.on('connection', (client) => accept(path, client));
  await new Promise<void>((resolve, reject) => {
    path.server.once('error', reject);
    path.server.listen(0, '127.0.0.1', () => {
      path.server.off('error', reject);
      resolve();
    });
  });
  return path;
}

function accept(path: Path, client: Socket): void {
  path.stats.accepted++;
  if (path.mode === 'refuse') {
    client.resetAndDestroy();
    return;
  }
  let closed = false;
  const pair: Pair = {
    client,
    upstream: undefined,
    heldUp: [],
    heldDown: [],
    teardown: () => {
      if (closed) return;
      closed = true;
      path.pairs.delete(pair);
      path.stats.open--;
      client.destroy();
      pair.upstream?.destroy();
    },
  };
  path.pairs.add(pair);
  path.stats.open++;
  path.stats.maxOpen = Math.max(path.stats.maxOpen, path.stats.open);
  client.on('error', pair.teardown).on('close', pair.teardown);
  client.on('data', (chunk) => {
    if (path.mode === 'pass' && pair.upstream) pair.upstream.write(chunk);
    else pair.heldUp.push(chunk);
  });
  // A connection accepted while dropping gets its upstream only when the path heals: the
  // server behind a partition never sees it, exactly as a lost SYN.
  if (path.mode === 'pass') connectUpstream(path, pair);
}

function connectUpstream(path: Path, pair: Pair): void {
  const target = path.resolve(path.id);
  if (!target) {
    pair.client.resetAndDestroy();
    return;
  }
  const upstream = tcpConnect({ host: target.host, port: target.port, noDelay: true });
  pair.upstream = upstream;
  upstream.on('error', pair.teardown).on('close', pair.teardown);
  upstream.on('data', (chunk) => {
    if (path.mode === 'pass') pair.client.write(chunk);
    else pair.heldDown.push(chunk);
  });
  flush(pair);
}

function flush(pair: Pair): void {
  if (pair.upstream) for (const c of pair.heldUp.splice(0)) pair.upstream.write(c);
  for (const c of pair.heldDown.splice(0)) pair.client.write(c);
}

function setMode(path: Path, mode: ProbePathMode): void {
  path.mode = mode;
  if (mode === 'refuse') {
    for (const pair of [...path.pairs]) {
      pair.client.resetAndDestroy();
      pair.upstream?.destroy();
    }
    return;
  }
  if (mode === 'pass') {
    for (const pair of path.pairs) {
      if (pair.upstream) flush(pair);
      else connectUpstream(path, pair);
    }
  }
}

async function closePath(path: Path): Promise<void> {
  for (const pair of path.pairs) {
    pair.client.destroy();
    pair.upstream?.destroy();
  }
  await new Promise<void>((resolve) => path.server.close(() => resolve()));
}

/**
 * A resolver reading the nodes' host/port from the failover config the local cloud wrote
 * (FAILOVER_CONFIG_FILE), for callers that create the paths before the cluster exists.
 */
export function resolveFromFailoverConfig(clusterName?: string): ProbePathResolver {
  return (id) => {
    const file = process.env.FAILOVER_CONFIG_FILE;
    if (!file) return undefined;
    const cfg = JSON.parse(readFileSync(file, 'utf8')) as {
      clusters: Array<{ name: string; nodes: Array<{ id: string; host: string; port: number }> }>;
    };
    const cluster = cfg.clusters.find((c) => clusterName === undefined || c.name === clusterName);
    const node = cluster?.nodes.find((n) => n.id === id);
    return node ? { host: node.host, port: node.port } : undefined;
  };
}
