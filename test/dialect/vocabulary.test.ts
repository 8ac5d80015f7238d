/**
 * The words plan and status print per dialect (lib/adapters/mysql/dialect/vocabulary.ts): read
 * from the statements each dialect sends, for each version row of issue 13's table.
 */
import { describe, expect, it } from 'vitest';
import { operationWords } from '../../lib/adapters/mysql/dialect/vocabulary.ts';

describe('operationWords', () => {
  it('MariaDB 10.11: SLAVE forms, MASTER_GTID_WAIT, read_only, MASTER_USE_GTID, master/slave semi-sync', () => {
    expect(operationWords('10.11.6-MariaDB-0+deb12u1-log')).toEqual({
      flavor: 'mariadb',
      dialect: 'mariadb',
      server: 'MariaDB 10.11.6',
      stopIo: 'STOP SLAVE IO_THREAD',
      startIo: 'START SLAVE IO_THREAD',
      stop: 'STOP SLAVE',
      resetAll: 'RESET SLAVE ALL',
      waitFunction: 'MASTER_GTID_WAIT',
      fenceOn: 'read_only=ON',
      writesOn: 'read_only=OFF',
      follow: 'CHANGE MASTER TO ... MASTER_USE_GTID = slave_pos',
      semiSyncSource: 'master',
      semiSyncReplica: 'slave',
      semiSyncSourceEnabled: 'rpl_semi_sync_master_enabled',
      semiSyncSourceTimeout: 'rpl_semi_sync_master_timeout',
    });
  });

  it('MySQL 8.4: REPLICA/SOURCE forms, WAIT_FOR_EXECUTED_GTID_SET, super_read_only, SOURCE_AUTO_POSITION', () => {
    expect(operationWords('8.4.3', 'MySQL Community Server - GPL')).toMatchObject({
      dialect: 'mysql8',
      server: 'MySQL 8.4.3',
      stopIo: 'STOP REPLICA IO_THREAD',
      startIo: 'START REPLICA IO_THREAD',
      resetAll: 'RESET REPLICA ALL',
      waitFunction: 'WAIT_FOR_EXECUTED_GTID_SET',
      fenceOn: 'super_read_only=ON',
      writesOn: 'super_read_only=OFF, read_only=OFF',
      follow: 'CHANGE REPLICATION SOURCE TO ... SOURCE_AUTO_POSITION = 1',
      semiSyncSource: 'source',
      semiSyncSourceEnabled: 'rpl_semi_sync_source_enabled',
      semiSyncSourceTimeout: 'rpl_semi_sync_source_timeout',
    });
  });

  it('MySQL 5.7 and 8.0.20: SLAVE forms with MASTER_AUTO_POSITION and the master/slave plugins', () => {
    for (const v of ['5.7.44-log', '8.0.20']) {
      expect(operationWords(v)).toMatchObject({
        dialect: 'mysql57',
        stopIo: 'STOP SLAVE IO_THREAD',
        startIo: 'START SLAVE IO_THREAD',
        waitFunction: 'WAIT_FOR_EXECUTED_GTID_SET',
        fenceOn: 'super_read_only=ON',
        follow: 'CHANGE MASTER TO ... MASTER_AUTO_POSITION = 1',
        semiSyncSource: 'master',
        semiSyncSourceTimeout: 'rpl_semi_sync_master_timeout',
      });
    }
  });

  it('is undefined for no version or one no dialect speaks (the report falls back)', () => {
    expect(operationWords(undefined)).toBeUndefined();
    expect(operationWords('5.6.51')).toBeUndefined();
    expect(operationWords('10.5.9-MariaDB')).toBeUndefined();
  });
});
