/**
 * The named operations on MySQL dialects, over a scripted session: no MySQL server runs here
 * (issue 13, "How to test it here"), so this asserts the ORDER of statements each operation
 * sends and what it makes of MySQL-shaped answers. The same operations run against real
 * MariaDB servers in mariadb-live.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { Inst, openInst, type SqlSession } from '../../lib/adapters/mysql/operations.ts';
import {
  MysqlOperationError,
  NodeUnreachableError,
  ReplicationNotRunningError,
  SemiSyncUnavailableError,
  UnsupportedServerError,
} from '../../lib/errors.ts';
import { SHOW_REPLICA_STATUS_84, SHOW_REPLICA_STATUS_84_CONNECTING } from './fixtures/mysql-manual.ts';

type Answer = unknown[] | Error;

/** Records every statement; answers by the first rule whose pattern matches. */
function scripted(rules: Array<[RegExp, Answer | (() => Answer)]>) {
  const sent: Array<{ sql: string; params: unknown[] }> = [];
  const session: SqlSession = {
    async query<T>(sql: string, params: unknown[] = []) {
      sent.push({ sql, params });
      for (const [re, a] of rules) {
        if (re.test(sql)) {
          const answer = typeof a === 'function' ? a() : a;
          if (answer instanceof Error) throw answer;
          return answer as T[];
        }
      }
      return [] as T[];
    },
  };
  return { session, sent, sqls: () => sent.map((s) => s.sql) };
}

const VERSION_84 = [
  /^SELECT @@GLOBAL\.version/,
  [
    {
      version: '8.4.3',
      comment: 'MySQL Community Server - GPL',
      sql_mode: 'ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION',
    },
  ],
] as [RegExp, Answer];
const VERSION_57 = [
  /^SELECT @@GLOBAL\.version/,
  [{ version: '5.7.44-log', comment: 'MySQL Community Server (GPL)', sql_mode: 'NO_BACKSLASH_ESCAPES' }],
] as [RegExp, Answer];
const PLUGINS_NEW = [
  /information_schema\.PLUGINS/,
  [
    { PLUGIN_NAME: 'rpl_semi_sync_source', PLUGIN_STATUS: 'ACTIVE' },
    { PLUGIN_NAME: 'rpl_semi_sync_replica', PLUGIN_STATUS: 'ACTIVE' },
  ],
] as [RegExp, Answer];
const SRC = { host: '10.0.1.12', port: 3306, user: 'repl', password: 'r3pl-pass' };
const PLAIN_QUOTE = { noBackslashEscapes: false };
const SET = '73f86016-978b-11ee-ade5-8d2a2a562feb:1-5';

const fakeClock = () => {
  let t = 0;
  return {
    now: () => t,
    sleep: async (ms: number) => {
      t += ms;
    },
  };
};

describe('openInst', () => {
  it('detects MySQL 8.4 and the session’s quoting; refuses an unsupported server', async () => {
    const a = await openInst(scripted([VERSION_84]).session, 'db1');
    expect(a.dialect.name).toBe('mysql8');
    expect(a.quote.noBackslashEscapes).toBe(false);
    const b = await openInst(scripted([VERSION_57]).session, 'db1');
    expect(b.dialect.name).toBe('mysql57');
    expect(b.quote.noBackslashEscapes).toBe(true);
    await expect(
      openInst(
        scripted([[/^SELECT @@GLOBAL\.version/, [{ version: '5.6.51', comment: '', sql_mode: '' }]]]).session,
        'db1',
      ),
    ).rejects.toBeInstanceOf(UnsupportedServerError);
  });
});

describe('Inst on MySQL 8.4 (scripted)', () => {
  it('followPrimary: STOP, CHANGE REPLICATION SOURCE, semi-sync replica ON, START, in that order', async () => {
    const s = scripted([VERSION_84, PLUGINS_NEW]);
    const inst = await openInst(s.session, 'db2');
    await inst.followPrimary(SRC, { semiSync: true });
    expect(s.sqls().slice(1)).toEqual([
      'STOP REPLICA',
      "CHANGE REPLICATION SOURCE TO SOURCE_HOST = '10.0.1.12', SOURCE_PORT = 3306, SOURCE_USER = 'repl', " +
        "SOURCE_PASSWORD = 'r3pl-pass', SOURCE_AUTO_POSITION = 1, SOURCE_CONNECT_RETRY = 1, " +
        'SOURCE_HEARTBEAT_PERIOD = 1, GET_SOURCE_PUBLIC_KEY = 1',
      expect.stringMatching(/information_schema\.PLUGINS/),
      'SET GLOBAL rpl_semi_sync_replica_enabled = ON',
      'START REPLICA',
    ]);
  });

  it('collectFrom: follows the replica ahead, starts UNTIL SQL_AFTER_GTIDS, waits, then always stops and resets', async () => {
    for (const [w, outcome] of [
      ['0', 'reached'],
      ['1', 'timeout'],
    ] as const) {
      const s = scripted([VERSION_84, [/WAIT_FOR_EXECUTED_GTID_SET/, [{ w }]]]);
      const inst = await openInst(s.session, 'db2');
      expect(await inst.collectFrom(SRC, `${SET.toUpperCase()}`, 30)).toBe(outcome);
      expect(s.sqls().slice(1)).toEqual([
        'STOP REPLICA',
        expect.stringMatching(/^CHANGE REPLICATION SOURCE TO .*SOURCE_DELAY = 0, GET_SOURCE_PUBLIC_KEY = 1$/),
        'START REPLICA UNTIL SQL_AFTER_GTIDS = ?',
        'SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS w',
        'STOP REPLICA',
        'RESET REPLICA',
      ]);
      expect(s.sent[3]?.params).toEqual([SET]);
    }
  });

  it('collectFrom resets the relay log even when the wait fails', async () => {
    const s = scripted([
      VERSION_84,
      [/WAIT_FOR_EXECUTED_GTID_SET/, Object.assign(new Error('gone'), { code: 'ECONNRESET' })],
    ]);
    const inst = await openInst(s.session, 'db2');
    await expect(inst.collectFrom(SRC, SET, 30)).rejects.toBeInstanceOf(NodeUnreachableError);
    expect(s.sqls().slice(-2)).toEqual(['STOP REPLICA', 'RESET REPLICA']);
  });

  it('applyRelayLog waits on WAIT_FOR_EXECUTED_GTID_SET and reads 1 as a timeout', async () => {
    const s = scripted([VERSION_84, [/WAIT_FOR_EXECUTED_GTID_SET/, [{ w: 1 }]]]);
    const inst = await openInst(s.session, 'db2');
    expect(await inst.applyRelayLog(SET, 10)).toBe('timeout');
    expect(await inst.applyRelayLog('', 10)).toBe('reached');
    expect(s.sqls().filter((q) => q.includes('WAIT')).length).toBe(1);
  });

  it('fence: super_read_only that never waits, then KILL every listed client session, the commits waiting for a semi-sync ACK last', async () => {
    const s = scripted([
      VERSION_84,
      [
        /information_schema\.PROCESSLIST/,
        [
          { ID: '31', USER: 'app', COMMAND: 'Sleep', STATE: '' },
          { ID: '32', USER: 'app', COMMAND: 'Query', STATE: 'Waiting for semi-sync ACK from replica' },
          { ID: '33', USER: 'app', COMMAND: 'Query', STATE: 'waiting for handler commit' },
        ],
      ],
      [
        /^KILL CONNECTION 33$/,
        Object.assign(new Error('Unknown thread id: 33'), { code: 'ER_NO_SUCH_THREAD', errno: 1094 }),
      ],
    ]);
    const inst = await openInst(s.session, 'db1');
    expect(await inst.fence()).toEqual({ killed: 2, attempts: 1 });
    expect(s.sqls().slice(1)).toEqual([
      'SET SESSION lock_wait_timeout = 0',
      'SET GLOBAL super_read_only = ON',
      expect.stringMatching(/^SELECT ID, USER, COMMAND, STATE FROM information_schema\.PROCESSLIST/),
      'KILL CONNECTION 31',
      'KILL CONNECTION 33',
      // Listed again: clients reconnect. Only then the group leader waiting for the ACK: killing it
      // acknowledges its group's followers that are still connected.
      expect.stringMatching(/information_schema\.PROCESSLIST/),
      'KILL CONNECTION 32',
    ]);
  });

  it('enableSemiSyncPrimary refuses, naming the INSTALL PLUGIN statement, when the plugin is missing', async () => {
    const s = scripted([VERSION_84, [/information_schema\.PLUGINS/, []]]);
    const inst = await openInst(s.session, 'db1');
    const err = await inst.enableSemiSyncPrimary({ timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SemiSyncUnavailableError);
    expect((err as Error).message).toBe(
      "Semi-sync source plugin is not installed on db1: INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source.so'",
    );
    expect(s.sqls().some((q) => q.startsWith('SET GLOBAL'))).toBe(false);
  });

  it('readSemiSync reads the names of the installed family', async () => {
    const s = scripted([
      VERSION_84,
      PLUGINS_NEW,
      [
        /SHOW GLOBAL VARIABLES/,
        [
          { Variable_name: 'rpl_semi_sync_source_enabled', Value: 'ON' },
          { Variable_name: 'rpl_semi_sync_source_timeout', Value: '10000' },
          { Variable_name: 'rpl_semi_sync_source_wait_point', Value: 'AFTER_SYNC' },
          { Variable_name: 'rpl_semi_sync_replica_enabled', Value: 'OFF' },
        ],
      ],
      [
        /SHOW GLOBAL STATUS/,
        [
          { Variable_name: 'Rpl_semi_sync_source_status', Value: 'ON' },
          { Variable_name: 'Rpl_semi_sync_source_clients', Value: '2' },
        ],
      ],
    ]);
    const inst = await openInst(s.session, 'db1');
    expect(await inst.readSemiSync()).toEqual({
      family: 'source-replica',
      sourceInstalled: true,
      replicaInstalled: true,
      masterEnabled: true,
      masterActive: true,
      masterClients: 2,
      slaveEnabled: false,
      slaveActive: false,
      waitPoint: 'AFTER_SYNC',
      timeoutMs: 10_000,
    });
  });

  it('waitReplicationRunning returns once both threads run, and fails fast on error 1236', async () => {
    let calls = 0;
    const s = scripted([
      VERSION_84,
      [
        /^SHOW REPLICA STATUS$/,
        () => (++calls < 3 ? [SHOW_REPLICA_STATUS_84_CONNECTING] : [SHOW_REPLICA_STATUS_84]),
      ],
    ]);
    const inst = new Inst(
      s.session,
      'db2',
      (await openInst(s.session, 'db2')).dialect,
      { noBackslashEscapes: false },
      fakeClock(),
    );
    expect((await inst.waitReplicationRunning(5000)).ioState).toBe('Yes');
    expect(calls).toBe(3);

    const purged = {
      ...SHOW_REPLICA_STATUS_84,
      Replica_IO_Running: 'No',
      Last_IO_Errno: '13114',
      Last_IO_Error: 'Got fatal error 1236 from source when reading data from binary log',
    };
    const fatal = { ...purged, Last_IO_Errno: '1236' };
    const s2 = scripted([VERSION_84, [/^SHOW REPLICA STATUS$/, [fatal]]]);
    const clock = fakeClock();
    const inst2 = new Inst(s2.session, 'db2', inst.dialect, inst.quote, clock);
    await expect(inst2.waitReplicationRunning(60_000)).rejects.toBeInstanceOf(ReplicationNotRunningError);
    expect(clock.now()).toBe(0); // no waiting for a cure that never comes
  });

  it('never puts the password into an error, even from a syntax error that quotes the statement', async () => {
    const pw = SRC.password;
    const driverError = Object.assign(
      new Error(
        `You have an error in your SQL syntax; check the manual near '${pw.slice(3)}', SOURCE_AUTO_POSITION = 1' at line 1`,
      ),
      { code: 'ER_PARSE_ERROR', errno: 1064, sql: `CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = '${pw}'` },
    );
    const s = scripted([VERSION_84, [/^CHANGE REPLICATION SOURCE/, driverError]]);
    const inst = await openInst(s.session, 'db2');
    const err = (await inst.followPrimary(SRC).catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('MysqlOperationError');
    expect(err.message).toBe(
      "followPrimary on db2 failed: ER_PARSE_ERROR: You have an error in your SQL syntax; check the manual near '<redacted>'",
    );
    expect(
      JSON.stringify({ m: err.message, d: (err as { details?: unknown }).details, c: err.cause }),
    ).not.toContain(pw.slice(3));
    expect('sql' in err).toBe(false);
  });
});

describe('the failover moves on MySQL (scripted)', () => {
  const lockWait = () =>
    Object.assign(new Error('Lock wait timeout exceeded; try restarting transaction'), {
      code: 'ER_LOCK_WAIT_TIMEOUT',
      errno: 1205,
    });

  it('fencePrimary: super_read_only never waits; a commit in flight is killed, then it applies', async () => {
    let attempts = 0;
    const s = scripted([
      VERSION_84,
      [/^SET GLOBAL super_read_only = ON$/, () => (++attempts < 2 ? lockWait() : [])],
      [/information_schema\.PROCESSLIST/, [{ ID: '41', USER: 'app', COMMAND: 'Query' }]],
    ]);
    const inst = new Inst(
      s.session,
      'db1',
      (await openInst(s.session, 'db1')).dialect,
      PLAIN_QUOTE,
      fakeClock(),
    );
    expect(await inst.fencePrimary({ graceMs: 0, budgetMs: 2000 })).toEqual({ killed: 2, attempts: 2 });
    expect(s.sqls().slice(1)).toEqual([
      'SET SESSION lock_wait_timeout = 0',
      'SET GLOBAL super_read_only = ON',
      expect.stringMatching(/information_schema\.PROCESSLIST/),
      'KILL CONNECTION 41',
      expect.stringMatching(/information_schema\.PROCESSLIST/),
      'SET GLOBAL super_read_only = ON',
      expect.stringMatching(/information_schema\.PROCESSLIST/),
      'KILL CONNECTION 41',
      expect.stringMatching(/information_schema\.PROCESSLIST/),
    ]);
  });

  it('fencePrimary with a second connection: super_read_only waits (holding new writes back) while the sibling kills, the ACK waiter last and never the waiting statement itself', async () => {
    const dialect = (await openInst(scripted([VERSION_84]).session, 'db1')).dialect;
    let releaseDoor: (() => void) | undefined;
    let readOnlyCalls = 0;
    const main = scripted([
      [/^SELECT CONNECTION_ID\(\)/, [{ id: '7' }]],
      [/^SET GLOBAL super_read_only = ON$/, () => (++readOnlyCalls === 1 ? lockWait() : [])],
      [/information_schema\.PROCESSLIST/, []],
    ]);
    // The waiting statement: answered once the sibling killed the ACK waiter (session 52).
    const session: SqlSession = {
      async query<T>(sql: string, params: unknown[] = [], timeoutMs?: number) {
        if (/^SET GLOBAL super_read_only = ON$/.test(sql) && readOnlyCalls === 1) {
          main.sent.push({ sql, params });
          readOnlyCalls++;
          await new Promise<void>((r) => {
            releaseDoor = r;
          });
          return [] as T[];
        }
        return main.session.query<T>(sql, params, timeoutMs);
      },
      async openSibling() {
        const sib = scripted([
          [
            /information_schema\.PROCESSLIST/,
            () =>
              sibKills.includes(52)
                ? []
                : [
                    { ID: '7', USER: 'failover', COMMAND: 'Query', STATE: 'Waiting for global read lock' },
                    {
                      ID: '52',
                      USER: 'app',
                      COMMAND: 'Query',
                      STATE: 'Waiting for semi-sync ACK from replica',
                    },
                    { ID: '51', USER: 'app', COMMAND: 'Query', STATE: 'waiting for handler commit' },
                  ],
          ],
          [
            /^KILL CONNECTION (\d+)$/,
            () => {
              const id = Number(/(\d+)$/.exec(sib.sent.at(-1)!.sql)![1]);
              sibKills.push(id);
              if (id === 52) releaseDoor?.();
              return [];
            },
          ],
        ]);
        sibling = sib;
        return { ...sib.session, close: async () => {} };
      },
    };
    const sibKills: number[] = [];
    let sibling: ReturnType<typeof scripted> | undefined;
    const inst = new Inst(session, 'db1', dialect, PLAIN_QUOTE);
    expect(await inst.fencePrimary({ graceMs: 0, budgetMs: 2000 })).toEqual({ killed: 2, attempts: 2 });
    expect(sibKills).toEqual([51, 52]);
    expect(main.sqls()).toEqual([
      'SET SESSION lock_wait_timeout = 0',
      'SET GLOBAL super_read_only = ON',
      'SELECT CONNECTION_ID() AS id',
      'SET SESSION lock_wait_timeout = 2',
      'SET GLOBAL super_read_only = ON',
      'SET SESSION lock_wait_timeout = 0',
      expect.stringMatching(/information_schema\.PROCESSLIST/),
    ]);
    expect(sibling?.sqls().filter((q) => q.startsWith('KILL'))).toEqual([
      'KILL CONNECTION 51',
      'KILL CONNECTION 52',
    ]);
  });

  it('applyReadOnly gives up after its budget with a typed error, and waits out the grace first', async () => {
    const s = scripted([VERSION_84, [/^SET GLOBAL super_read_only = ON$/, () => lockWait()]]);
    // Time passes while statements run too: 1 ms per look at the clock, plus the sleeps.
    let t = 0;
    const ticking = {
      now: () => ++t,
      sleep: async (ms: number) => {
        t += ms;
      },
    };
    const inst = new Inst(s.session, 'db1', (await openInst(s.session, 'db1')).dialect, PLAIN_QUOTE, ticking);
    const err = await inst.applyReadOnly({ graceMs: 100, budgetMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MysqlOperationError);
    expect((err as Error).message).toMatch(/^read_only=ON did not apply on db1 within 200 ms/);
    // No session listed during the grace (a try every ~20 ms), then on every try until the budget.
    const sqls = s.sqls();
    const firstList = sqls.findIndex((q) => q.includes('PROCESSLIST'));
    const triesInGrace = sqls
      .slice(0, firstList)
      .filter((q) => q === 'SET GLOBAL super_read_only = ON').length;
    expect(triesInGrace).toBeGreaterThanOrEqual(4);
    expect(triesInGrace).toBeLessThanOrEqual(6);
  });

  it('promoteToPrimary: STOP, RESET REPLICA ALL, semi-sync source AFTER_SYNC, then writable', async () => {
    const s = scripted([VERSION_84, PLUGINS_NEW]);
    const inst = await openInst(s.session, 'db2');
    await inst.promoteToPrimary({ semiSync: true, semiSyncTimeoutMs: 10_000 });
    expect(s.sqls().slice(1)).toEqual([
      'STOP REPLICA',
      'RESET REPLICA ALL',
      expect.stringMatching(/information_schema\.PLUGINS/),
      'SET GLOBAL rpl_semi_sync_source_timeout = 10000',
      "SET GLOBAL rpl_semi_sync_source_wait_point = 'AFTER_SYNC'",
      'SET GLOBAL rpl_semi_sync_source_enabled = ON',
      'SET GLOBAL super_read_only = OFF',
      'SET GLOBAL read_only = OFF',
    ]);
  });

  it('promoteToPrimary without a replica to acknowledge: semi-sync OFF, and nothing to switch off without the plugin', async () => {
    const s = scripted([VERSION_84, PLUGINS_NEW]);
    await (await openInst(s.session, 'db2')).promoteToPrimary({
      semiSync: false,
      semiSyncTimeoutMs: 10_000,
      disableSemiSync: true,
    });
    expect(s.sqls()).toContain('SET GLOBAL rpl_semi_sync_source_enabled = OFF');
    const none = scripted([VERSION_84, [/information_schema\.PLUGINS/, []]]);
    await (await openInst(none.session, 'db2')).promoteToPrimary({
      semiSync: false,
      semiSyncTimeoutMs: 10_000,
      disableSemiSync: true,
    });
    expect(none.sqls().filter((q) => q.startsWith('SET GLOBAL rpl_semi_sync'))).toEqual([]);
  });

  it('freezeReplicationIo says whether it stopped a running receiver; restartReplicationIo repoints or restarts', async () => {
    const running = scripted([VERSION_84, [/^SHOW REPLICA STATUS/, [SHOW_REPLICA_STATUS_84]]]);
    expect(await (await openInst(running.session, 'db2')).freezeReplicationIo()).toBe('stopped');
    expect(running.sqls().slice(1)).toEqual(['SHOW REPLICA STATUS', 'STOP REPLICA IO_THREAD']);
    const none = scripted([VERSION_84]);
    expect(await (await openInst(none.session, 'db2')).freezeReplicationIo()).toBe('no-replication');

    const elsewhere = scripted([VERSION_84, [/^SHOW REPLICA STATUS/, [SHOW_REPLICA_STATUS_84]]]);
    const src = { ...SRC, host: 'db9.internal' };
    expect(await (await openInst(elsewhere.session, 'db2')).restartReplicationIo(src)).toBe('repointed');
    expect(elsewhere.sqls()).toContain('START REPLICA');
    expect(
      elsewhere.sqls().some((q) => q.startsWith("CHANGE REPLICATION SOURCE TO SOURCE_HOST = 'db9.internal'")),
    ).toBe(true);
  });

  it('adoptOwnGtidHistory sends nothing on MySQL (auto-position uses gtid_executed)', async () => {
    const s = scripted([VERSION_84]);
    await (await openInst(s.session, 'db2')).adoptOwnGtidHistory();
    expect(s.sqls().slice(1)).toEqual([]);
  });
});

describe('readProbeFacts on MySQL 8.4 (scripted)', () => {
  it('builds the prober’s NodeProbe fields from MySQL rows: gtid_executed, source/replica semi-sync, heartbeat period', async () => {
    const s = scripted([
      VERSION_84,
      [
        /^SELECT @@server_id/,
        [
          {
            server_id: '2',
            version: '8.4.3',
            read_only: '1',
            super_read_only: '1',
            log_bin: '1',
            log_slave_updates: '1',
            gtid_executed: `${SET},\n2174B383-5441-11E8-B90A-C80AA9429562:1-3`,
            server_now: '1733050000.123456',
            longest_trx: '4',
          },
        ],
      ],
      [
        /^SHOW GLOBAL VARIABLES WHERE/,
        [
          { Variable_name: 'rpl_semi_sync_source_enabled', Value: 'OFF' },
          { Variable_name: 'rpl_semi_sync_replica_enabled', Value: 'ON' },
        ],
      ],
      [/^SHOW GLOBAL STATUS WHERE/, [{ Variable_name: 'Rpl_semi_sync_replica_status', Value: 'ON' }]],
      [/^SHOW REPLICA STATUS/, [SHOW_REPLICA_STATUS_84]],
      [/replication_connection_configuration/, [{ period: '30.000', heartbeats: '5' }]],
    ]);
    const f = await (await openInst(s.session, 'db2')).readProbeFacts();
    expect(f).toMatchObject({
      serverNow: 1733050000.123456,
      serverId: 2,
      readOnly: true,
      gtidCurrentPos: `2174b383-5441-11e8-b90a-c80aa9429562:1-3,${SET}`,
      gtidBinlogPos: f.gtidCurrentPos,
      gtidSlavePos: '',
      semiSync: {
        masterEnabled: false,
        masterActive: false,
        masterClients: 0,
        slaveEnabled: true,
        slaveActive: true,
      },
      longestTrxSeconds: 4,
      replication: {
        flavor: 'mysql',
        sourceHost: '127.0.0.1',
        sourcePort: 13000,
        ioState: 'Yes',
        heartbeatPeriodSeconds: 30,
        heartbeatsReceived: 5,
      },
    });
    // One statement each (this session sends no batches): settings, semi-sync variables and
    // status, replica status, heartbeats; no heartbeat lag unless asked.
    expect(s.sqls().slice(1)).toHaveLength(5);
  });
});
