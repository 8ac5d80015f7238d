/**
 * Typed errors, all of them in this file. Their `name`s are the contract with the state machines
 * (infra/state-machine.yml, infra/switchover-state-machine.yml): Retry lists the transient names,
 * Catch routes the terminal ones (test/failover/state-machine-contract.test.ts checks both).
 * Keep a name once it has shipped.
 */

export class FailoverError extends Error {
  /** Whether the state machine retries the step that threw it. */
  readonly transient: boolean = false;
  readonly details: Record<string, unknown>;

  constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.details = details;
  }
}

/** Base of errors a retry may cure (throttling, a connection that timed out). */
export class TransientFailoverError extends FailoverError {
  override readonly transient = true;
}

// ---- input and configuration (terminal, change nothing) ----
export class ConfigError extends FailoverError {}
export class InvalidRequestError extends FailoverError {}
export class UnknownClusterError extends FailoverError {}
export class SecretNotFoundError extends FailoverError {}

// ---- coordination ----
/** Another failover for this cluster holds the epoch, or ours is stale. Terminal for this execution. */
export class StaleEpochError extends FailoverError {}
export class FailoverBlockedError extends FailoverError {}

// ---- state table ----
/**
 * The state table did not answer (DynamoDB 5xx, throttling after the SDK's own retries, a timeout
 * or a dropped connection). Translated at the adapter boundary, so the state machines retry it: a
 * BeginFailover that failed before its conditional write never burns the incident.
 */
export class StateStoreUnavailableError extends TransientFailoverError {}

// ---- database ----
/** A node did not answer in time or refused; retried. */
export class NodeUnreachableError extends TransientFailoverError {}
/** The admin account lacks a privilege the step needs. */
export class MissingPrivilegeError extends FailoverError {}
export class NoEligibleCandidateError extends FailoverError {}
export class ErrantTransactionsError extends FailoverError {}
/** The candidate did not apply its relay log within the configured time. */
export class RelayLogTimeoutError extends FailoverError {}
export class PromotionFailedError extends FailoverError {}
/** The candidate could not collect what another replica received before it (catch-up timed out). */
export class CatchUpFailedError extends FailoverError {}
/** A failover hook Lambda failed and its policy is 'fail'. */
export class HookFailedError extends FailoverError {}

// ---- MySQL/MariaDB dialect and its named operations (lib/adapters/mysql/operations.ts) ----
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

// ---- cloud ----
export class ProviderThrottledError extends TransientFailoverError {}
export class ProviderTransientError extends TransientFailoverError {}
export class VipMoveFailedError extends FailoverError {}
export class VipNotVerifiedError extends FailoverError {}
/**
 * STONITH was enabled and the old primary's instance could not be stopped (or not confirmed
 * stopped) in time. Terminal: the candidate is not promoted.
 */
export class StonithFailedError extends FailoverError {}

// ---- operator actions ----
/** An operator action was refused before it changed anything (not a crash: an expected outcome). */
export class OperatorRefusedError extends FailoverError {}
/** The switchover's pre-checks failed: nothing was changed. */
export class SwitchoverPreCheckFailedError extends FailoverError {}
/** The candidate did not reach the old primary's last transaction in time: writes are restored. */
export class SwitchoverCatchUpTimeoutError extends FailoverError {}

/** Names retried by the state machine; kept next to the classes so they cannot drift. */
export const TRANSIENT_ERROR_NAMES = [
  'NodeUnreachableError',
  'ProviderThrottledError',
  'ProviderTransientError',
  'StateStoreUnavailableError',
  'TransientFailoverError',
] as const;

/** Removes credentials and signed URLs from a message before it is logged or stored. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('***');
  return out
    .replace(/(Signature|AccessKeyId|SecurityToken|X-Amz-Signature|X-Amz-Credential)=([^&\s"']+)/gi, '$1=***')
    .replace(/(Credential=)[^,\s]+/g, '$1***')
    .replace(/(password["']?\s*[:=]\s*["']?)[^"'\s,}]+/gi, '$1***');
}

/** A JSON-safe view of an error for state records and task outputs (never includes secrets). */
export function describeError(
  err: unknown,
  secrets: readonly string[] = [],
): { name: string; message: string } {
  if (err instanceof Error) return { name: err.name, message: redact(err.message, secrets) };
  return { name: 'Error', message: redact(String(err), secrets) };
}
