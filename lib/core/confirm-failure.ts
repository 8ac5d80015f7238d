/**
 * Turns per-round analyses into a failover decision. One actionable round is only a
 * suspicion; what confirms it depends on the evidence:
 *
 *   crash (unambiguous):  R1 suspect --150 ms--> R2 confirmed          (crashConfirmRounds = 2)
 *   hang (ambiguous):     R1 suspect -> R2 suspect -> ... -> confirmed once
 *                         now - since >= confirmWindowMs
 *   blip:                 R1 suspect -> R2 healthy (state dropped, the next suspicion starts over)
 *
 * The window is measured in real time, never in rounds (a hung primary's probe takes the whole
 * connect timeout, so rounds stretch), from the start of the evidence: the caller may say since
 * when the evidence has held (`facts.evidenceSince`: the start of the first failed primary probe
 * of the current streak, but not before the replicas' last received event); otherwise from the
 * first suspect round. A crash whose evidence turns ambiguous (a replica's error text changes)
 * still confirms when the window ends.
 */
import type { ConfirmDecision, ConfirmOptions, SuspicionState } from './decision-types.ts';
import type { Analysis, Evidence } from './types.ts';

/** What the caller knows about the evidence beyond the analysis itself. */
export interface SuspicionFacts {
  /**
   * Epoch ms since which the evidence has held without a break: since when the prober has
   * failed to reach the primary AND no replica has received anything from it.
   */
  evidenceSince?: number;
}

/**
 * Folds one analysis into the suspicion carried between rounds.
 *
 * @param state the suspicion returned by the previous round, or undefined.
 * @param analysis this round's analysis.
 * @param now epoch ms of this round (the caller's clock; nothing here reads one).
 * @param opts the window and the crash rounds.
 * @param facts since when the evidence of this round has held, when the caller knows better
 *   than "this round" (used only when a new suspicion starts; never later than `now`).
 * @returns the state to carry into the next round (undefined when healthy) and the decision.
 *   A confirmed suspicion keeps its state, so repeating rounds yield the same incidentId.
 */
export function confirmFailure(
  state: SuspicionState | undefined,
  analysis: Analysis,
  now: number,
  opts: ConfirmOptions,
  facts: SuspicionFacts = {},
): { state: SuspicionState | undefined; decision: ConfirmDecision } {
  if (!analysis.actionable) return { state: undefined, decision: { kind: 'healthy' } };

  // Missing evidence on an actionable analysis is treated as the weaker kind.
  const evidence: Evidence = analysis.evidence ?? 'ambiguous';
  const continues =
    state !== undefined &&
    state.cluster === analysis.cluster &&
    state.primaryId === analysis.primaryId &&
    now >= state.lastAt &&
    (opts.maxRoundGapMs === undefined || now - state.lastAt <= opts.maxRoundGapMs);

  const next: SuspicionState = continues
    ? {
        ...state,
        lastAt: now,
        rounds: state.rounds + 1,
        unambiguousStreak: evidence === 'unambiguous' ? state.unambiguousStreak + 1 : 0,
        evidence,
        code: analysis.code,
      }
    : {
        cluster: analysis.cluster,
        primaryId: analysis.primaryId,
        since: Math.min(now, facts.evidenceSince ?? now),
        lastAt: now,
        rounds: 1,
        unambiguousStreak: evidence === 'unambiguous' ? 1 : 0,
        evidence,
        code: analysis.code,
      };

  const elapsed = now - next.since;
  const crashConfirmed = next.unambiguousStreak >= Math.max(1, opts.crashConfirmRounds);
  const windowConfirmed = elapsed >= opts.confirmWindowMs;
  if (crashConfirmed || windowConfirmed) {
    return {
      state: next,
      decision: {
        kind: 'confirmed',
        since: next.since,
        rounds: next.rounds,
        evidence,
        incidentId: buildIncidentId(next.cluster, next.primaryId, next.since),
      },
    };
  }
  return {
    state: next,
    decision: {
      kind: 'suspect',
      since: next.since,
      rounds: next.rounds,
      evidence,
      remainingMs: Math.max(0, opts.confirmWindowMs - elapsed),
    },
  };
}

/** Whether the caller should re-probe right away (~150 ms) instead of waiting a full interval. */
export function shouldReprobeQuickly(decision: ConfirmDecision): boolean {
  return decision.kind === 'suspect' && decision.evidence === 'unambiguous';
}

const MAX_ID_LENGTH = 60;

/**
 * A deterministic incident id: the same cluster, primary and first-suspect time always give
 * the same id, so it can name a Step Functions execution idempotently. Only [A-Za-z0-9_-],
 * at most 60 characters; a hash of the untruncated inputs keeps truncated ids distinct.
 */
export function buildIncidentId(cluster: string, primaryId: string, since: number): string {
  const hash = fnv1a32(`${cluster}\u0000${primaryId}\u0000${since}`).toString(16).padStart(8, '0');
  const stamp = Math.max(0, Math.trunc(since)).toString(36);
  const fixed = stamp.length + hash.length + 3;
  const room = Math.max(0, MAX_ID_LENGTH - fixed);
  const c = sanitize(cluster);
  const p = sanitize(primaryId);
  // Share the room only when both do not fit; the primary keeps at least 40 % of it.
  const primaryLen = Math.min(p.length, Math.max(room - c.length, Math.floor(room * 0.4)));
  const clusterLen = Math.min(c.length, room - primaryLen);
  return `${c.slice(0, clusterLen)}-${p.slice(0, primaryLen)}-${stamp}-${hash}`;
}

function sanitize(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]/g, '_');
}

function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
