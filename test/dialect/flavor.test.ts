import { describe, expect, it } from 'vitest';
import { checkFlavorMix, detectFlavor } from '../../lib/adapters/mysql/dialect/flavor.ts';
import { planMysqlRejoin } from '../../lib/adapters/mysql/dialect/rejoin-plan.ts';
import { UnsupportedServerError } from '../../lib/errors.ts';

describe('detectFlavor', () => {
  it.each([
    ['10.11.6-MariaDB-0+deb12u1-log', 'Debian 12', 'mariadb', 10, 11, 6, 'mariadb'],
    ['5.5.5-10.6.16-MariaDB', '', 'mariadb', 10, 6, 16, 'mariadb'],
    ['11.4.2-MariaDB', 'MariaDB Server', 'mariadb', 11, 4, 2, 'mariadb'],
    ['8.4.3', 'MySQL Community Server - GPL', 'mysql', 8, 4, 3, 'mysql8'],
    ['9.1.0', 'MySQL Community Server - GPL', 'mysql', 9, 1, 0, 'mysql8'],
    ['8.0.36-28', 'Percona Server (GPL), Release 28, Revision 47601f19', 'mysql', 8, 0, 36, 'mysql8'],
    ['8.0.23', '', 'mysql', 8, 0, 23, 'mysql8'],
    ['8.0.22', '', 'mysql', 8, 0, 22, 'mysql57'],
    ['5.7.44-log', 'MySQL Community Server (GPL)', 'mysql', 5, 7, 44, 'mysql57'],
  ] as const)('%s -> %s %i.%i.%i (%s dialect)', (version, comment, flavor, major, minor, patch, dialect) => {
    const f = detectFlavor(version, comment);
    expect(f).toMatchObject({ flavor, major, minor, patch });
    expect(f.dialect.name).toBe(dialect);
    expect(f.dialect.version).toEqual({ flavor, major, minor, patch });
  });

  it.each([
    ['10.5.23-MariaDB', 'upgrade to MariaDB 10.6 or later'],
    ['5.6.51-log', 'MySQL 5.7.8 or later is needed'],
    ['5.7.7-rc', 'MySQL 5.7.8 or later is needed'],
    ['five', 'expected major.minor.patch'],
  ])('refuses %s: %s', (version, why) => {
    expect(() => detectFlavor(version)).toThrow(UnsupportedServerError);
    expect(() => detectFlavor(version)).toThrow(why);
  });
});

describe('checkFlavorMix', () => {
  const mysql84 = (nodeId: string) => ({
    nodeId,
    version: '8.4.3',
    versionComment: 'MySQL Community Server - GPL',
  });
  const maria = (nodeId: string) => ({ nodeId, version: '10.11.6-MariaDB-0+deb12u1-log' });

  it('refuses a MariaDB replica of a MySQL primary, naming both', () => {
    const v = checkFlavorMix([mysql84('db1'), mysql84('db2'), maria('db3')], 'db1');
    expect(v.kind).toBe('refused');
    expect(v.kind === 'refused' && v.reason).toBe(
      'Mixed cluster refused: a MariaDB replica of a MySQL primary (db1 MySQL 8.4.3, db2 MySQL 8.4.3, ' +
        'db3 MariaDB 10.11.6). MariaDB GTIDs (domain-server-seq) and MySQL GTIDs (uuid:n) cannot be compared, ' +
        'so no safe election or catch-up exists. Run one flavor on every node.',
    );
  });

  it('refuses the reverse too', () => {
    const v = checkFlavorMix([maria('db1'), mysql84('db2')], 'db1');
    expect(v.kind === 'refused' && v.reason).toMatch(
      /^Mixed cluster refused: a MySQL replica of a MariaDB primary/,
    );
  });

  it('accepts one flavor, skips unreadable nodes with a warning, warns on a replica older than its primary', () => {
    expect(checkFlavorMix([maria('db1'), maria('db2'), { nodeId: 'db3' }], 'db1')).toEqual({
      kind: 'ok',
      flavor: 'mariadb',
      warnings: ['db3: version unknown (not reachable), not checked'],
    });
    const v = checkFlavorMix([mysql84('db1'), { nodeId: 'db2', version: '8.0.36' }], 'db1');
    expect(v.kind).toBe('ok');
    expect(v.warnings).toEqual([
      'db2 MySQL 8.0.36 is older than the primary db1 MySQL 8.4.3: MySQL does not support a replica older than its source',
    ]);
  });

  it('refuses an unsupported version and reports nothing readable as unknown', () => {
    const v = checkFlavorMix([mysql84('db1'), { nodeId: 'db2', version: '5.6.51' }], 'db1');
    expect(v.kind === 'refused' && v.reason).toMatch(/^db2: MySQL 5\.6\.51 is not supported/);
    expect(checkFlavorMix([{ nodeId: 'db1' }]).kind).toBe('unknown');
  });
});

describe('planMysqlRejoin (errant detection by GTID_SUBTRACT)', () => {
  const P = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
  const R = '2174b383-5441-11e8-b90a-c80aa9429562';
  const v84 = { flavor: 'mysql' as const, major: 8, minor: 4, patch: 3 };
  const v57 = { flavor: 'mysql' as const, major: 5, minor: 7, patch: 44 };
  const base = { nodeId: 'db1', primaryId: 'db2', primaryPurged: '', nodeVersion: v84 };

  it('lets a node that is only behind follow, and says what it will fetch', () => {
    expect(
      planMysqlRejoin({ ...base, nodeExecuted: `${P}:1-90`, primaryExecuted: `${P}:1-100,\n${R}:1-4` }),
    ).toEqual({
      kind: 'follow',
      missing: `${R}:1-4,${P}:91-100`,
      missingCount: 14,
    });
  });

  it('blocks a node with errant transactions and offers RESET BINARY LOGS AND GTIDS + rebuild, or clone (8.4)', () => {
    const plan = planMysqlRejoin({
      ...base,
      nodeExecuted: `${P}:1-101,\n${R}:1`,
      primaryExecuted: `${P}:1-100`,
    });
    expect(plan.kind).toBe('errant');
    if (plan.kind !== 'errant') return;
    expect(plan.errant).toBe(`${R}:1,${P}:101`);
    expect(plan.errantCount).toBe(2);
    expect(plan.reason).toContain(
      `GTID_SUBTRACT(db1.gtid_executed, db2.gtid_executed) = 2 transactions: ${R}:1,${P}:101`,
    );
    expect(plan.options[0]).toMatch(/^Rebuild db1: .*RESET BINARY LOGS AND GTIDS/);
    expect(plan.options[1]).toMatch(
      /^Clone \(MySQL 8\.0\.17\+, the same version on both nodes\): .*CLONE INSTANCE FROM on db1 against db2/,
    );
  });

  it('on 5.7 offers RESET MASTER + rebuild and no clone', () => {
    const plan = planMysqlRejoin({
      ...base,
      nodeVersion: v57,
      nodeExecuted: `${P}:1-5:7`,
      primaryExecuted: `${P}:1-6`,
    });
    expect(plan.kind === 'errant' && plan.options.map((o) => o.slice(0, 40))).toEqual([
      'Rebuild db1: stop it from taking writes,',
      'Do not only RESET MASTER or set gtid_pur',
    ]);
    expect(plan.kind === 'errant' && plan.options[0]).toContain('RESET MASTER');
  });

  it('requires a rebuild when the primary purged what the node lacks (auto-position would fail with 1236)', () => {
    const plan = planMysqlRejoin({
      ...base,
      nodeExecuted: `${P}:1-10`,
      primaryExecuted: `${P}:1-100`,
      primaryPurged: `${P}:1-50`,
    });
    expect(plan).toMatchObject({ kind: 'purged', needed: `${P}:11-50` });
  });
});
