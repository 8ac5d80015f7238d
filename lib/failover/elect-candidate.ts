import { probeNode } from '../adapters/mysql/probe.ts';
import { electCandidate, findErrantReplicas, replicasAheadOf } from '../core/elect-candidate.ts';
import type { ClusterSnapshot, ElectionPolicy } from '../core/types.ts';
import { ErrantTransactionsError, InvalidRequestError, NoEligibleCandidateError } from '../errors.ts';
import type { Runtime } from '../runtime.ts';
import { type FailoverContext, timeouts } from './context.ts';
import { step } from './step-runner.ts';
/** ElectCandidate: probes the survivors and picks the most up-to-date eligible replica. */
export async function electCandidateStep(rt: Runtime, ctx: FailoverContext): Promise<FailoverContext> {
  // An operator's StartExecution input: a misspelt force must not silently mean "not forced".
  if (ctx.ignoreLag !== undefined && typeof ctx.ignoreLag !== 'boolean') {
    throw new InvalidRequestError(
      `Invalid failover input: "ignoreLag" must be true or false, got ${JSON.stringify(ctx.ignoreLag)}. Nothing was changed.`,
      { field: 'ignoreLag' },
    );
  }
  const detail = await step(rt, ctx, 'ElectCandidate', async (c, logins) => {
    const t = timeouts(c);
    const survivors = c.nodes.filter((n) => n.id !== ctx.failedPrimary);
    const probes = await Promise.all(
      survivors.map((n) =>
        probeNode({ nodeId: n.id, host: n.host, port: n.port, isPrimary: false }, logins.admin, t),
      ),
    );
    const snapshot: ClusterSnapshot = {
      cluster: c.name,
      takenAt: rt.now(),
      primaryId: ctx.failedPrimary,
      nodes: probes,
    };
    const state = await rt.store.getClusterState(c.name);
    // The dead primary as the health check last reached it: its position and when (T4: the
    // absolute reference for the candidate's lag).
    const last = state?.topology.find((t) => t.nodeId === ctx.failedPrimary);
    const facts = {
      ...(last?.gtid ? { primaryGtid: last.gtid } : {}),
      ...(last?.gtid && last.seenAt !== undefined ? { primaryLastSeenAt: last.seenAt } : {}),
    };
    const policy: ElectionPolicy = {
      mode: c.failover.mode,
      order: c.nodes.map((n) => n.id),
      rules: Object.fromEntries(c.nodes.map((n) => [n.id, n.promotionRule])),
      maxLagSeconds: c.failover.maxLagSeconds,
      ...(ctx.ignoreLag === true ? { ignoreLag: true } : {}),
    };
    const excluded = Object.fromEntries(
      (state?.needsRejoin ?? [])
        .filter((id) => id !== ctx.failedPrimary)
        .map((id) => [id, 'old primary that needs rejoin']),
    );
    if (c.failover.pedantic) {
      const errant = findErrantReplicas(snapshot, facts);
      if (errant.length > 0) {
        throw new ErrantTransactionsError(
          `Failover of ${c.name} aborted (pedantic): errant transactions on ${errant.map((e) => `${e.nodeId} (${e.errant})`).join(', ')}. Remove them or set failover.pedantic=false to skip such replicas.`,
          { errant },
        );
      }
    }
    // An operator's named candidate: every other survivor is out of the election (not of the
    // catch-up below: the candidate still collects what they received).
    const notRequested = ctx.requestedCandidate
      ? Object.fromEntries(
          survivors
            .filter((n) => n.id !== ctx.requestedCandidate)
            .map((n) => [n.id, `not the candidate the operator named (${ctx.requestedCandidate})`]),
        )
      : {};
    const election = electCandidate(snapshot, policy, {
      ...facts,
      excluded: { ...notRequested, ...excluded },
    });
    if (election.kind === 'veto') {
      const force = /\blag\b|behind the primary/.test(election.reason)
        ? ` To promote anyway, start the failover with "ignoreLag": true (plan with {"cluster":"${c.name}","ignoreLag":true} shows the candidate).`
        : '';
      throw new NoEligibleCandidateError(
        `No replica of ${c.name} can be promoted: ${election.reason}.${force}`,
        {
          verdicts: election.verdicts,
          ...(facts.primaryGtid ? { primaryLastSeen: { gtid: facts.primaryGtid, at: last?.seenAt } } : {}),
        },
      );
    }
    const ahead = replicasAheadOf(snapshot, election.nodeId, facts).filter((r) => !(r.nodeId in excluded));
    return {
      detail: {
        candidate: election.nodeId,
        receivedGtid: election.receivedGtid,
        verdicts: election.verdicts,
        ...(ctx.ignoreLag === true ? { ignoreLag: true } : {}),
        ...(ahead.length > 0
          ? {
              aheadOfCandidate: ahead.map((r) => ({
                nodeId: r.nodeId,
                missing: r.missing,
              })),
            }
          : {}),
      },
    };
  });
  return {
    ...ctx,
    candidate: detail.candidate,
    candidateGtid: detail.receivedGtid,
    verdicts: detail.verdicts,
  };
}
