/**
 * Which server a node runs, from `@@version` and `@@version_comment`, and which dialect speaks
 * to it. Pure: no I/O, so `check` and the tests can call it on recorded values.
 */
import { UnsupportedServerError } from '../../../errors.ts';
import { mariadbDialect } from './mariadb.ts';
import { atLeast, fmt, mysql8Dialect, mysql57Dialect } from './mysql.ts';
import type { Dialect, Flavor, ServerVersion } from './types.ts';

export interface DetectedFlavor extends ServerVersion {
  dialect: Dialect;
}

/**
 * Detects the flavor and version of a server and picks its dialect.
 *
 * Examples: `10.11.6-MariaDB-0+deb12u1-log` (MariaDB), `8.4.3` / `8.0.36-28` with comment
 * "Percona Server (GPL), …" / `5.7.44-log` (MySQL). A MariaDB seen through the replication
 * handshake may carry the `5.5.5-` prefix; it is ignored.
 *
 * @throws UnsupportedServerError naming the version and what is supported.
 */
export function detectFlavor(version: string, versionComment = ''): DetectedFlavor {
  const v = version.trim().replace(/^5\.5\.5-(?=\d+\.\d+\.\d+-MariaDB)/i, '');
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(v);
  if (!m) {
    throw new UnsupportedServerError(
      `Cannot read a server version from @@version "${version.slice(0, 80)}": expected major.minor.patch`,
      { version: version.slice(0, 80) },
    );
  }
  const isMariadb = /mariadb/i.test(v) || /mariadb/i.test(versionComment);
  const sv: ServerVersion = {
    flavor: isMariadb ? 'mariadb' : 'mysql',
    major: Number(m[1]),
    minor: Number(m[2]),
    patch: Number(m[3]),
  };
  const details = { version: version.slice(0, 80), versionComment: versionComment.slice(0, 120) };
  if (isMariadb) {
    if (!atLeast(sv, 10, 6, 0)) {
      throw new UnsupportedServerError(
        `MariaDB ${fmt(sv)} is not supported: upgrade to MariaDB 10.6 or later (10.6, 10.11, 11.x are)`,
        details,
      );
    }
    return { ...sv, dialect: mariadbDialect(sv) };
  }
  if (!atLeast(sv, 5, 7, 8)) {
    throw new UnsupportedServerError(
      `MySQL ${fmt(sv)} is not supported: MySQL 5.7.8 or later is needed (super_read_only, GTID auto-positioning)`,
      details,
    );
  }
  if (sv.major === 5 && sv.minor > 7) {
    throw new UnsupportedServerError(
      `MySQL ${fmt(sv)} is not a known release (5.7, 8.x and later are)`,
      details,
    );
  }
  return { ...sv, dialect: atLeast(sv, 8, 0, 23) ? mysql8Dialect(sv) : mysql57Dialect(sv) };
}

export interface NodeVersion {
  nodeId: string;
  /** @@version; undefined when the node could not be read (unreachable). */
  version?: string;
  versionComment?: string;
}

export type FlavorMixVerdict =
  | { kind: 'ok'; flavor: Flavor; warnings: string[] }
  | { kind: 'refused'; reason: string; warnings: string[] }
  | { kind: 'unknown'; reason: string; warnings: string[] };

/**
 * Refuses clusters that mix MariaDB and MySQL (a MariaDB replica of a MySQL primary or the
 * reverse): their GTIDs are different things (domain-server-seq positions vs uuid:n sets), so
 * no election, catch-up or errant check can compare them, and neither server replicates from
 * the other with GTID auto-positioning. Unreadable nodes are skipped; unsupported versions
 * refuse. A MySQL replica older than its primary gets a warning (MySQL supports replicating
 * from an older source to a newer replica, not the reverse).
 */
export function checkFlavorMix(nodes: readonly NodeVersion[], primaryId?: string): FlavorMixVerdict {
  const warnings: string[] = [];
  const seen: Array<{ nodeId: string; detected: DetectedFlavor }> = [];
  for (const n of nodes) {
    if (n.version === undefined) {
      warnings.push(`${n.nodeId}: version unknown (not reachable), not checked`);
      continue;
    }
    try {
      seen.push({ nodeId: n.nodeId, detected: detectFlavor(n.version, n.versionComment) });
    } catch (err) {
      return { kind: 'refused', reason: `${n.nodeId}: ${(err as Error).message}`, warnings };
    }
  }
  if (seen.length === 0) return { kind: 'unknown', reason: 'no node version could be read', warnings };
  const describe = (x: (typeof seen)[number]) =>
    `${x.nodeId} ${x.detected.flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} ${fmt(x.detected)}`;
  const mariadb = seen.filter((x) => x.detected.flavor === 'mariadb');
  const mysql = seen.filter((x) => x.detected.flavor === 'mysql');
  if (mariadb.length > 0 && mysql.length > 0) {
    const primary = seen.find((x) => x.nodeId === primaryId);
    const odd = primary === undefined ? mariadb : primary.detected.flavor === 'mysql' ? mariadb : mysql;
    const what =
      primary === undefined
        ? 'MariaDB and MySQL nodes'
        : `${odd.length === 1 ? 'a' : ''} ${odd[0]!.detected.flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} replica${odd.length === 1 ? '' : 's'} of a ${primary.detected.flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} primary`.trim();
    return {
      kind: 'refused',
      reason:
        `Mixed cluster refused: ${what} (${seen.map(describe).join(', ')}). MariaDB GTIDs (domain-server-seq) and ` +
        'MySQL GTIDs (uuid:n) cannot be compared, so no safe election or catch-up exists. Run one flavor on every node.',
      warnings,
    };
  }
  const primary = seen.find((x) => x.nodeId === primaryId);
  if (primary !== undefined && primary.detected.flavor === 'mysql') {
    for (const x of mysql) {
      if (x === primary) continue;
      const older =
        x.detected.major < primary.detected.major ||
        (x.detected.major === primary.detected.major && x.detected.minor < primary.detected.minor);
      if (older) {
        warnings.push(
          `${describe(x)} is older than the primary ${describe(primary)}: MySQL does not support a replica older than its source`,
        );
      }
    }
  }
  return { kind: 'ok', flavor: seen[0]!.detected.flavor, warnings };
}
