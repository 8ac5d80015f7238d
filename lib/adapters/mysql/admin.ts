import { MissingPrivilegeError, NodeUnreachableError } from '../../errors.ts';
import {
  type AdminSession,
  classifyError,
  type Endpoint,
  type Login,
  type Timeouts,
  withSession,
} from './connection.ts';
import { type Inst, type OpsClock, openInst } from './operations.ts';

export interface ReplicaOf {
  host: string;
  port: number;
}

/**
 * Runs admin statements against one node, translating driver errors into typed errors:
 * unreachable -> NodeUnreachableError (retried by the state machine), privilege -> MissingPrivilegeError.
 */
export async function onNode<T>(
  nodeId: string,
  endpoint: Endpoint,
  login: Login,
  timeouts: Timeouts,
  operation: string,
  fn: (s: AdminSession) => Promise<T>,
): Promise<T> {
  try {
    return await withSession(endpoint, login, timeouts, nodeId, fn);
  } catch (err) {
    throw translateError(err, nodeId, operation);
  }
}

/**
 * Opens a session on one node, detects its dialect once (MariaDB, MySQL 5.7, 8.0, 8.4) and hands
 * its named operations to `fn`: the way the failover steps, switchover and rejoin talk to a
 * server. Errors are translated as by {@link onNode}.
 */
export function onInst<T>(
  nodeId: string,
  endpoint: Endpoint,
  login: Login,
  timeouts: Timeouts,
  operation: string,
  fn: (inst: Inst) => Promise<T>,
  clock?: OpsClock,
): Promise<T> {
  return onNode(nodeId, endpoint, login, timeouts, operation, async (s) =>
    fn(await openInst(s, nodeId, clock)),
  );
}

export type { Inst };

export function translateError(err: unknown, nodeId: string, operation: string): Error {
  if (err instanceof Error && err.name.endsWith('Error') && 'transient' in err) return err;
  const c = classifyError(err);
  const msg = `${operation} on ${nodeId} failed: ${c.code}: ${c.message}`;
  if (c.kind === 'refused' || c.kind === 'timeout' || c.kind === 'unreachable')
    return new NodeUnreachableError(msg, { nodeId, code: c.code });
  const code = (err as { code?: string }).code ?? '';
  if (
    code === 'ER_SPECIFIC_ACCESS_DENIED_ERROR' ||
    code === 'ER_DBACCESS_DENIED_ERROR' ||
    c.kind === 'auth'
  ) {
    return new MissingPrivilegeError(`${msg}. Grant the failover admin account the privilege named above.`, {
      nodeId,
      code,
    });
  }
  return err instanceof Error ? err : new Error(msg);
}
