/**
 * What the failover functions need from the database accounts. The canonical list: the check
 * action compares SHOW GRANTS against it, and the cluster harness grants the same.
 */

/** Global privileges of the failover admin account (MariaDB 10.11) and what needs each. */
export const ADMIN_GRANT_USES: Readonly<Record<string, string>> = Object.freeze({
  'SLAVE MONITOR': 'SHOW ALL SLAVES STATUS (probes, election, catch-up)',
  'BINLOG MONITOR': 'SHOW MASTER STATUS / gtid positions (check, switchover catch-up)',
  'REPLICATION SLAVE ADMIN': 'STOP/START SLAVE, CHANGE MASTER, SET gtid_slave_pos (repoint, rejoin)',
  'REPLICATION MASTER ADMIN': 'SET GLOBAL rpl_semi_sync_master_* (promotion)',
  'READ_ONLY ADMIN': 'SET GLOBAL read_only (fencing, promotion, switchover write block)',
  'CONNECTION ADMIN': "KILL other users' sessions (fencing, switchover)",
  PROCESS: 'information_schema.PROCESSLIST / INNODB_TRX (long transactions, fencing)',
  RELOAD: 'RESET SLAVE ALL (promotion), RESET MASTER (rebuild)',
});

/** The admin account's global privileges, in the order they are documented. */
export const ADMIN_GRANTS: readonly string[] = Object.freeze(Object.keys(ADMIN_GRANT_USES));

/** Schema the admin account owns (the heartbeat table). */
export const ADMIN_SCHEMA = 'failover_meta';

/** Global privilege of the replication account. */
export const REPLICATION_GRANTS: readonly string[] = Object.freeze(['REPLICATION SLAVE']);

/**
 * Extra global privileges only `rejoin` with `rebuild: true` needs: it reads every user schema
 * on the primary and recreates them on the node. Grant them for the rebuild and revoke after,
 * or rebuild by hand (mariadb-dump --all-databases --single-transaction --gtid).
 */
export const REBUILD_GRANTS: readonly string[] = Object.freeze([
  'SELECT',
  'SHOW VIEW',
  'INSERT',
  'CREATE',
  'DROP',
  'ALTER',
  'INDEX',
  'REFERENCES',
  'CREATE VIEW',
]);

const ALIASES: Record<string, string> = {
  'REPLICATION CLIENT': 'BINLOG MONITOR',
  'REPLICA MONITOR': 'SLAVE MONITOR',
  'REPLICATION REPLICA ADMIN': 'REPLICATION SLAVE ADMIN',
  'REPLICATION REPLICA': 'REPLICATION SLAVE',
};

/** Privileges granted ON `scope` (e.g. "*.*") in SHOW GRANTS output; "ALL" for ALL PRIVILEGES. */
export function parseGrants(lines: readonly string[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of lines) {
    const m = /^GRANT (.+?) ON (\S+) TO /i.exec(line.trim());
    if (!m || /^PROXY$/i.test(m[1] ?? '')) continue;
    const scope = (m[2] ?? '').replaceAll('`', '');
    const set = out.get(scope) ?? new Set<string>();
    for (const raw of (m[1] ?? '').split(',')) {
      const p = raw.trim().toUpperCase().replace(/\s+/g, ' ');
      if (p === '') continue;
      set.add(p === 'ALL PRIVILEGES' || p === 'ALL' ? 'ALL' : (ALIASES[p] ?? p));
    }
    out.set(scope, set);
  }
  return out;
}

/** The privileges of `wanted` that the global grants (`*.*`) lack. */
export function missingGlobalGrants(grants: Map<string, Set<string>>, wanted: readonly string[]): string[] {
  const global = grants.get('*.*') ?? new Set<string>();
  if (global.has('ALL')) return [];
  // Both sides through the aliases: MySQL's REPLICATION CLIENT is MariaDB's BINLOG MONITOR.
  return wanted.filter((p) => !global.has(ALIASES[p] ?? p));
}

/**
 * The table grants of `wanted` that `grants` lack. A grant of the privilege on `*.*`, on the
 * table's schema (`schema.*`) or on the table itself covers it, as ALL PRIVILEGES there does.
 */
export function missingTableGrants<T extends { privilege: string; table: string }>(
  grants: Map<string, Set<string>>,
  wanted: readonly T[],
): T[] {
  return wanted.filter((w) => {
    const schema = w.table.split('.')[0] ?? '';
    const p = ALIASES[w.privilege] ?? w.privilege;
    return ![w.table, `${schema}.*`, '*.*'].some((scope) => {
      const set = grants.get(scope);
      return set !== undefined && (set.has('ALL') || set.has(p));
    });
  });
}
