/**
 * Rebuilding a MySQL node with the clone plugin (MySQL 8.4 Reference Manual, 7.6.7 "The Clone
 * Plugin"; 15.7.5 "CLONE Statement"; the same sections exist in the 8.0 manual from 8.0.17):
 *
 *   recipient: SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'
 *              SET GLOBAL clone_valid_donor_list = 'donor_host:port'
 *              CLONE INSTANCE FROM 'user'@'donor_host':port IDENTIFIED BY 'password'
 *
 * The clone replaces the recipient's data AND its GTID history (gtid_executed and gtid_purged
 * become the donor's at the clone's end), so an errant transaction does not survive it, and the
 * node can then follow the primary with auto-positioning. On success the recipient restarts
 * itself when a supervisor (systemd, mysqld_safe) runs it: the session sees its connection
 * lost. Without one it answers ER_CLONE_RESTART_... 3707 "Restart server failed (mysqld is not
 * managed by supervisor process)" and must be started by hand; the cloned data is in place.
 *
 * Gates the manual states: clone exists from 8.0.17; donor and recipient run the same version
 * (before 8.0.37 the same point release; from 8.0.37 the same series, e.g. 8.4.x with 8.4.y);
 * the donor account needs BACKUP_ADMIN, the recipient account CLONE_ADMIN. MySQL 5.7 and
 * MariaDB have no clone plugin. Statements only: nothing here talks to a server.
 */
import { atLeast, fmt } from './mysql.ts';
import { checkHost, checkPort, checkUser, sqlStringLiteral } from './sql-text.ts';
import type { GrantNeed, QuoteMode, Read, ServerVersion, SourceSpec, Statement } from './types.ts';

/** MySQL error 3707: the clone finished, but the server cannot restart itself (no supervisor). */
export const ER_CLONE_RESTART_NO_SUPERVISOR = 3707;

export type CloneSupport = { ok: true } | { ok: false; reason: string };

/**
 * Whether `recipient` can clone from `donor`, with the reason and what to do when it cannot.
 */
export function cloneSupport(recipient: ServerVersion, donor: ServerVersion): CloneSupport {
  const name = (v: ServerVersion) => `${v.flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} ${fmt(v)}`;
  if (recipient.flavor !== 'mysql' || donor.flavor !== 'mysql') {
    return {
      ok: false,
      reason: `CLONE is MySQL's (8.0.17+); ${name(recipient)} cloning from ${name(donor)} is not possible`,
    };
  }
  for (const v of [recipient, donor]) {
    if (!atLeast(v, 8, 0, 17)) {
      return {
        ok: false,
        reason:
          `${name(v)} has no clone plugin (it came in MySQL 8.0.17): rebuild by hand: RESET MASTER on the node, ` +
          'load a consistent copy of the primary (mysqldump --single-transaction --set-gtid-purged=ON, or ' +
          'Percona XtraBackup), then rejoin it without rebuild',
      };
    }
  }
  const sameSeries = recipient.major === donor.major && recipient.minor === donor.minor;
  const bothPatchFree = atLeast(recipient, 8, 0, 37) && atLeast(donor, 8, 0, 37);
  if (!sameSeries || (!bothPatchFree && recipient.patch !== donor.patch)) {
    return {
      ok: false,
      reason:
        `CLONE needs the same MySQL version on both sides (${bothPatchFree ? 'the same series' : 'the same point release before 8.0.37'}): ` +
        `the node runs ${name(recipient)}, the primary ${name(donor)}. Upgrade one of them, or rebuild by hand`,
    };
  }
  return { ok: true };
}

/** Whether the clone plugin is installed and ACTIVE (information_schema.PLUGINS). */
export function readClonePlugin(): Read<boolean> {
  return {
    sql: "SELECT PLUGIN_STATUS AS status FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'",
    params: [],
    parse: (rows) => rows.some((r) => String(r.status ?? '').toUpperCase() === 'ACTIVE'),
  };
}

/**
 * What the admin account needs for a rebuild by clone (MySQL 8.4 Reference Manual 7.6.7.3
 * "Cloning Remote Data"): any node may be the donor (the primary) or the recipient (a rejoining
 * node), so every node needs both.
 */
export const CLONE_GRANTS: readonly GrantNeed[] = Object.freeze([
  { privilege: 'BACKUP_ADMIN', usedFor: 'being the donor of a clone (rejoin with rebuild, on the primary)' },
  { privilege: 'CLONE_ADMIN', usedFor: 'CLONE INSTANCE (rejoin with rebuild, on the rejoining node)' },
]);

/** What installs the plugin, for the refusal when it is missing (both nodes need it). */
export const INSTALL_CLONE_PLUGIN = "INSTALL PLUGIN clone SONAME 'mysql_clone.so'";

/**
 * The statements that clone `donor` onto the node they run on, in order: allow the donor, then
 * clone. The password is a literal of the CLONE statement (it takes no placeholder) and is marked
 * secret, so the operations layer redacts it from every error.
 */
export function cloneStatements(donor: SourceSpec, quote: QuoteMode): Statement[] {
  const host = checkHost(donor.host);
  const port = checkPort(donor.port);
  const user = sqlStringLiteral(checkUser(donor.user), quote, 'clone donor user');
  const password = sqlStringLiteral(donor.password, quote, 'clone donor password');
  return [
    { sql: 'SET GLOBAL clone_valid_donor_list = ?', params: [`${host}:${port}`] },
    {
      sql: `CLONE INSTANCE FROM ${user}@${sqlStringLiteral(host, quote, 'clone donor host')}:${port} IDENTIFIED BY ${password}`,
      params: [],
      secrets: [donor.password],
    },
  ];
}
