/**
 * When a pending STOP of the IO thread counts as in effect (Inst.ioStopInEffect), over a
 * scripted MariaDB session: the rows are shaped as information_schema.PROCESSLIST answers them
 * on 10.11 (see test/failover/io-freeze.test.ts for the live case).
 */
import { describe, expect, it } from 'vitest';
import { mariadbDialect } from '../../lib/adapters/mysql/dialect/index.ts';
import { Inst, type SqlSession } from '../../lib/adapters/mysql/operations.ts';

const MARIADB = mariadbDialect({ flavor: 'mariadb', major: 10, minor: 11, patch: 19 });
const STOP = { command: 'Query', state: 'Killing slave', time_ms: '120.500' };
const waiting = { command: 'Slave_IO', state: 'Waiting for master to send event', time_ms: '900.1' };

function instAnswering(processlist: unknown[]): { inst: Inst; sqls: string[] } {
  const sqls: string[] = [];
  const session: SqlSession = {
    async query<T>(sql: string) {
      sqls.push(sql);
      return (/information_schema\.PROCESSLIST/.test(sql) ? processlist : []) as T[];
    },
  };
  return { inst: new Inst(session, 'db2', MARIADB, { noBackslashEscapes: false }), sqls };
}

describe('ioStopInEffect', () => {
  it('counts an IO_THREAD stop that has run past the settle time while the receiver waits to read', async () => {
    const { inst, sqls } = instAnswering([STOP, waiting]);
    expect(await inst.ioStopInEffect()).toBe(true);
    expect(sqls[0]).toMatch(/STATE = 'Killing slave'/);
    expect(sqls[0]).toMatch(/INFO LIKE 'STOP SLAVE IO_THREAD%'/);
  });

  it('does not count a stop younger than the settle time, a receiver queueing an event, or no stop at all', async () => {
    expect(await instAnswering([{ ...STOP, time_ms: '3.2' }, waiting]).inst.ioStopInEffect()).toBe(false);
    const queueing = { ...waiting, state: 'Queueing master event to the relay log' };
    expect(await instAnswering([STOP, queueing]).inst.ioStopInEffect()).toBe(false);
    expect(await instAnswering([waiting]).inst.ioStopInEffect()).toBe(false);
  });

  it('needs a receiver: with none left the stop has returned, and callers read the status instead', async () => {
    expect(await instAnswering([STOP]).inst.ioStopInEffect()).toBe(false);
  });
});
