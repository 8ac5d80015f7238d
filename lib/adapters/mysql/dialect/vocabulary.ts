/**
 * The words a report uses for a node's operations (`plan`, `status`): taken from the very
 * statements its dialect sends, so a MySQL 8.4 plan says STOP REPLICA IO_THREAD and
 * WAIT_FOR_EXECUTED_GTID_SET where a MariaDB plan says STOP SLAVE IO_THREAD and MASTER_GTID_WAIT.
 * Nothing here talks to a server; statements are built and read, never sent.
 */
import { detectFlavor } from './flavor.ts';
import { fmt } from './mysql.ts';
import type { Dialect, DialectName, Flavor } from './types.ts';

/** What `plan` and `status` print for one node's dialect. */
export interface OperationWords {
  flavor: Flavor;
  dialect: DialectName;
  /** "MariaDB 10.11.6" / "MySQL 8.4.3". */
  server: string;
  /** "STOP SLAVE IO_THREAD" / "STOP REPLICA IO_THREAD". */
  stopIo: string;
  /** "START SLAVE IO_THREAD" / "START REPLICA IO_THREAD" (MySQL 8.4 rejects the SLAVE form). */
  startIo: string;
  /** "STOP SLAVE" / "STOP REPLICA". */
  stop: string;
  /** "RESET SLAVE ALL" / "RESET REPLICA ALL". */
  resetAll: string;
  /** The relay-log wait: "MASTER_GTID_WAIT" / "WAIT_FOR_EXECUTED_GTID_SET". */
  waitFunction: string;
  /** The fence: "read_only=ON" / "super_read_only=ON". */
  fenceOn: string;
  /** Writes allowed again: "read_only=OFF" / "super_read_only=OFF, read_only=OFF". */
  writesOn: string;
  /** How a replica is pointed at a source: "CHANGE MASTER TO ... MASTER_USE_GTID = slave_pos". */
  follow: string;
  /** Semi-sync words of this version: "master"/"slave" or "source"/"replica". */
  semiSyncSource: string;
  semiSyncReplica: string;
  /** rpl_semi_sync_master_enabled / rpl_semi_sync_source_enabled. */
  semiSyncSourceEnabled: string;
  /** rpl_semi_sync_master_timeout / rpl_semi_sync_source_timeout. */
  semiSyncSourceTimeout: string;
}

/**
 * What an operator message says for a node whose server is not known (it did not answer):
 * both forms, so the words work on whichever server it runs.
 */
export const ANY_DIALECT_WORDS = {
  startIo: 'START REPLICA IO_THREAD (START SLAVE IO_THREAD on MariaDB and on MySQL before 8.0.22)',
  semiSyncSourceTimeout:
    'rpl_semi_sync_master_timeout (rpl_semi_sync_source_timeout with the MySQL 8.0.26+ rpl_semi_sync_source plugin)',
} as const;

const SAMPLE_GTID: Record<Flavor, string> = {
  mariadb: '0-1-1',
  mysql: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1',
};

/**
 * The operation words for a server with this @@version (and @@version_comment when known);
 * undefined when no dialect speaks it (the caller falls back to neutral words).
 */
export function operationWords(version: string | undefined, versionComment = ''): OperationWords | undefined {
  if (version === undefined || version.trim() === '') return undefined;
  let detected: ReturnType<typeof detectFlavor>;
  try {
    detected = detectFlavor(version, versionComment);
  } catch {
    return undefined;
  }
  return dialectWords(detected.dialect);
}

/** The operation words of a dialect already detected (an open `Inst`'s `dialect`). */
export function dialectWords(d: Dialect): OperationWords {
  const flavor = d.version.flavor;
  const text = (sql: string) => sql.replace(/\s+/g, ' ').trim();
  const assignment = (sql: string) =>
    text(sql)
      .replace(/^SET GLOBAL /i, '')
      .replace(/\s*=\s*/g, '=');
  const wait = /^SELECT (\w+)\(/i.exec(text(d.waitForGtid(SAMPLE_GTID[flavor], 1).sql));
  const change = text(
    d.followSource(
      { host: 'source.example', port: 3306, user: 'repl', password: 'x' },
      { connectRetrySeconds: 1, heartbeatPeriodSeconds: 1 },
      { noBackslashEscapes: false },
    ).sql,
  );
  const head = /^(CHANGE (?:MASTER|REPLICATION SOURCE) TO)/i.exec(change)?.[1] ?? 'CHANGE MASTER TO';
  const gtidOption = /\b(MASTER_USE_GTID = \w+|\w+_AUTO_POSITION = 1)/i.exec(change)?.[1] ?? '';
  const names = d.semiSyncNames(d.preferredSemiSync);
  const sourceSide = names.family === 'source-replica';
  return {
    flavor,
    dialect: d.name,
    server: `${flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} ${fmt(d.version)}`,
    stopIo: text(d.stopReplicationIo().sql),
    startIo: text(d.startReplicationIo().sql),
    stop: text(d.stopReplication().sql),
    resetAll: text(d.resetReplicaAll().sql),
    waitFunction: wait?.[1] ?? 'the GTID wait',
    fenceOn: d
      .setReadOnly(true)
      .map((s) => assignment(s.sql))
      .join(', '),
    writesOn: d
      .setReadOnly(false)
      .map((s) => assignment(s.sql))
      .join(', '),
    follow: `${head} ... ${gtidOption}`.trim(),
    semiSyncSource: sourceSide ? 'source' : 'master',
    semiSyncReplica: sourceSide ? 'replica' : 'slave',
    semiSyncSourceEnabled: names.sourceEnabled,
    semiSyncSourceTimeout: names.sourceTimeout,
  };
}
