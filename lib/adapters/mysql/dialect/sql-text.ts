/**
 * Writing values into SQL text. CHANGE MASTER / CHANGE REPLICATION SOURCE take no
 * placeholders on the server, and mysql2's client-side `?` escaping uses backslash escapes,
 * which a session with NO_BACKSLASH_ESCAPES reads literally (a password `a'b` would arrive as
 * `a\'b`, or end the string early). So literals are built here, per the session's sql_mode.
 */
import { InvalidSqlValueError } from '../../../errors.ts';
import type { QuoteMode } from './types.ts';

/**
 * A string literal that means `value` under the given sql_mode. A quote is always doubled
 * (valid in both modes); a backslash is doubled only when backslash is an escape character.
 * NUL and other control characters are refused: no account or host needs them, and some
 * clients truncate at NUL.
 *
 * @param what names the value in the error (never the value itself: it may be a password).
 * @throws InvalidSqlValueError on control characters.
 */
export function sqlStringLiteral(value: string, mode: QuoteMode, what: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new InvalidSqlValueError(
      `${what} contains a control character; use a value without control characters`,
      { what },
    );
  }
  const escaped = mode.noBackslashEscapes ? value : value.replaceAll('\\', '\\\\');
  return `'${escaped.replaceAll("'", "''")}'`;
}

const HOST = /^[A-Za-z0-9._:%-]{1,255}$/;
const USER = /^[A-Za-z0-9_.$-]{1,80}$/;

/** A host name or address for CHANGE MASTER; refuses anything that is not one. */
export function checkHost(host: string): string {
  if (!HOST.test(host)) {
    throw new InvalidSqlValueError(
      `Source host "${host.slice(0, 80)}" is not a host name or IP address (letters, digits, . - : only)`,
      { host: host.slice(0, 80) },
    );
  }
  return host;
}

/** A TCP port. */
export function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidSqlValueError(`Source port ${port} is not an integer between 1 and 65535`, { port });
  }
  return port;
}

/** An account name for CHANGE MASTER or a PROCESSLIST filter. */
export function checkUser(user: string): string {
  if (!USER.test(user)) {
    throw new InvalidSqlValueError(
      `Account name "${user.slice(0, 80)}" has characters other than letters, digits and _ . $ -`,
      { user: user.slice(0, 80) },
    );
  }
  return user;
}

/** A positive whole number of seconds for a statement option. */
export function checkSeconds(value: number, what: string): number {
  if (!Number.isFinite(value) || value < 0 || value > 86_400) {
    throw new InvalidSqlValueError(`${what} must be between 0 and 86400 seconds, got ${value}`, {
      what,
      value,
    });
  }
  return value;
}
