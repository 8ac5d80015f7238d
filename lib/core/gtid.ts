/**
 * MariaDB GTID position arithmetic.
 *
 * A MariaDB GTID is `domain-server_id-seq`. A *position* (gtid_binlog_pos, gtid_current_pos,
 * gtid_slave_pos, Gtid_IO_Pos) holds the last GTID per replication domain, so "what a node
 * has" is, per domain, every seq up to the listed one. With gtid_strict_mode the seq only
 * grows inside a domain, which is what makes positions comparable at all.
 *
 * Limit worth knowing: a position keeps only the LAST GTID of each domain. Two histories
 * that differ below the last seq (0-2-101 on one node, 0-1-101 on another, both later
 * followed by 0-1-102) look identical here. The same seq with different server ids is the
 * one divergence a position can show, and it is reported as such.
 */

export interface GtidEntry {
  serverId: number;
  seq: number;
}

/** Domain id -> last GTID of that domain. */
export type GtidPos = Map<number, GtidEntry>;

/** Either the text MariaDB prints or an already parsed position. */
export type GtidInput = string | ReadonlyMap<number, GtidEntry>;

export type GtidComparison = 'equal' | 'ahead' | 'behind' | 'diverged';

/** Transactions of one domain that one side has and the other lacks. */
export interface GtidRange {
  domain: number;
  /** server_id of the last GTID of the range (earlier ones may come from other servers). */
  serverId: number;
  fromSeq: number;
  toSeq: number;
  /** Same seq, different server_id: two different transactions, not a gap. */
  diverged: boolean;
}

const MAX_U32 = 4_294_967_295;
const ENTRY = /^(\d+)-(\d+)-(\d+)$/;

/**
 * Parses a MariaDB GTID position such as `"0-1-100,1-2-7"`. The empty string is the empty
 * position; whitespace and newlines around entries are ignored. Repeated domains (as in
 * gtid_binlog_state) keep the entry with the highest seq.
 *
 * @throws Error naming the offending entry when the text is not a MariaDB position.
 */
export function parseGtidPos(text: string): GtidPos {
  const pos: GtidPos = new Map();
  const trimmed = text.trim();
  if (trimmed === '') return pos;
  for (const raw of trimmed.split(',')) {
    const item = raw.trim();
    const m = ENTRY.exec(item);
    if (!m) {
      const hint = item.includes(':')
        ? ' (this looks like a MySQL GTID set; only MariaDB positions are supported)'
        : '';
      throw new Error(
        `Failed to parse GTID position "${text}": entry "${item}" is not domain-server_id-seq${hint}`,
      );
    }
    const domain = Number(m[1]);
    const serverId = Number(m[2]);
    const seq = Number(m[3]);
    if (domain > MAX_U32 || serverId > MAX_U32 || !Number.isSafeInteger(seq)) {
      throw new Error(`Failed to parse GTID position "${text}": entry "${item}" is out of range`);
    }
    const prev = pos.get(domain);
    if (prev === undefined || seq > prev.seq) {
      pos.set(domain, { serverId, seq });
    } else if (seq === prev.seq && serverId !== prev.serverId) {
      throw new Error(
        `Failed to parse GTID position "${text}": domain ${domain} has seq ${seq} from two servers (${prev.serverId}, ${serverId})`,
      );
    }
  }
  return pos;
}

function toPos(input: GtidInput): ReadonlyMap<number, GtidEntry> {
  return typeof input === 'string' ? parseGtidPos(input) : input;
}

function sortedDomains(...positions: ReadonlyMap<number, GtidEntry>[]): number[] {
  const domains = new Set<number>();
  for (const p of positions) for (const d of p.keys()) domains.add(d);
  return [...domains].sort((x, y) => x - y);
}

/** Formats a position the way MariaDB prints it, domains in ascending order. */
export function formatGtidPos(input: GtidInput): string {
  const pos = toPos(input);
  return sortedDomains(pos)
    .map((d) => {
      const e = pos.get(d)!;
      return `${d}-${e.serverId}-${e.seq}`;
    })
    .join(',');
}

/** Whether `have` includes the GTID `want` (and so everything before it in its domain). */
function entryCovers(have: GtidEntry | undefined, want: GtidEntry): boolean {
  if (want.seq === 0) return true;
  if (have === undefined) return false;
  return have.seq > want.seq || (have.seq === want.seq && have.serverId === want.serverId);
}

/**
 * Compares two positions domain by domain (a missing domain counts as seq 0).
 * `ahead`: `a` has at least `b`'s seq everywhere and more somewhere; `behind` the reverse;
 * `diverged`: each has something the other lacks, or a domain holds the same seq from
 * different servers.
 */
export function compareGtidPos(a: GtidInput, b: GtidInput): GtidComparison {
  const pa = toPos(a);
  const pb = toPos(b);
  let aAhead = false;
  let bAhead = false;
  for (const d of sortedDomains(pa, pb)) {
    const ea = pa.get(d);
    const eb = pb.get(d);
    const sa = ea?.seq ?? 0;
    const sb = eb?.seq ?? 0;
    if (sa > sb) aAhead = true;
    else if (sb > sa) bAhead = true;
    else if (sa > 0 && ea !== undefined && eb !== undefined && ea.serverId !== eb.serverId) return 'diverged';
  }
  if (aAhead && bAhead) return 'diverged';
  if (aAhead) return 'ahead';
  if (bAhead) return 'behind';
  return 'equal';
}

/** Whether position `a` includes everything position `b` has. */
export function gtidContains(a: GtidInput, b: GtidInput): boolean {
  const pa = toPos(a);
  const pb = toPos(b);
  for (const [d, eb] of pb) if (!entryCovers(pa.get(d), eb)) return false;
  return true;
}

/** Per-domain ranges that `b` has and `a` lacks, ascending by domain (for reports and catch-up). */
export function gtidMissing(a: GtidInput, b: GtidInput): GtidRange[] {
  return findUncovered(toPos(b), [toPos(a)]);
}

/**
 * Ranges of `executed` that none of `references` include: a transaction counts as known
 * when at least one reference covers it. Used for errant-transaction checks, where the
 * references are everything the node could legitimately have got from its primary.
 */
export function findErrantGtids(executed: GtidInput, references: readonly GtidInput[]): GtidRange[] {
  return findUncovered(toPos(executed), references.map(toPos));
}

function findUncovered(
  target: ReadonlyMap<number, GtidEntry>,
  refs: readonly ReadonlyMap<number, GtidEntry>[],
): GtidRange[] {
  const out: GtidRange[] = [];
  for (const d of sortedDomains(target)) {
    const want = target.get(d)!;
    if (refs.some((r) => entryCovers(r.get(d), want))) continue;
    // Highest seq any reference has below `want`: the gap starts right after it.
    let known = 0;
    let sameSeqElsewhere = false;
    for (const r of refs) {
      const have = r.get(d);
      if (have === undefined) continue;
      if (have.seq === want.seq) sameSeqElsewhere = true;
      else if (have.seq > known) known = have.seq;
    }
    // With the same seq elsewhere only the last transaction conflicts; what precedes it is shared.
    out.push({
      domain: d,
      serverId: want.serverId,
      fromSeq: sameSeqElsewhere ? want.seq : known + 1,
      toSeq: want.seq,
      diverged: sameSeqElsewhere,
    });
  }
  return out;
}

/** Number of transactions `b` has beyond `a`, summed over domains (diverged seqs count as 1). */
export function countMissingTransactions(a: GtidInput, b: GtidInput): number {
  return gtidMissing(a, b).reduce((n, r) => n + (r.toSeq - r.fromSeq + 1), 0);
}

/**
 * The per-domain maximum of several positions, formatted. When two inputs hold the same
 * seq from different servers the first one wins: callers that care use compareGtidPos.
 */
export function maxGtid(...positions: GtidInput[]): string {
  const out: GtidPos = new Map();
  for (const input of positions) {
    for (const [d, e] of toPos(input)) {
      const prev = out.get(d);
      if (prev === undefined || e.seq > prev.seq) out.set(d, { serverId: e.serverId, seq: e.seq });
    }
  }
  return formatGtidPos(out);
}

/** One line for people: "domain 0: seq 101-105 (last 0-1-105)". */
export function describeGtidRanges(ranges: readonly GtidRange[]): string {
  if (ranges.length === 0) return 'nothing';
  return ranges
    .map((r) => {
      const last = `${r.domain}-${r.serverId}-${r.toSeq}`;
      if (r.diverged)
        return `domain ${r.domain}: ${last} differs from the transaction at the same seq elsewhere`;
      const seqs = r.fromSeq === r.toSeq ? `seq ${r.fromSeq}` : `seq ${r.fromSeq}-${r.toSeq}`;
      return `domain ${r.domain}: ${seqs} (last ${last})`;
    })
    .join('; ');
}
