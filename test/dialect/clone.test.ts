/**
 * Rebuilding a MySQL node by CLONE INSTANCE (lib/adapters/mysql/dialect/clone.ts, clone-node.ts):
 * the exact statements, the version gates of the manual (7.6.7 "The Clone Plugin", 7.6.7.14
 * "Clone Plugin Limitations"), and how the statement's end is read, on scripted sessions that
 * answer with the rows and errors the manual shows (fixtures/mysql-manual.ts).
 */
import { describe, expect, it } from 'vitest';
import { cloneNode } from '../../lib/adapters/mysql/clone-node.ts';
import { cloneStatements, cloneSupport } from '../../lib/adapters/mysql/dialect/clone.ts';
import type { ServerVersion } from '../../lib/adapters/mysql/dialect/types.ts';
import type { SqlSession } from '../../lib/adapters/mysql/operations.ts';
import { MissingPrivilegeError, OperatorRefusedError } from '../../lib/errors.ts';
import { CLONE_PLUGIN_ACTIVE_84, CLONE_RESTART_ERROR_3707 } from './fixtures/mysql-manual-clone.ts';

const v = (flavor: 'mysql' | 'mariadb', major: number, minor: number, patch: number): ServerVersion => ({
  flavor,
  major,
  minor,
  patch,
});
const DONOR = { host: '10.0.1.11', port: 3306, user: 'failover_admin', password: "s3cr'et" };
const QUOTE = { noBackslashEscapes: false };

function scripted(answers: Array<[RegExp, unknown[] | Error]>) {
  const sent: Array<{ sql: string; params: unknown[]; timeoutMs: number | undefined }> = [];
  const session: SqlSession = {
    async query<T>(sql: string, params: unknown[] = [], timeoutMs?: number) {
      sent.push({ sql, params, timeoutMs });
      for (const [re, a] of answers) {
        if (!re.test(sql)) continue;
        if (a instanceof Error) throw a;
        return a as T[];
      }
      throw new Error(`the scripted server does not know: ${sql}`);
    },
  };
  return { session, sent };
}

const serverError = (fields: Record<string, unknown>) =>
  Object.assign(new Error(String(fields.message ?? 'error')), fields);

const request = (recipient = v('mysql', 8, 4, 3), donor = v('mysql', 8, 4, 3)) => ({
  nodeId: 'db1',
  recipient,
  donor,
  source: { ...DONOR, nodeId: 'db2' },
  quote: QUOTE,
  timeoutMs: 840_000,
});

describe('cloneStatements', () => {
  it('allows the donor, then clones from it with the password as a secret literal', () => {
    const [allow, clone] = cloneStatements(DONOR, QUOTE);
    expect(allow).toEqual({ sql: 'SET GLOBAL clone_valid_donor_list = ?', params: ['10.0.1.11:3306'] });
    expect(clone).toEqual({
      sql: "CLONE INSTANCE FROM 'failover_admin'@'10.0.1.11':3306 IDENTIFIED BY 's3cr''et'",
      params: [],
      secrets: ["s3cr'et"],
    });
  });

  it('refuses a host that is not one, before any statement exists', () => {
    expect(() => cloneStatements({ ...DONOR, host: "x'; DROP DATABASE y; --" }, QUOTE)).toThrow(
      /is not a host name or IP address/,
    );
  });
});

describe('cloneSupport', () => {
  it('allows MySQL 8.0.17+ on both sides of the same release, and 8.0.37+ within a series', () => {
    expect(cloneSupport(v('mysql', 8, 4, 3), v('mysql', 8, 4, 3))).toEqual({ ok: true });
    expect(cloneSupport(v('mysql', 8, 4, 2), v('mysql', 8, 4, 3))).toEqual({ ok: true });
    expect(cloneSupport(v('mysql', 8, 0, 37), v('mysql', 8, 0, 40))).toEqual({ ok: true });
    expect(cloneSupport(v('mysql', 8, 0, 17), v('mysql', 8, 0, 17))).toEqual({ ok: true });
  });

  it('refuses 5.7 and 8.0 before 8.0.17 naming the manual rebuild, MariaDB, and different versions', () => {
    const r57 = cloneSupport(v('mysql', 5, 7, 44), v('mysql', 5, 7, 44));
    expect(r57).toMatchObject({ ok: false });
    expect(!r57.ok && r57.reason).toContain('MySQL 5.7.44 has no clone plugin (it came in MySQL 8.0.17)');
    expect(!r57.ok && r57.reason).toContain('mysqldump --single-transaction --set-gtid-purged=ON');
    expect(cloneSupport(v('mysql', 8, 0, 16), v('mysql', 8, 0, 16)).ok).toBe(false);
    const maria = cloneSupport(v('mariadb', 10, 11, 6), v('mariadb', 10, 11, 6));
    expect(!maria.ok && maria.reason).toContain("CLONE is MySQL's");
    const patch = cloneSupport(v('mysql', 8, 0, 35), v('mysql', 8, 0, 36));
    expect(!patch.ok && patch.reason).toContain('the same point release before 8.0.37');
    expect(cloneSupport(v('mysql', 8, 0, 40), v('mysql', 8, 4, 3)).ok).toBe(false);
  });
});

describe('cloneNode (scripted MySQL 8.4 recipient)', () => {
  it('checks the plugin, allows the donor, clones, and reads a dropped connection as the restart', async () => {
    const lost = serverError({
      message: 'Connection lost: The server closed the connection.',
      code: 'PROTOCOL_CONNECTION_LOST',
    });
    const s = scripted([
      [/information_schema\.PLUGINS/, CLONE_PLUGIN_ACTIVE_84],
      [/^SET GLOBAL clone_valid_donor_list/, []],
      [/^CLONE INSTANCE/, lost],
    ]);
    expect(await cloneNode(s.session, request())).toBe('restarting');
    expect(s.sent.map((x) => [x.sql, x.params, x.timeoutMs])).toEqual([
      [
        "SELECT PLUGIN_STATUS AS status FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'",
        [],
        undefined,
      ],
      ['SET GLOBAL clone_valid_donor_list = ?', ['10.0.1.11:3306'], undefined],
      ["CLONE INSTANCE FROM 'failover_admin'@'10.0.1.11':3306 IDENTIFIED BY 's3cr''et'", [], 840_000],
    ]);
  });

  it('reads error 3707 as cloned but needing a start by hand', async () => {
    const s = scripted([
      [/information_schema\.PLUGINS/, CLONE_PLUGIN_ACTIVE_84],
      [/^SET GLOBAL/, []],
      [/^CLONE INSTANCE/, serverError(CLONE_RESTART_ERROR_3707)],
    ]);
    expect(await cloneNode(s.session, request())).toBe('restart-by-hand');
  });

  it('refuses without the plugin, naming INSTALL PLUGIN, and changes nothing', async () => {
    const s = scripted([[/information_schema\.PLUGINS/, []]]);
    const err = await cloneNode(s.session, request()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OperatorRefusedError);
    expect((err as Error).message).toContain(
      "INSTALL PLUGIN clone SONAME 'mysql_clone.so' on db1 and on the donor db2",
    );
    expect(s.sent).toHaveLength(1);
  });

  it('refuses a 5.7 node before sending anything', async () => {
    const s = scripted([]);
    const err = await cloneNode(s.session, request(v('mysql', 5, 7, 44), v('mysql', 5, 7, 44))).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OperatorRefusedError);
    expect((err as Error).message).toMatch(
      /^Rebuild of db1 by CLONE refused: MySQL 5\.7\.44 has no clone plugin/,
    );
    expect(s.sent).toEqual([]);
  });

  it('turns a missing CLONE_ADMIN into MissingPrivilegeError that never shows the password', async () => {
    const denied = serverError({
      message:
        "Access denied; you need (at least one of) the CLONE_ADMIN privilege(s) for this operation near 'IDENTIFIED BY 's3cr''et'' at line 1",
      code: 'ER_SPECIFIC_ACCESS_DENIED_ERROR',
      errno: 1227,
    });
    const s = scripted([
      [/information_schema\.PLUGINS/, CLONE_PLUGIN_ACTIVE_84],
      [/^SET GLOBAL/, []],
      [/^CLONE INSTANCE/, denied],
    ]);
    const err = await cloneNode(s.session, request()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingPrivilegeError);
    expect((err as Error).message).toContain('CLONE_ADMIN');
    expect((err as Error).message).not.toContain('s3cr');
  });
});
