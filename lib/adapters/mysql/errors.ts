/**
 * Typed errors of the MySQL/MariaDB dialect layer and its named operations. They extend the
 * hierarchy of lib/errors.ts (same `name` contract with the state machines); the coordinator
 * moves them into lib/errors.ts.
 */
import { FailoverError } from '../../errors.ts';

/** The server is neither a supported MariaDB nor a supported MySQL (terminal: change nothing). */
export class UnsupportedServerError extends FailoverError {}

/**
 * A value we would have to put into SQL text (host, user, password, GTID set) is not safe or
 * not valid there. Thrown before anything is sent, so nothing changed.
 */
export class InvalidSqlValueError extends FailoverError {}

/** The semi-sync plugin this operation needs is not installed on the node. */
export class SemiSyncUnavailableError extends FailoverError {}

/** The replication threads did not both run within the time given (last IO/SQL errors in details). */
export class ReplicationNotRunningError extends FailoverError {}

/** An operation that needs a configured replica ran on a node that replicates from nobody. */
export class NotAReplicaError extends FailoverError {}

/**
 * A statement of a named operation failed for a reason the caller cannot cure by retrying
 * (syntax, state, unknown variable). The message names the operation, the node and the
 * server's error; it never holds the SQL text nor a password.
 */
export class MysqlOperationError extends FailoverError {}
