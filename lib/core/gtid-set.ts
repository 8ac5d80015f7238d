/**
 * MySQL GTID-set algebra, beside the MariaDB position arithmetic of gtid.ts.
 *
 * A MySQL GTID is `source_uuid:n` (8.3+/8.4 also `source_uuid:tag:n`), and a server's
 * gtid_executed is a SET of them: `uuid:1-100:105,uuid2:1-5`. Unlike a MariaDB position, a
 * set remembers holes, so "has every transaction of the other" is an exact subset test and
 * an errant transaction is exactly `GTID_SUBTRACT(replica_executed, primary_executed)`.
 *
 * Text forms accepted by {@link parseGtidSet} (MySQL Reference Manual 8.4, 19.1.3.1 "GTID
 * Format and Storage", "GTID Sets"):
 *  - the server's own output: members separated by `,\n` (SHOW REPLICA STATUS, @@gtid_executed);
 *  - upper- or lower-case UUIDs (the manual's examples are upper case, servers print lower case);
 *  - intervals `n` or `n-m` (n >= 1), several per UUID separated by `:`;
 *  - tags (8.3+): `uuid:1-5:tag_a:1-3:tag_b:7`: a tag applies to the intervals after it, up to
 *    the next tag. A tag is 1-32 letters, digits or underscores, not starting with a digit, and
 *    case-insensitive (stored lower case).
 *
 * Canonical form ({@link formatGtidSet}): UUIDs lower case and ascending, per UUID the untagged
 * intervals first then each tag in ascending order, intervals ascending and merged when they
 * overlap or touch, `n-n` written `n`. That is the order and shape MySQL itself prints.
 */

import {
  compareGtidPos,
  countMissingTransactions,
  describeGtidRanges,
  findErrantGtids,
  formatGtidPos,
  type GtidEntry,
  type GtidPos,
  type GtidRange,
  gtidContains,
  gtidMissing,
  maxGtid,
  parseGtidPos,
} from './gtid.ts';

/** Sorted, disjoint, non-adjacent inclusive intervals [start, end]. */
export type GtidIntervals = ReadonlyArray<readonly [number, number]>;

/**
 * A parsed GTID set: key is the transaction source id (`uuid` or `uuid:tag`, lower case),
 * value its intervals. Never holds an empty interval list.
 */
export type GtidSet = ReadonlyMap<string, GtidIntervals>;

/** Either the text MySQL prints or an already parsed set. */
export type GtidSetInput = string | GtidSet;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TAG = /^[a-z_][a-z0-9_]{0,31}$/;
const INTERVAL = /^(\d+)(?:-(\d+))?$/;
/** GNOs are signed 64-bit on the server; beyond 2^53 a JS number loses precision. */
const MAX_GNO = Number.MAX_SAFE_INTEGER;

/**
 * Parses a MySQL GTID set. The empty string (and blanks) is the empty set. Repeated or
 * overlapping members are merged, as the server does.
 *
 * @throws Error naming the offending member when the text is not a MySQL GTID set (a
 *   MariaDB position such as `0-1-100` gets a hint saying so).
 */
export function parseGtidSet(text: string): GtidSet {
  const out = new Map<string, Array<[number, number]>>();
  const trimmed = text.trim();
  if (trimmed === '') return out;
  for (const raw of trimmed.split(',')) {
    const member = raw.trim();
    const fail = (why: string): never => {
      const hint = /^\d+-\d+-\d+$/.test(member)
        ? ' (this looks like a MariaDB GTID position, not a MySQL GTID set)'
        : '';
      throw new Error(`Failed to parse GTID set "${text}": member "${member}" ${why}${hint}`);
    };
    const parts = member.split(':').map((p) => p.trim());
    const uuid = (parts[0] ?? '').toLowerCase();
    if (!UUID.test(uuid)) fail('does not start with a server UUID');
    if (parts.length < 2) fail('has no transaction interval');
    let tag = '';
    let sawInterval = false;
    for (const part of parts.slice(1)) {
      const m = INTERVAL.exec(part);
      if (m) {
        const start = Number(m[1]);
        const end = m[2] === undefined ? start : Number(m[2]);
        if (start < 1) fail(`has interval "${part}" starting below 1`);
        if (start > MAX_GNO || end > MAX_GNO) fail(`has interval "${part}" beyond ${MAX_GNO}`);
        if (end < start) fail(`has interval "${part}" that ends before it starts`);
        const key = tag === '' ? uuid : `${uuid}:${tag}`;
        const list = out.get(key) ?? [];
        list.push([start, end]);
        out.set(key, list);
        sawInterval = true;
        continue;
      }
      const t = part.toLowerCase();
      if (!TAG.test(t)) fail(`has "${part}", neither an interval nor a tag`);
      tag = t;
      sawInterval = false;
    }
    if (!sawInterval)
      fail(tag === '' ? 'has no transaction interval' : `has tag "${tag}" without an interval`);
  }
  const set = new Map<string, GtidIntervals>();
  for (const [k, list] of out) set.set(k, normalize(list));
  return sortKeys(set);
}

function toSet(input: GtidSetInput): GtidSet {
  return typeof input === 'string' ? parseGtidSet(input) : input;
}

/** Sorts and merges overlapping or touching intervals. */
function normalize(list: ReadonlyArray<readonly [number, number]>): GtidIntervals {
  const sorted = [...list].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const merged: Array<[number, number]> = [];
  for (const [s, e] of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && s <= last[1] + 1) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  return merged;
}

/** `uuid` sorts before `uuid:tag` of the same UUID, tags ascending: the server's own order. */
function compareKeys(a: string, b: string): number {
  const [ua = '', ta = ''] = splitKey(a);
  const [ub = '', tb = ''] = splitKey(b);
  if (ua !== ub) return ua < ub ? -1 : 1;
  if (ta === tb) return 0;
  return ta < tb ? -1 : 1;
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf(':');
  return i < 0 ? [key, ''] : [key.slice(0, i), key.slice(i + 1)];
}

function sortKeys(set: ReadonlyMap<string, GtidIntervals>): GtidSet {
  const out = new Map<string, GtidIntervals>();
  for (const k of [...set.keys()].sort(compareKeys)) {
    const v = set.get(k)!;
    if (v.length > 0) out.set(k, v);
  }
  return out;
}

/**
 * Formats a set canonically. `separator` is what goes between UUIDs: `,` (default, one line,
 * for state records and logs) or `,\n` (what the server prints).
 */
export function formatGtidSet(input: GtidSetInput, separator: ',' | ',\n' = ','): string {
  const set = sortKeys(toSet(input));
  const byUuid = new Map<string, string[]>();
  for (const [key, intervals] of set) {
    const [uuid, tag] = splitKey(key);
    const parts = byUuid.get(uuid) ?? [uuid];
    if (tag !== '') parts.push(tag);
    for (const [s, e] of intervals) parts.push(s === e ? `${s}` : `${s}-${e}`);
    byUuid.set(uuid, parts);
  }
  return [...byUuid.values()].map((p) => p.join(':')).join(separator);
}

/** Every GTID of any input. */
export function gtidSetUnion(...inputs: GtidSetInput[]): GtidSet {
  const acc = new Map<string, Array<readonly [number, number]>>();
  for (const input of inputs) {
    for (const [k, iv] of toSet(input)) acc.set(k, [...(acc.get(k) ?? []), ...iv]);
  }
  const out = new Map<string, GtidIntervals>();
  for (const [k, list] of acc) out.set(k, normalize(list));
  return sortKeys(out);
}

/** The GTIDs of `a` that `b` lacks: `GTID_SUBTRACT(a, b)`. */
export function gtidSetSubtract(a: GtidSetInput, b: GtidSetInput): GtidSet {
  const sa = toSet(a);
  const sb = toSet(b);
  const out = new Map<string, GtidIntervals>();
  for (const [k, iv] of sa) {
    const remove = sb.get(k);
    out.set(k, remove === undefined ? iv : subtractIntervals(iv, remove));
  }
  return sortKeys(out);
}

function subtractIntervals(a: GtidIntervals, b: GtidIntervals): GtidIntervals {
  const out: Array<[number, number]> = [];
  let j = 0;
  for (const [s0, e] of a) {
    let s = s0;
    while (j < b.length && b[j]![1] < s) j++;
    let k = j;
    while (s <= e && k < b.length && b[k]![0] <= e) {
      const [bs, be] = b[k]!;
      if (bs > s) out.push([s, bs - 1]);
      s = Math.max(s, be + 1);
      k++;
    }
    if (s <= e) out.push([s, e]);
  }
  return out;
}

/** The GTIDs both sets hold. */
export function gtidSetIntersect(a: GtidSetInput, b: GtidSetInput): GtidSet {
  const sa = toSet(a);
  return gtidSetSubtract(sa, gtidSetSubtract(sa, b));
}

/** Whether `a` holds every GTID of `b` (`GTID_SUBSET(b, a)`). */
export function gtidSetContains(a: GtidSetInput, b: GtidSetInput): boolean {
  return gtidSetCount(gtidSetSubtract(b, a)) === 0;
}

/** Whether both sets hold exactly the same GTIDs. */
export function gtidSetEquals(a: GtidSetInput, b: GtidSetInput): boolean {
  return gtidSetContains(a, b) && gtidSetContains(b, a);
}

/** Number of GTIDs in the set. */
export function gtidSetCount(input: GtidSetInput): number {
  let n = 0;
  for (const iv of toSet(input).values()) for (const [s, e] of iv) n += e - s + 1;
  return n;
}

/** Number of GTIDs `b` has that `a` lacks. */
export function gtidSetCountMissing(a: GtidSetInput, b: GtidSetInput): number {
  return gtidSetCount(gtidSetSubtract(b, a));
}

/**
 * Errant transactions of a node: what it executed that none of `references` (the primary's
 * gtid_executed, what it received from the primary) hold. `GTID_SUBTRACT(executed, union)`.
 */
export function findErrantGtidSet(executed: GtidSetInput, references: readonly GtidSetInput[]): GtidSet {
  return gtidSetSubtract(executed, gtidSetUnion(...references));
}

export type GtidSetComparison = 'equal' | 'ahead' | 'behind' | 'diverged';

/** `ahead`: `a` strictly contains `b`; `behind` the reverse; `diverged`: each has GTIDs the other lacks. */
export function compareGtidSets(a: GtidSetInput, b: GtidSetInput): GtidSetComparison {
  const aHasMore = !gtidSetContains(b, a);
  const bHasMore = !gtidSetContains(a, b);
  if (aHasMore && bHasMore) return 'diverged';
  if (aHasMore) return 'ahead';
  if (bHasMore) return 'behind';
  return 'equal';
}

/** One line for people: "3 transactions: 3e11fa47-…:6-8". */
export function describeGtidSet(input: GtidSetInput): string {
  const set = toSet(input);
  const n = gtidSetCount(set);
  if (n === 0) return 'nothing';
  return `${n} transaction${n === 1 ? '' : 's'}: ${formatGtidSet(set)}`;
}

// ---------------------------------------------------------------------------------------------
// A flavor-neutral view, so election, completeness and errant checks can be written once.
// ---------------------------------------------------------------------------------------------

/**
 * What the decision core needs from a GTID notation, text in and text out. MariaDB positions
 * ({@link mariadbGtidAlgebra}, over gtid.ts) and MySQL sets ({@link mysqlGtidAlgebra}) both
 * implement it; a check written against it works on either flavor unchanged.
 *
 * Semantics worth knowing: a MariaDB position cannot see holes below a domain's last seq, so
 * `missing` and `errant` there are per-domain ranges; MySQL's are exact.
 */
export interface GtidAlgebra {
  readonly flavor: 'mariadb' | 'mysql';
  /** Canonical text of `text`; throws with a clear message when it is not this flavor's notation. */
  normalize(text: string): string;
  /** Whether `a` holds everything `b` holds. */
  contains(a: string, b: string): boolean;
  /** Everything any of the inputs holds (MariaDB: per-domain maximum). */
  union(...texts: string[]): string;
  /** How many transactions `b` has that `a` lacks. */
  countMissing(a: string, b: string): number;
  /** What `b` has and `a` lacks, for people ('nothing' when `a` contains `b`). */
  describeMissing(a: string, b: string): string;
  /** What `executed` holds that no reference holds: count and a line for people. */
  errant(executed: string, references: readonly string[]): { count: number; description: string };
  compare(a: string, b: string): GtidSetComparison;
  /**
   * What one replica holds from the replication stream, its own errant transactions left out:
   * the set the election ranks by and a catch-up may collect up to.
   */
  receivedOnNode(node: NodeGtidFacts, context: ErrantContext): string;
  /** Errant transactions of one replica: what it executed that did not come from a primary. */
  errantOnNode(node: NodeGtidFacts, context: ErrantContext): { count: number; description: string };
}

/** One node's GTID facts, in its flavor's notation, as the prober read them. */
export interface NodeGtidFacts {
  /** Everything the node executed: MariaDB gtid_current_pos; MySQL gtid_executed. */
  executed: string;
  /**
   * MariaDB gtid_binlog_pos, checked before `executed`: it keeps local writes that
   * gtid_current_pos may hide (a gtid_slave_pos ahead in the same domain). MySQL: unused.
   */
  binlog?: string;
  /**
   * What the receiver fetched from the source: MariaDB Gtid_IO_Pos; MySQL Retrieved_Gtid_Set
   * (Executed_Gtid_Set is NOT received: it holds local writes too).
   */
  retrieved: string;
  /** MariaDB gtid_slave_pos (what replication applied; local writes never enter it). MySQL: ''. */
  replicated: string;
  /** MariaDB @@server_id: tells the node's own entries in a position. */
  serverId?: number;
}

/** What the rest of the cluster says about which transactions are legitimate. */
export interface ErrantContext {
  /** The primary's executed set (MariaDB gtid_binlog_pos) as last seen; undefined: never seen. */
  primary?: string | undefined;
  /**
   * Executed sets of the other reachable replicas. MySQL uses them only when the primary was
   * never seen: a transaction another member also has came from the primary, one only this
   * node has is its own. MariaDB ignores them (gtid_slave_pos tells replicated from local).
   */
  peers?: readonly string[];
}

/** {@link GtidAlgebra} over MySQL GTID sets (exact: holes and errant GTIDs are seen as they are). */
export const mysqlGtidAlgebra: GtidAlgebra = Object.freeze({
  flavor: 'mysql' as const,
  normalize: (text: string) => formatGtidSet(parseGtidSet(text)),
  contains: (a: string, b: string) => gtidSetContains(a, b),
  union: (...texts: string[]) => formatGtidSet(gtidSetUnion(...texts)),
  countMissing: (a: string, b: string) => gtidSetCountMissing(a, b),
  describeMissing: (a: string, b: string) => describeGtidSet(gtidSetSubtract(b, a)),
  errant: (executed: string, references: readonly string[]) => {
    const set = findErrantGtidSet(executed, references);
    return { count: gtidSetCount(set), description: describeGtidSet(set) };
  },
  compare: (a: string, b: string) => compareGtidSets(a, b),
  receivedOnNode: (node: NodeGtidFacts, context: ErrantContext) =>
    formatGtidSet(
      gtidSetSubtract(gtidSetUnion(node.retrieved, node.executed), mysqlErrantSet(node, context)),
    ),
  errantOnNode: (node: NodeGtidFacts, context: ErrantContext) => {
    const set = mysqlErrantSet(node, context);
    return { count: gtidSetCount(set), description: describeGtidSet(set) };
  },
});

/**
 * MySQL: `GTID_SUBTRACT(gtid_executed, Retrieved_Gtid_Set ∪ primary's gtid_executed)`. A set is
 * exact, so a hole below the primary's last GTID and a local write under the node's own UUID are
 * both seen. Retrieved_Gtid_Set covers what arrived after the primary was last seen. Without
 * the primary (never probed), what another member also executed stands in for it.
 */
function mysqlErrantSet(node: NodeGtidFacts, context: ErrantContext): GtidSet {
  const references =
    context.primary !== undefined && context.primary.trim() !== ''
      ? [node.retrieved, context.primary]
      : [node.retrieved, ...(context.peers ?? [])];
  return findErrantGtidSet(node.executed, references);
}

/** {@link GtidAlgebra} over MariaDB positions (lib/core/gtid.ts: per-domain last GTID). */
export const mariadbGtidAlgebra: GtidAlgebra = Object.freeze({
  flavor: 'mariadb' as const,
  normalize: (text: string) => formatGtidPos(parseGtidPos(text)),
  contains: (a: string, b: string) => gtidContains(a, b),
  union: (...texts: string[]) => maxGtid(...texts),
  countMissing: (a: string, b: string) => countMissingTransactions(a, b),
  describeMissing: (a: string, b: string) => describeGtidRanges(gtidMissing(a, b)),
  errant: (executed: string, references: readonly string[]) => {
    const ranges = findErrantGtids(executed, references);
    return {
      count: ranges.reduce((n, r) => n + (r.toSeq - r.fromSeq + 1), 0),
      description: describeGtidRanges(ranges),
    };
  },
  compare: (a: string, b: string) => compareGtidPos(a, b),
  // Gtid_IO_Pos never holds local writes; empty (never received, or reset) falls back to
  // gtid_current_pos, which the errant check then vets.
  receivedOnNode: (node: NodeGtidFacts) =>
    formatGtidPos(parseGtidPos(node.retrieved.trim() !== '' ? node.retrieved : node.executed)),
  errantOnNode: (node: NodeGtidFacts, context: ErrantContext) => {
    const ranges = mariadbNodeErrant(node, context.primary);
    return {
      count: ranges.reduce((n, r) => n + (r.toSeq - r.fromSeq + 1), 0),
      description: describeGtidRanges(ranges),
    };
  },
});

/**
 * MariaDB errant transactions: GTIDs a replica executed that did not come from the primary.
 *
 * What the node has executed is gtid_binlog_pos (every binlogged transaction, local writes
 * included, with log_slave_updates) and gtid_current_pos. What it may legitimately have:
 *  - what its IO thread received from the primary (Gtid_IO_Pos),
 *  - what replication applied (gtid_slave_pos; local writes never enter it),
 *  - the primary's last known gtid_binlog_pos, which covers older domains the primary had even
 *    when this replica's received position was reset.
 * A domain entry covered by none of these is errant: the node alone has it.
 *
 * Entries carrying the node's OWN server_id are held to a stricter rule. A position keeps
 * only the last GTID per domain, so the primary at 0-1-105 "covers" seq 101 whatever server
 * wrote it; a local write 0-3-101 on a replica whose IO thread stopped at 0-1-100 would
 * slip through. For those entries the primary only counts when it holds the very same GTID
 * (this node was primary once and its writes replicated out).
 */
function mariadbNodeErrant(node: NodeGtidFacts, primaryText: string | undefined): GtidRange[] {
  const received = parseGtidPos(node.retrieved);
  const slave = parseGtidPos(node.replicated);
  const primary = parseGtidPos(primaryText ?? '');
  const found = new Map<number, GtidRange>();
  for (const text of [node.binlog, node.executed]) {
    if (text === undefined) continue;
    const executed = parseGtidPos(text);
    const own: GtidPos = new Map();
    const foreign: GtidPos = new Map();
    for (const [d, e] of executed) (e.serverId === node.serverId ? own : foreign).set(d, e);
    const primaryIdentical: GtidPos = new Map();
    for (const [d, e] of own) if (sameEntry(primary.get(d), e)) primaryIdentical.set(d, e);
    const ranges = [
      ...findErrantGtids(foreign, [received, slave, primary]),
      ...findErrantGtids(own, [received, slave, primaryIdentical]),
    ];
    for (const r of ranges) if (!found.has(r.domain)) found.set(r.domain, r);
  }
  return [...found.values()].sort((x, y) => x.domain - y.domain);
}

function sameEntry(a: GtidEntry | undefined, b: GtidEntry): boolean {
  return a !== undefined && a.seq === b.seq && a.serverId === b.serverId;
}

/** The algebra for a server flavor. */
export function gtidAlgebraFor(flavor: 'mariadb' | 'mysql'): GtidAlgebra {
  return flavor === 'mysql' ? mysqlGtidAlgebra : mariadbGtidAlgebra;
}
