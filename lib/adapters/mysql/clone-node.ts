/**
 * Runs a MySQL clone (dialect/clone.ts) on a recipient's session: refuses first, changing
 * nothing, when the versions or the plugin do not allow it, then allows the donor and clones.
 * What the CLONE statement's end means (MySQL 8.4 Reference Manual, 7.6.7.3 "Cloning Remote
 * Data"): the recipient restarts itself (the session's connection is lost), or it answers 3707
 * when no supervisor can restart it. Either way its data and GTID history are the donor's.
 */
import { NodeUnreachableError, OperatorRefusedError } from '../../errors.ts';
import {
  cloneStatements,
  cloneSupport,
  ER_CLONE_RESTART_NO_SUPERVISOR,
  INSTALL_CLONE_PLUGIN,
  readClonePlugin,
} from './dialect/clone.ts';
import type { QuoteMode, ServerVersion, SourceSpec } from './dialect/types.ts';
import { type SqlSession, translate } from './operations.ts';

export type CloneOutcome =
  /** The connection dropped at the clone's end: a supervisor restarts the node with the donor's data. */
  | 'restarting'
  /** 3707: cloned, but mysqld must be started by hand (no supervisor). */
  | 'restart-by-hand'
  /** The client gave up waiting (timeoutMs); the clone may still run: performance_schema.clone_status tells. */
  | 'unknown';

export interface CloneRequest {
  nodeId: string;
  /** The recipient's and the donor's versions (openInst detected them). */
  recipient: ServerVersion;
  donor: ServerVersion;
  /** The donor's address and an account with BACKUP_ADMIN there. */
  source: SourceSpec & { nodeId: string };
  quote: QuoteMode;
  /** How long the client waits for CLONE INSTANCE to return. */
  timeoutMs: number;
}

/**
 * Clones `source` onto the node of `session`. Destroys the node's data: call it only for a node
 * that must be rebuilt (errant or purged history).
 *
 * @throws OperatorRefusedError (nothing changed) when a version or the clone plugin rules it out,
 *   naming what to do; MissingPrivilegeError for CLONE_ADMIN / BACKUP_ADMIN; other typed errors
 *   from the operations layer, never carrying the password.
 */
export async function cloneNode(session: SqlSession, req: CloneRequest): Promise<CloneOutcome> {
  const support = cloneSupport(req.recipient, req.donor);
  if (!support.ok) {
    throw new OperatorRefusedError(
      `Rebuild of ${req.nodeId} by CLONE refused: ${support.reason}. The clone changed nothing.`,
      { nodeId: req.nodeId },
    );
  }
  // Build before running anything: a bad host or password fails here and changes nothing.
  const [allowDonor, clone] = cloneStatements(req.source, req.quote);
  const plugin = readClonePlugin();
  let installed: boolean;
  try {
    installed = plugin.parse(await session.query(plugin.sql, [...plugin.params]));
  } catch (err) {
    throw translate(err, req.nodeId, 'cloneNode', []);
  }
  if (!installed) {
    throw new OperatorRefusedError(
      `Rebuild of ${req.nodeId} by CLONE refused: the clone plugin is not active on ${req.nodeId}. ` +
        `Run ${INSTALL_CLONE_PLUGIN} on ${req.nodeId} and on the donor ${req.source.nodeId} (and add plugin-load-add=mysql_clone.so to both my.cnf), then retry. The clone changed nothing.`,
      { nodeId: req.nodeId },
    );
  }
  try {
    await session.query(allowDonor!.sql, [...allowDonor!.params]);
  } catch (err) {
    throw translate(err, req.nodeId, 'cloneNode', []);
  }
  try {
    await session.query(clone!.sql, [...clone!.params], req.timeoutMs);
  } catch (err) {
    if ((err as { errno?: number }).errno === ER_CLONE_RESTART_NO_SUPERVISOR) return 'restart-by-hand';
    const typed = translate(err, req.nodeId, 'cloneNode', clone!.secrets ?? []);
    if (typed instanceof NodeUnreachableError) {
      const code = String(typed.details.code ?? '');
      if (/CONNECTION_LOST|ECONNRESET|EPIPE/.test(code)) return 'restarting';
      if (/TIMEDOUT|TIMEOUT/i.test(code)) return 'unknown';
    }
    throw typed;
  }
  // CLONE returned normally: the server did not restart (a clone into a DATA DIRECTORY does
  // that, which this statement never asks for). Treat as needing a restart by hand.
  return 'restart-by-hand';
}

/** Whether the clone plugin is ACTIVE on the node of `session` (check: rebuild readiness). */
export async function isClonePluginActive(session: SqlSession, nodeId: string): Promise<boolean> {
  const plugin = readClonePlugin();
  try {
    return plugin.parse(await session.query(plugin.sql, [...plugin.params]));
  } catch (err) {
    throw translate(err, nodeId, 'isClonePluginActive', []);
  }
}
