/**
 * rejoin's decision on MySQL GTID sets (decideRejoin, pure): errant by GTID_SUBTRACT of the
 * gtid_executed sets, purged history, and a mixed-flavor pair refused. The live MariaDB side of
 * the same decision runs in rejoin-check.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { decideRejoin, type RejoinGtid } from '../../lib/operator/rejoin.ts';

const A = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
const B = '2174b383-5441-11e8-b90a-c80aa9429562';
const C = { name: 'my' };

const mysql = (executed: string, purged = '', minor = 4): RejoinGtid => ({
  flavor: 'mysql',
  version: { flavor: 'mysql', major: 8, minor, patch: 3 },
  binlogPos: executed,
  binlogState: '',
  slavePos: '',
  purged,
  executed,
  serverId: 0,
});

describe('decideRejoin on MySQL', () => {
  it('follows when the node has nothing the primary lacks (it is merely behind)', () => {
    const d = decideRejoin(C, 'db1', 'db2', mysql(`${A}:1-90`), mysql(`${A}:1-100`), true);
    expect(d.kind).toBe('follow');
    expect(d.mysql).toMatchObject({ kind: 'follow', missingCount: 10 });
  });

  it('refuses errant GTIDs found by GTID_SUBTRACT, with the RESET BINARY LOGS AND GTIDS and clone options', () => {
    // The old primary's tail that never reached the new primary, in the server's multi-line form.
    const d = decideRejoin(C, 'db1', 'db2', mysql(`${A}:1-100,\n${B}:1-3`), mysql(`${A}:1-100`), true);
    expect(d.kind).toBe('refuse');
    if (d.kind !== 'refuse') return;
    expect(d.mysql).toMatchObject({ kind: 'errant', errantCount: 3, errant: `${B}:1-3` });
    expect(d.reason).toContain('GTID_SUBTRACT(db1.gtid_executed, db2.gtid_executed)');
    expect(d.options.join('\n')).toContain('RESET BINARY LOGS AND GTIDS');
    expect(d.options.join('\n')).toContain('CLONE INSTANCE FROM');
    // 8.0 before 8.2 still says RESET MASTER.
    const old = decideRejoin(C, 'db1', 'db2', mysql(`${A}:1-100:105`, '', 0), mysql(`${A}:1-100`), false);
    expect(old.kind === 'refuse' && old.options.join('\n')).toContain('run RESET MASTER on it');
  });

  it('refuses a node that needs what the primary purged (auto-positioning would stop with 1236)', () => {
    const d = decideRejoin(C, 'db3', 'db2', mysql(`${A}:1-10`), mysql(`${A}:1-100`, `${A}:1-50`), false);
    expect(d.kind === 'refuse' && d.mysql?.kind).toBe('purged');
    expect(d.kind === 'refuse' && d.reason).toContain('error 1236');
  });

  it('refuses a MariaDB node rejoining a MySQL primary: their GTIDs cannot be compared', () => {
    const maria: RejoinGtid = {
      flavor: 'mariadb',
      version: { flavor: 'mariadb', major: 10, minor: 11, patch: 6 },
      binlogPos: '0-1-25',
      binlogState: '0-1-25',
      slavePos: '0-1-25',
      purged: '',
      executed: '0-1-25',
      serverId: 1,
    };
    const d = decideRejoin(C, 'db3', 'db2', maria, mysql(`${A}:1-100`), false);
    expect(d.kind).toBe('refuse');
    expect(d.kind === 'refuse' && d.reason).toBe(
      'db3 runs MariaDB and db2 MySQL: a mixed cluster cannot replicate safely (their GTIDs cannot be compared)',
    );
  });
});
