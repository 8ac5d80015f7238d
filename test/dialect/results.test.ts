/**
 * Result level: the dialects' parsers on rows shaped exactly like the servers' (fixtures name
 * their manual sections), normalised to one shape for every flavor.
 */
import { describe, expect, it } from 'vitest';
import { detectFlavor } from '../../lib/adapters/mysql/dialect/flavor.ts';
import {
  PLUGINS_MIXED_80,
  SEMISYNC_SOURCE_STATUS_84,
  SEMISYNC_SOURCE_VARIABLES_84,
  SHOW_ALL_SLAVES_STATUS_MARIADB,
  SHOW_BINARY_LOG_STATUS_84,
  SHOW_REPLICA_STATUS_84,
  SHOW_REPLICA_STATUS_84_CONNECTING,
  SHOW_SLAVE_STATUS_57,
} from './fixtures/mysql-manual.ts';

const MY84 = detectFlavor('8.4.3').dialect;
const MY80 = detectFlavor('8.0.36').dialect;
const MY57 = detectFlavor('5.7.44-log').dialect;
const MARIADB = detectFlavor('10.11.6-MariaDB-0+deb12u1-log').dialect;

describe('replica status, normalised', () => {
  it('reads the 8.4 manual’s SHOW REPLICA STATUS row', () => {
    expect(MY84.readReplicaStatus().parse([SHOW_REPLICA_STATUS_84])).toEqual({
      flavor: 'mysql',
      sourceHost: '127.0.0.1',
      sourcePort: 13000,
      ioState: 'Yes',
      sqlRunning: true,
      lastIoErrno: 0,
      lastIoError: '',
      lastSqlErrno: 0,
      lastSqlError: '',
      secondsBehindMaster: 0,
      gtidIoPos: '73f86016-978b-11ee-ade5-8d2a2a562feb:1-3',
      heartbeatsReceived: null,
      usingGtid: 'Auto_Position',
      receivedGtid: '73f86016-978b-11ee-ade5-8d2a2a562feb:1-3',
      retrievedGtid: '73f86016-978b-11ee-ade5-8d2a2a562feb:1-3',
      executedGtid: '73f86016-978b-11ee-ade5-8d2a2a562feb:1-3',
      autoPosition: true,
      sourceId: '73f86016-978b-11ee-ade5-8d2a2a562feb',
    });
  });

  it('reads a connecting replica with NULL lag and multi-line GTID sets from two sources', () => {
    const st = MY84.readReplicaStatus().parse([SHOW_REPLICA_STATUS_84_CONNECTING])!;
    expect(st.ioState).toBe('Connecting');
    expect(st.lastIoErrno).toBe(2003);
    expect(st.secondsBehindMaster).toBeNull();
    expect(st.executedGtid).toBe(
      '2174b383-5441-11e8-b90a-c80aa9429562:1-2,73f86016-978b-11ee-ade5-8d2a2a562feb:1-3',
    );
    // Received = fetched ∪ applied: the applied second source counts, and 4-5 were fetched only.
    expect(st.receivedGtid).toBe(
      '2174b383-5441-11e8-b90a-c80aa9429562:1-2,73f86016-978b-11ee-ade5-8d2a2a562feb:1-5',
    );
    expect(MY84.gtid.countMissing(st.executedGtid, st.receivedGtid)).toBe(2);
    expect(st.retrievedGtid).toBe('73f86016-978b-11ee-ade5-8d2a2a562feb:1-5');
  });

  it('reads the 5.7 manual’s SHOW SLAVE STATUS row (Slave_/Master_ names) into the same shape', () => {
    const st = MY57.readReplicaStatus().parse([SHOW_SLAVE_STATUS_57]);
    expect(st).toMatchObject({
      flavor: 'mysql',
      sourceHost: 'localhost',
      sourcePort: 13000,
      ioState: 'Yes',
      sqlRunning: true,
      secondsBehindMaster: 0,
      receivedGtid: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5',
      autoPosition: true,
      sourceId: '3e11fa47-71ca-11e1-9e33-c80aa9429562',
    });
    // 8.0.22+ servers answer SHOW SLAVE STATUS with the new names too; both parse the same.
    expect(MY80.readReplicaStatus().parse([SHOW_SLAVE_STATUS_57])).toEqual(st);
  });

  it('picks the default channel of a multi-channel replica and reads no rows as "not a replica"', () => {
    const other = { ...SHOW_REPLICA_STATUS_84, Channel_Name: 'analytics', Source_Host: '10.9.9.9' };
    expect(MY84.readReplicaStatus().parse([other, SHOW_REPLICA_STATUS_84])?.sourceHost).toBe('127.0.0.1');
    expect(MY84.readReplicaStatus().parse([])).toBeUndefined();
  });

  it('reads MariaDB’s SHOW ALL SLAVES STATUS into the same shape', () => {
    expect(MARIADB.readReplicaStatus().parse([SHOW_ALL_SLAVES_STATUS_MARIADB])).toMatchObject({
      flavor: 'mariadb',
      sourcePort: 40123,
      ioState: 'Yes',
      receivedGtid: '0-1-25',
      executedGtid: '0-1-25',
      heartbeatsReceived: 17,
      autoPosition: true,
      sourceId: '1',
    });
  });
});

describe('binary log status and GTID positions', () => {
  it('reads the 8.4 manual’s SHOW BINARY LOG STATUS row; the upper-case set comes back canonical', () => {
    expect(MY84.readBinlogStatus().parse([SHOW_BINARY_LOG_STATUS_84])).toEqual({
      file: 'source-bin.000002',
      position: 1307,
      executedGtid: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5',
      doDb: 'test',
      ignoreDb: 'manual, mysql',
    });
    expect(MY84.readBinlogStatus().parse([])).toBeUndefined();
  });

  it('reads gtid_executed / gtid_purged in the server’s multi-line form', () => {
    const pos = MY80.readGtidPositions().parse([
      {
        executed: '2174B383-5441-11E8-B90A-C80AA9429562:1-3,\n3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57',
        purged: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-20',
      },
    ]);
    expect(pos).toEqual({
      flavor: 'mysql',
      executed: '2174b383-5441-11e8-b90a-c80aa9429562:1-3,3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57',
      purged: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-20',
    });
  });
});

describe('wait results', () => {
  it('WAIT_FOR_EXECUTED_GTID_SET: 0 reached, 1 timed out (8.4 manual 14.18.2), NULL is an error', () => {
    const r = MY84.waitForGtid('3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5', 5);
    expect(r.parse([{ w: '0' }])).toBe('reached');
    expect(r.parse([{ w: 1 }])).toBe('timeout');
    expect(() => r.parse([{ w: null }])).toThrow('returned NULL');
  });

  it('MASTER_GTID_WAIT: 0 reached, -1 timed out (MariaDB KB "MASTER_GTID_WAIT")', () => {
    const r = MARIADB.waitForGtid('0-1-5', 5);
    expect(r.parse([{ w: 0 }])).toBe('reached');
    expect(r.parse([{ w: '-1' }])).toBe('timeout');
    expect(() => r.parse([{ w: 1 }])).toThrow('expected 0 or -1');
  });
});

describe('semi-sync reads', () => {
  it('finds which plugin family an upgraded 8.0 runs per side', () => {
    expect(MY80.readSemiSyncPlugins().parse(PLUGINS_MIXED_80)).toEqual({
      source: 'master-slave',
      replica: 'source-replica',
    });
    expect(MY84.readSemiSyncPlugins().parse([])).toEqual({ source: undefined, replica: undefined });
  });

  it('reads source variables and status under the 8.0.26+ names', () => {
    const n = MY84.semiSyncNames('source-replica');
    const vars = MY84.readSemiSyncVariables(n).parse(SEMISYNC_SOURCE_VARIABLES_84);
    expect(vars.get(n.sourceEnabled)).toBe('ON');
    expect(vars.get(n.sourceWaitPoint)).toBe('AFTER_SYNC');
    expect(vars.has(n.replicaEnabled)).toBe(false);
    const st = MY84.readSemiSyncStatus(n).parse(SEMISYNC_SOURCE_STATUS_84);
    expect(st.get(n.sourceStatus)).toBe('ON');
    expect(st.get(n.sourceClients)).toBe('2');
  });
});

describe('read_only and sessions', () => {
  it('reads read_only and super_read_only as the server returns them (0/1)', () => {
    expect(MY84.readReadOnly().parse([{ ro: '1', sro: '1' }])).toEqual({
      readOnly: true,
      superReadOnly: true,
    });
    expect(MY57.readReadOnly().parse([{ ro: 0, sro: 0 }])).toEqual({ readOnly: false, superReadOnly: false });
  });

  it('reads PROCESSLIST rows into session ids, and which commits wait for a semi-sync ACK', () => {
    expect(
      MY84.listClientSessions().parse([
        { ID: '12', USER: 'app', COMMAND: 'Sleep', STATE: '' },
        { ID: '13', USER: 'app', COMMAND: 'Query', STATE: 'Waiting for semi-sync ACK from replica' },
        { ID: '14', USER: 'app', COMMAND: 'Query', STATE: 'Commit' },
      ]),
    ).toEqual([
      { id: 12, user: 'app', command: 'Sleep', awaitingReplicaAck: false, state: '' },
      {
        id: 13,
        user: 'app',
        command: 'Query',
        awaitingReplicaAck: true,
        state: 'Waiting for semi-sync ACK from replica',
      },
      { id: 14, user: 'app', command: 'Query', awaitingReplicaAck: false, state: 'Commit' },
    ]);
    expect(
      MARIADB.listClientSessions().parse([
        { ID: '30', USER: 'app', COMMAND: 'Query', STATE: 'Waiting for semi-sync ACK from slave' },
      ]),
    ).toEqual([
      {
        id: 30,
        user: 'app',
        command: 'Query',
        awaitingReplicaAck: true,
        state: 'Waiting for semi-sync ACK from slave',
      },
    ]);
  });
});
