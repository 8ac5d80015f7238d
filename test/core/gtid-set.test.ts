import { describe, expect, it } from 'vitest';
import {
  compareGtidSets,
  describeGtidSet,
  findErrantGtidSet,
  formatGtidSet,
  type GtidSet,
  gtidSetContains,
  gtidSetCount,
  gtidSetCountMissing,
  gtidSetEquals,
  gtidSetIntersect,
  gtidSetSubtract,
  gtidSetUnion,
  mariadbGtidAlgebra,
  mysqlGtidAlgebra,
  parseGtidSet,
} from '../../lib/core/gtid-set.ts';

const U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
const U2 = '2174b383-5441-11e8-b90a-c80aa9429562';
const U3 = '896e7882-18fe-11ef-ab88-22222d34d411';

describe('parseGtidSet', () => {
  it('computes GTID_SUBSET / GTID_SUBTRACT on the sets of MySQL 8.4 Reference Manual 14.18.2 "Functions Used with GTIDs"', () => {
    // The manual's inputs (upper-case UUID, 21-57 and sub-ranges of it); the expected values
    // follow the functions' definitions there. GTID_SUBSET('…:23', '…:21-57') = 1 is printed there.
    const r = gtidSetSubtract(
      '3E11FA47-71CA-11E1-9E33-C80AA9429562:21-57',
      '3E11FA47-71CA-11E1-9E33-C80AA9429562:21',
    );
    expect(formatGtidSet(r)).toBe('3e11fa47-71ca-11e1-9e33-c80aa9429562:22-57');
    // GTID_SUBTRACT(..:21-57, ..:20-25) = ..:26-57; GTID_SUBTRACT(..:21-57, ..:23-24) = ..:21-22:25-57
    expect(formatGtidSet(gtidSetSubtract(`${U1}:21-57`, `${U1}:20-25`))).toBe(`${U1}:26-57`);
    expect(formatGtidSet(gtidSetSubtract(`${U1}:21-57`, `${U1}:23-24`))).toBe(`${U1}:21-22:25-57`);
    // GTID_SUBSET('..:23', '..:21-57') = 1, GTID_SUBSET('..:23-25', '..:21-57') = 1, GTID_SUBSET('..:23-25','..:21-24')... = 0
    expect(gtidSetContains(`${U1}:21-57`, `${U1}:23`)).toBe(true);
    expect(gtidSetContains(`${U1}:21-57`, `${U1}:23-25`)).toBe(true);
    expect(gtidSetContains(`${U1}:21-57`, `${U1}:20-25`)).toBe(false);
  });

  it('reads the multi-line form the server prints in SHOW REPLICA STATUS and @@gtid_executed', () => {
    // The server separates members with ",\n" (Executed_Gtid_Set in SHOW REPLICA STATUS, 8.4
    // Reference Manual 15.7.7.35; @@gtid_executed, 19.1.3.1 "GTID Format and Storage", whose
    // example set holds 2174B383-5441-11E8-B90A-C80AA9429562:1-3).
    const text = `${U2.toUpperCase()}:1-3,\n${U1}:1-5:11-18`;
    const set = parseGtidSet(text);
    expect(formatGtidSet(set)).toBe(`${U2}:1-3,${U1}:1-5:11-18`);
    expect(formatGtidSet(set, ',\n')).toBe(`${U2}:1-3,\n${U1}:1-5:11-18`);
    expect(gtidSetCount(set)).toBe(3 + 5 + 8);
  });

  it('reads tagged GTIDs of MySQL 8.4 (19.1.3.1 "GTID Format and Storage": source_id:tag:transaction_id)', () => {
    // Example from the GTID-tag write-ups of 8.4: ":1-3:abc:1:foo:1-3:5-7" on one UUID.
    const set = parseGtidSet(`${U3}:1-3:ABC:1:foo:1-3:5-7,${U1}:1-2`);
    expect(formatGtidSet(set)).toBe(`${U1}:1-2,${U3}:1-3:abc:1:foo:1-3:5-7`);
    expect(gtidSetCount(set)).toBe(2 + 3 + 1 + 6);
    expect(gtidSetContains(set, `${U3}:foo:2`)).toBe(true);
    // A tagged GTID is a different transaction from the untagged one with the same number.
    expect(gtidSetContains(set, `${U3}:abc:2`)).toBe(false);
    expect(gtidSetContains(`${U3}:1-10`, `${U3}:abc:1`)).toBe(false);
  });

  it('merges repeated and adjacent members the way the server does', () => {
    expect(formatGtidSet(`${U1}:5-9,${U1}:1-4:10,${U1}:3`)).toBe(`${U1}:1-10`);
    expect(formatGtidSet(`${U1}:7:5:6`)).toBe(`${U1}:5-7`);
  });

  it('reads the empty string as the empty set', () => {
    expect(parseGtidSet('').size).toBe(0);
    expect(parseGtidSet(' \n ').size).toBe(0);
    expect(formatGtidSet('')).toBe('');
  });

  it.each([
    ['0-1-100', 'MariaDB GTID position'],
    [`${U1}`, 'no transaction interval'],
    [`${U1}:0-5`, 'starting below 1'],
    [`${U1}:9-5`, 'ends before it starts'],
    [`${U1}:1-5:tag`, 'without an interval'],
    [`${U1}:1-5:9tag:1`, 'neither an interval nor a tag'],
    ['3e11fa47-71ca-11e1-9e33:1-5', 'server UUID'],
    [`${U1}:99999999999999999999`, 'beyond'],
  ])('rejects %j naming the problem', (text, why) => {
    expect(() => parseGtidSet(text)).toThrow(why);
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests: every operation agrees with a brute-force model (explicit sets of GTIDs).
// ---------------------------------------------------------------------------------------------

/** Deterministic PRNG (mulberry32) so a failure reproduces from the printed seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SOURCES = [U1, U2, U3, `${U1}:alpha`, `${U3}:zz_9`];
const MAX_N = 24;

/** A random set as explicit GTIDs, and a random (non-canonical) text for it. */
function randomSet(next: () => number): { model: Set<string>; text: string } {
  const model = new Set<string>();
  const members: string[] = [];
  const count = Math.floor(next() * 6);
  for (let i = 0; i < count; i++) {
    const src = SOURCES[Math.floor(next() * SOURCES.length)]!;
    const s = 1 + Math.floor(next() * MAX_N);
    const e = Math.min(MAX_N, s + Math.floor(next() * 6));
    for (let n = s; n <= e; n++) model.add(`${src}#${n}`);
    const [uuid, tag] = src.split(':');
    const iv = s === e ? `${s}` : `${s}-${e}`;
    const upper = next() < 0.3;
    const u = upper ? uuid!.toUpperCase() : uuid!;
    const t = tag === undefined ? '' : `:${upper ? tag.toUpperCase() : tag}`;
    members.push(`${u}${t}:${iv}`);
  }
  return { model, text: members.join(next() < 0.5 ? ',' : ',\n') };
}

function toModel(set: GtidSet): Set<string> {
  const out = new Set<string>();
  for (const [k, iv] of set) for (const [s, e] of iv) for (let n = s; n <= e; n++) out.add(`${k}#${n}`);
  return out;
}

const sorted = (s: Set<string>) => [...s].sort();

describe('GTID set algebra against a brute-force model', () => {
  const ROUNDS = 3000;

  it(`parses, unions, subtracts, intersects and counts like explicit sets (${ROUNDS} random pairs)`, () => {
    const next = rng(20261201);
    for (let i = 0; i < ROUNDS; i++) {
      const a = randomSet(next);
      const b = randomSet(next);
      const ctx = `round ${i}: a="${a.text}" b="${b.text}"`;
      expect(sorted(toModel(parseGtidSet(a.text))), ctx).toEqual(sorted(a.model));
      const union = new Set([...a.model, ...b.model]);
      const diff = new Set([...a.model].filter((g) => !b.model.has(g)));
      const inter = new Set([...a.model].filter((g) => b.model.has(g)));
      expect(sorted(toModel(gtidSetUnion(a.text, b.text))), ctx).toEqual(sorted(union));
      expect(sorted(toModel(gtidSetSubtract(a.text, b.text))), ctx).toEqual(sorted(diff));
      expect(sorted(toModel(gtidSetIntersect(a.text, b.text))), ctx).toEqual(sorted(inter));
      expect(gtidSetContains(a.text, b.text), ctx).toBe([...b.model].every((g) => a.model.has(g)));
      expect(gtidSetCountMissing(a.text, b.text), ctx).toBe(
        [...b.model].filter((g) => !a.model.has(g)).length,
      );
      expect(gtidSetCount(a.text), ctx).toBe(a.model.size);
      expect(gtidSetEquals(a.text, b.text), ctx).toBe(
        a.model.size === b.model.size && [...a.model].every((g) => b.model.has(g)),
      );
    }
  });

  it('round-trips the canonical form: parse(format(s)) = s and format is a fixed point', () => {
    const next = rng(7);
    for (let i = 0; i < 2000; i++) {
      const { text } = randomSet(next);
      const once = formatGtidSet(text);
      expect(formatGtidSet(once)).toBe(once);
      expect(formatGtidSet(formatGtidSet(text, ',\n'))).toBe(once);
      expect(sorted(toModel(parseGtidSet(once)))).toEqual(sorted(toModel(parseGtidSet(text))));
      // Canonical: lower case, no n-n, no touching intervals.
      expect(once).toBe(once.toLowerCase());
      expect(once).not.toMatch(/(?:^|:)(\d+)-\1(?::|,|$)/);
    }
  });

  it('errant set = GTID_SUBTRACT(replica executed, union of references), and compare agrees', () => {
    const next = rng(99);
    for (let i = 0; i < 1500; i++) {
      const rep = randomSet(next);
      const p1 = randomSet(next);
      const p2 = randomSet(next);
      const want = new Set([...rep.model].filter((g) => !p1.model.has(g) && !p2.model.has(g)));
      expect(sorted(toModel(findErrantGtidSet(rep.text, [p1.text, p2.text])))).toEqual(sorted(want));
      const aHas = [...rep.model].some((g) => !p1.model.has(g));
      const bHas = [...p1.model].some((g) => !rep.model.has(g));
      const cmp = aHas && bHas ? 'diverged' : aHas ? 'ahead' : bHas ? 'behind' : 'equal';
      expect(compareGtidSets(rep.text, p1.text)).toBe(cmp);
    }
  });
});

describe('GtidAlgebra', () => {
  it('finds a replica’s errant transaction against the primary’s gtid_executed (MySQL)', () => {
    const primary = `${U1}:1-100`;
    const replica = `${U1}:1-90,\n${U2}:1`;
    expect(mysqlGtidAlgebra.errant(replica, [primary])).toEqual({
      count: 1,
      description: `1 transaction: ${U2}:1`,
    });
    expect(mysqlGtidAlgebra.countMissing(replica, primary)).toBe(10);
    expect(mysqlGtidAlgebra.describeMissing(replica, primary)).toBe(`10 transactions: ${U1}:91-100`);
    expect(mysqlGtidAlgebra.compare(replica, primary)).toBe('diverged');
  });

  it('sees a hole MySQL sets keep and MariaDB positions cannot', () => {
    // A MySQL replica that skipped transaction 50 does not contain the primary's 1-100.
    expect(mysqlGtidAlgebra.contains(`${U1}:1-49:51-100`, `${U1}:1-100`)).toBe(false);
    expect(mysqlGtidAlgebra.union(`${U1}:1-49`, `${U1}:51-100`)).toBe(`${U1}:1-49:51-100`);
  });

  it('gives the same answers as gtid.ts for MariaDB positions', () => {
    expect(mariadbGtidAlgebra.contains('0-1-100', '0-1-90')).toBe(true);
    expect(mariadbGtidAlgebra.countMissing('0-1-90', '0-1-100')).toBe(10);
    expect(mariadbGtidAlgebra.union('0-1-90,1-2-5', '0-1-100')).toBe('0-1-100,1-2-5');
    expect(mariadbGtidAlgebra.errant('0-1-100,1-3-2', ['0-1-100']).count).toBe(2);
    expect(mariadbGtidAlgebra.compare('0-1-100', '0-1-90')).toBe('ahead');
  });

  it('gives the same answers on both flavors where their notations mean the same transactions', () => {
    // A MariaDB position with one server per domain (d-s-n: transactions 1..n of domain d) is the
    // MySQL set uuid(d):1-n. On such inputs every GtidAlgebra operation must agree, so checks
    // written against the interface behave the same on either flavor.
    const uuid = (d: number) => `00000000-0000-0000-0000-${String(d).padStart(12, '0')}`;
    const next = rng(424242);
    const randomPos = () => {
      const parts: string[] = [];
      for (let d = 0; d < 3; d++) if (next() < 0.7) parts.push(`${d}-1-${1 + Math.floor(next() * 20)}`);
      return parts.join(',');
    };
    const toSetText = (pos: string) =>
      pos === ''
        ? ''
        : pos
            .split(',')
            .map((e) => {
              const [d, , n] = e.split('-').map(Number);
              return `${uuid(d!)}:1${n! > 1 ? `-${n}` : ''}`;
            })
            .join(',');
    for (let i = 0; i < 2000; i++) {
      const a = randomPos();
      const b = randomPos();
      const [sa, sb] = [toSetText(a), toSetText(b)];
      const ctx = `a=${a} b=${b}`;
      expect(mysqlGtidAlgebra.contains(sa, sb), ctx).toBe(mariadbGtidAlgebra.contains(a, b));
      expect(mysqlGtidAlgebra.countMissing(sa, sb), ctx).toBe(mariadbGtidAlgebra.countMissing(a, b));
      expect(mysqlGtidAlgebra.compare(sa, sb), ctx).toBe(mariadbGtidAlgebra.compare(a, b));
      expect(mysqlGtidAlgebra.union(sa, sb), ctx).toBe(
        mysqlGtidAlgebra.normalize(toSetText(mariadbGtidAlgebra.union(a, b))),
      );
      expect(mysqlGtidAlgebra.errant(sa, [sb]).count, ctx).toBe(mariadbGtidAlgebra.errant(a, [b]).count);
    }
  });

  it('refuses the other flavor’s notation with a clear message', () => {
    expect(() => mysqlGtidAlgebra.normalize('0-1-100')).toThrow('MariaDB GTID position');
    expect(() => mariadbGtidAlgebra.normalize(`${U1}:1-5`)).toThrow('MySQL GTID set');
  });

  it('describes an empty difference as nothing', () => {
    expect(describeGtidSet('')).toBe('nothing');
  });
});
