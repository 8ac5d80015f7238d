/**
 * Types of the decision core that lib/core/types.ts does not define (analysis options,
 * the suspicion carried between probe rounds, election facts). Kept apart so types.ts stays
 * the shared contract; every value here is plain JSON, safe to store in the state table.
 */
import type { AnalysisCode, Evidence } from './types.ts';

export interface AnalyzeOptions {
  /** Replicas further behind than this (Seconds_Behind_Master or heartbeat lag) are reported. */
  replicaLagAlertSeconds: number;
  /** The primary's oldest open transaction older than this is reported. */
  longTransactionAlertSeconds: number;
  /**
   * A replica counts as receiving from the primary when its heartbeat counter or Gtid_IO_Pos
   * moved since the newest history snapshot at least this old (ms).
   */
  progressWindowMs: number;
}

/** What confirmFailure carries from one probe round to the next (JSON, stored between invocations). */
export interface SuspicionState {
  cluster: string;
  primaryId: string;
  /** `now` of the first actionable round of this suspicion. */
  since: number;
  /** `now` of the latest actionable round. */
  lastAt: number;
  /** Actionable rounds seen since `since`, this one included. */
  rounds: number;
  /** Consecutive rounds with unambiguous evidence, ending with the latest round. */
  unambiguousStreak: number;
  /** Evidence of the latest round. */
  evidence: Evidence;
  /** Analysis code of the latest round. */
  code: AnalysisCode;
}

export interface ConfirmOptions {
  /** Ambiguous evidence must stay actionable this long, measured from the first suspect round. */
  confirmWindowMs: number;
  /** Consecutive unambiguous (crash) rounds that confirm. */
  crashConfirmRounds: number;
  /**
   * When set, a suspicion whose previous round is older than this is started afresh: rounds
   * that were never observed cannot count towards the window. Pass about 3x the probe
   * interval when suspicions survive across invocations.
   */
  maxRoundGapMs?: number;
}

export type ConfirmDecision =
  | { kind: 'healthy' }
  | { kind: 'suspect'; since: number; rounds: number; evidence: Evidence; remainingMs: number }
  | { kind: 'confirmed'; since: number; rounds: number; evidence: Evidence; incidentId: string };

/** Facts from earlier probe rounds that the current snapshot cannot show. */
export interface ElectionFacts {
  /** Last known gtid_binlog_pos (MySQL: gtid_executed) of the dead primary, from earlier probes. */
  primaryGtid?: string;
  /**
   * When the prober last reached the primary (epoch ms), with primaryGtid as it was then: the
   * absolute reference for a candidate's lag, which a 2-node cluster or survivors that all lost
   * the primary long ago cannot give relative to each other.
   */
  primaryLastSeenAt?: number;
  /**
   * Server versions by node id (e.g. "10.11.6-MariaDB-0+deb12u1" or "10.11"), used for nodes
   * whose probe did not report @@version.
   */
  majorVersions?: Readonly<Record<string, string>>;
}

/** A replica that received transactions the chosen candidate lacks (a source for catch-up). */
export interface ReplicaAhead {
  nodeId: string;
  receivedGtid: string;
  /** What the candidate lacks, for people (per domain on MariaDB, the exact set on MySQL). */
  missing: string;
  /** Total transactions the candidate lacks from this replica. */
  missingCount: number;
}
