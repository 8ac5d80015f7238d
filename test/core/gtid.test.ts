import { describe, expect, it } from 'vitest';
import {
  compareGtidPos,
  countMissingTransactions,
  describeGtidRanges,
  findErrantGtids,
  formatGtidPos,
  gtidContains,
  gtidMissing,
  maxGtid,
  parseGtidPos,
} from '../../lib/core/gtid.ts';

describe('parseGtidPos', () => {
  it('parses one entry per domain', () => {
    const pos = parseGtidPos('0-1-100,1-2-7');
    expect([...pos.entries()]).toEqual([
      [0, { serverId: 1, seq: 100 }],
      [1, { serverId: 2, seq: 7 }],
    ]);
  });

  it('reads the empty string and blanks as the empty position', () => {
    expect(parseGtidPos('').size).toBe(0);
    expect(parseGtidPos('  \n').size).toBe(0);
  });

  it('tolerates whitespace and newlines between entries', () => {
    expect(formatGtidPos(parseGtidPos(' 1-2-7,\n 0-1-100 \n'))).toBe('0-1-100,1-2-7');
  });

  it('keeps the highest seq when a domain repeats, as in gtid_binlog_state', () => {
    expect(formatGtidPos('0-1-100,0-2-50,0-3-120')).toBe('0-3-120');
  });

  it('throws a clear error on malformed text', () => {
    expect(() => parseGtidPos('0-1')).toThrow(/entry "0-1" is not domain-server_id-seq/);
    expect(() => parseGtidPos('0-1-100,,1-2-3')).toThrow(/entry ""/);
    expect(() => parseGtidPos('a-b-c')).toThrow(/not domain-server_id-seq/);
    expect(() => parseGtidPos('0-1--5')).toThrow(/not domain-server_id-seq/);
  });

  it('points at MySQL GTID sets, which it does not read', () => {
    expect(() => parseGtidPos('3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5')).toThrow(/MySQL GTID set/);
  });

  it('rejects out-of-range numbers and the same seq from two servers', () => {
    expect(() => parseGtidPos('4294967296-1-1')).toThrow(/out of range/);
    expect(() => parseGtidPos('0-1-99999999999999999999')).toThrow(/out of range/);
    expect(() => parseGtidPos('0-1-100,0-2-100')).toThrow(/two servers/);
  });
});

describe('compareGtidPos', () => {
  it('reports equal positions regardless of entry order', () => {
    expect(compareGtidPos('0-1-100,1-2-7', '1-2-7,0-1-100')).toBe('equal');
    expect(compareGtidPos('', '')).toBe('equal');
  });

  it('reports ahead and behind within one domain', () => {
    expect(compareGtidPos('0-1-101', '0-1-100')).toBe('ahead');
    expect(compareGtidPos('0-1-100', '0-1-101')).toBe('behind');
  });

  it('counts a missing domain as seq 0', () => {
    expect(compareGtidPos('0-1-100,1-2-7', '0-1-100')).toBe('ahead');
    expect(compareGtidPos('0-1-100', '0-1-100,1-2-7')).toBe('behind');
    expect(compareGtidPos('0-1-5', '')).toBe('ahead');
  });

  it('reports diverged when each side is ahead in a different domain', () => {
    expect(compareGtidPos('0-1-101,1-2-7', '0-1-100,1-2-8')).toBe('diverged');
  });

  it('treats the same seq from different servers as diverged', () => {
    expect(compareGtidPos('0-1-100', '0-3-100')).toBe('diverged');
    expect(compareGtidPos('0-1-100,1-2-9', '0-3-100,1-2-7')).toBe('diverged');
  });

  it('accepts parsed positions as well as text', () => {
    expect(compareGtidPos(parseGtidPos('0-1-5'), '0-1-4')).toBe('ahead');
  });
});

describe('gtidContains', () => {
  it('holds when a has at least b in every domain', () => {
    expect(gtidContains('0-1-100,1-2-7', '0-1-90')).toBe(true);
    expect(gtidContains('0-1-100', '0-1-100')).toBe(true);
    expect(gtidContains('0-1-100', '')).toBe(true);
  });

  it('fails on a missing domain, a lower seq or a conflicting server at the same seq', () => {
    expect(gtidContains('0-1-100', '0-1-100,1-2-1')).toBe(false);
    expect(gtidContains('0-1-99', '0-1-100')).toBe(false);
    expect(gtidContains('0-1-100', '0-2-100')).toBe(false);
  });
});

describe('gtidMissing', () => {
  it('lists per-domain ranges b has and a lacks', () => {
    expect(gtidMissing('0-1-100,1-2-7', '0-1-105,1-2-7,2-3-4')).toEqual([
      { domain: 0, serverId: 1, fromSeq: 101, toSeq: 105, diverged: false },
      { domain: 2, serverId: 3, fromSeq: 1, toSeq: 4, diverged: false },
    ]);
  });

  it('is empty when a contains b', () => {
    expect(gtidMissing('0-1-105', '0-1-100')).toEqual([]);
  });

  it('flags a same-seq conflict as a one-transaction divergence', () => {
    expect(gtidMissing('0-1-100', '0-3-100')).toEqual([
      { domain: 0, serverId: 3, fromSeq: 100, toSeq: 100, diverged: true },
    ]);
  });

  it('counts and describes the missing transactions', () => {
    expect(countMissingTransactions('0-1-100', '0-1-105,1-2-3')).toBe(8);
    expect(describeGtidRanges(gtidMissing('0-1-100', '0-1-105'))).toBe(
      'domain 0: seq 101-105 (last 0-1-105)',
    );
    expect(describeGtidRanges([])).toBe('nothing');
  });
});

describe('findErrantGtids', () => {
  it('finds a domain only the replica has', () => {
    expect(findErrantGtids('0-1-100,7-3-2', ['0-1-100'])).toEqual([
      { domain: 7, serverId: 3, fromSeq: 1, toSeq: 2, diverged: false },
    ]);
  });

  it('accepts entries covered by any one of the references', () => {
    expect(findErrantGtids('0-1-100,1-2-7', ['0-1-100', '1-2-9'])).toEqual([]);
  });

  it('reports a local write past what was received', () => {
    expect(findErrantGtids('0-3-101', ['0-1-100'])).toEqual([
      { domain: 0, serverId: 3, fromSeq: 101, toSeq: 101, diverged: false },
    ]);
  });

  it('reports a local write at a seq the primary used for another transaction as diverged', () => {
    expect(findErrantGtids('0-3-101', ['0-1-101'])).toEqual([
      { domain: 0, serverId: 3, fromSeq: 101, toSeq: 101, diverged: true },
    ]);
  });
});

describe('maxGtid', () => {
  it('takes the highest seq of every domain', () => {
    expect(maxGtid('0-1-100,1-2-7', '0-1-105', '2-3-1,1-2-5')).toBe('0-1-105,1-2-7,2-3-1');
  });

  it('returns the empty position for no input', () => {
    expect(maxGtid()).toBe('');
  });
});
