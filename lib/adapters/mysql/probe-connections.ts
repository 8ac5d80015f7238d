import type { NodeProbe } from '../../core/types.ts';
import { AdminSession, classifyError, type Login, type Timeouts } from './connection.ts';
import type { Dialect } from './dialect/types.ts';
import { detectDialect, type ProbeTarget, readNode } from './probe.ts';

interface Held {
  session: AdminSession;
  /**
   * The node's dialect, detected on this connection's first probe (@@version) and kept as long
   * as the connection lives: a server can change version only by restarting, which ends it.
   */
  dialect?: Dialect;
  /** Endpoint and login the session was opened with: any change opens a new one. */
  key: string;
  /** False once the server closed it or it failed: never used again. */
  alive: boolean;
  /** Set when we close it ourselves, so that close is not reported as lost. */
  closing: boolean;
}

/**
 * One persistent, health-checked probe connection per node, for the rounds of one invocation:
 * a round costs the status queries only, not a TCP and authentication handshake per node. The
 * queries go as one multi-statement batch in the node's dialect (MariaDB, MySQL 8.0.23+/8.4,
 * MySQL 5.7/8.0): one round trip per node per round, two on the primary (its heartbeat write
 * follows the state store's check). Only this class's connections allow multi-statement
 * queries, and they only ever send the constant statements of dialect/probe-batch.ts.
 *
 * The evidence stays what a fresh connection per round gives:
 * - a query on a held connection is bounded by the same query timeout, so a frozen server is a
 *   `timeout` after queryTimeoutMs, as a fresh connection whose greeting never comes is one after
 *   connectTimeoutMs (both 1000 ms by default);
 * - a connection on which any statement failed or timed out (also one readNode catches, like a
 *   heartbeat write waiting for semi-sync acks) is destroyed, never reused;
 * - any other failure of a held connection (the server closed it: a restart, a KILL, an idle
 *   timeout) is not evidence: the node is probed again at once on a fresh connection, and that
 *   answer (refused, timeout, ...) is what the analysis sees.
 *
 * When the server closes a held connection (mariadbd dies: the kernel closes its sockets at once),
 * `onLost(nodeId)` is called, so the caller can probe now instead of at the next round. The
 * close itself is never evidence: only the probe it triggers is.
 */
export class ProbeConnections {
  private readonly held = new Map<string, Held>();

  constructor(private readonly onLost?: (nodeId: string) => void) {}

  /** Probes one node (see probeNode): never throws. */
  async probe(target: ProbeTarget, login: Login, timeouts: Timeouts): Promise<NodeProbe> {
    const started = performance.now();
    const key = `${target.host}:${target.port}:${login.user}:${login.password}`;
    const current = this.held.get(target.nodeId);
    if (current && (!current.alive || current.key !== key)) this.drop(target.nodeId);
    const reuse = this.held.get(target.nodeId);
    if (reuse) {
      try {
        reuse.dialect ??= await detectDialect(reuse.session);
        const probe = await readNode(reuse.session, target, reuse.dialect);
        probe.probeMs = Math.round(performance.now() - started);
        if (!reuse.session.clean) void this.drop(target.nodeId);
        return probe;
      } catch (err) {
        this.drop(target.nodeId);
        const error = classifyError(err);
        if (error.kind === 'timeout')
          return {
            nodeId: target.nodeId,
            reachable: false,
            error,
            probeMs: Math.round(performance.now() - started),
          };
        // Not evidence (see above): ask a fresh connection.
      }
    }
    let session: AdminSession;
    try {
      session = await AdminSession.open(target, login, timeouts, target.nodeId, { batches: true });
    } catch (err) {
      return {
        nodeId: target.nodeId,
        reachable: false,
        error: classifyError(err),
        probeMs: Math.round(performance.now() - started),
      };
    }
    const entry: Held = { session, key, alive: true, closing: false };
    session.onClose(() => {
      entry.alive = false;
      if (!entry.closing && this.held.get(target.nodeId) === entry) this.onLost?.(target.nodeId);
    });
    this.held.set(target.nodeId, entry);
    try {
      entry.dialect = await detectDialect(session);
      const probe = await readNode(session, target, entry.dialect);
      probe.probeMs = Math.round(performance.now() - started);
      // A statement failed inside (a heartbeat write that timed out, a missing table): reconnect.
      if (!session.clean) void this.drop(target.nodeId);
      return probe;
    } catch (err) {
      this.drop(target.nodeId);
      return {
        nodeId: target.nodeId,
        reachable: false,
        error: classifyError(err),
        probeMs: Math.round(performance.now() - started),
      };
    }
  }

  /** Closes every held connection (the invocation's end). */
  async closeAll(): Promise<void> {
    const all = [...this.held.keys()];
    await Promise.all(all.map((id) => this.drop(id)));
  }

  /** How many connections are held (tests). */
  size(): number {
    return this.held.size;
  }

  private drop(nodeId: string): Promise<void> {
    const h = this.held.get(nodeId);
    if (!h) return Promise.resolve();
    this.held.delete(nodeId);
    h.closing = true;
    h.alive = false;
    return h.session.close().catch(() => {});
  }
}
