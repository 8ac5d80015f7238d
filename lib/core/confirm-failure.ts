/**
 * Turns per-round analyses into a failover decision. One actionable round is only a
 * suspicion; what confirms it depends on the evidence:
 *
 *   crash (unambiguous):  R1 suspect --150 ms--> R2 confirmed          (crashConfirmRounds = 2)
 *   hang (ambiguous):     R1 suspect -> R2 suspect -> ... -> confirmed once
 *                         now - since >= confirmWindowMs
 *   blip:                 R1 suspect -> R2 healthy (state dropped, the next suspicion starts over)
 *
 * The window is always measured from the first suspect round, so a crash whose evidence
 * turns ambiguous (a replica's error text changes) still confirms when the window ends.
 */
import type { ConfirmDecision, ConfirmOptions, SuspicionState } from './decision-types.ts';
import type { Analysis, Evidence } from './types.ts';

/**
 * Folds one analysis into the suspicion carried between rounds.
 *
 * @param state the suspicion returned by the previous round, or undefined.
 * @param analysis this round's analysis.
 * @param now epoch ms of this round (the caller's clock; nothing here reads one).
 * @returns the state to carry into the next round (undefined when healthy) and the decision.
 *   A confirmed suspicion keeps its state, so repeating rounds yield the same incidentId.
 */
export function confirmFailure(
  state: SuspicionState | undefined,
  analysis: Analysis,
  now: number,
  opts: ConfirmOptions,
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
        since: now,
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
