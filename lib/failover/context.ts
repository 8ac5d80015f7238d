import type { Login, Timeouts } from '../adapters/mysql/connection.ts';
import type { SourceSpec } from '../adapters/mysql/dialect/types.ts';
import type { OpsClock } from '../adapters/mysql/operations.ts';
import type { ClusterConfig, NodeConfig } from '../config/schema.ts';
import type { CandidateVerdict } from '../core/types.ts';
import { InvalidRequestError } from '../errors.ts';

/** Input of an execution, as the health check (or an operator action) starts it. */
export interface FailoverRequest {
  cluster: string;
  kind: 'failover' | 'switchover';
  failedPrimary: string;
  /** The cluster epoch the requester saw; the claim succeeds only from this epoch. */
  expectedEpoch: number;
  incidentId: string;
  executionName: string;
  /** Manual requests may bypass the anti-flap block. */
  ignoreBlock?: boolean;
  /** Manual requests may promote a candidate beyond failover.maxLagSeconds (the report still shows the lag). */
  ignoreLag?: boolean;
  /** Manual requests may name the node to promote; ElectCandidate then vetoes every other one. */
  requestedCandidate?: string;
  reason?: Record<string, unknown>;
}

/** What flows from state to state; each task returns it extended. */
export interface FailoverContext extends FailoverRequest {
  epoch: number;
  candidate?: string;
  verdicts?: CandidateVerdict[];
  candidateGtid?: string;
  repointed?: string[];
  notRepointed?: Array<{ nodeId: string; error: string }>;
  vip?:
    | { holder: string; address: string; ms: number; alreadyThere: boolean }
    | { skipped: string }
    | undefined;
  startedAt?: number;
  /** Replicas the candidate collected transactions from before promotion. */
  caughtUpFrom?: string[];
  /** Set by FenceOldPrimary when it already took the VIP from an unreachable old primary. */
  vipFenced?: boolean;
  /** Set by FenceOldPrimary when the old primary took the SQL fence (it was up then). */
  sqlFenced?: boolean;
}

/** The node's config, or InvalidRequestError naming the cluster. */
export function node(c: ClusterConfig, id: string): NodeConfig {
  const n = c.nodes.find((x) => x.id === id);
  if (!n)
    throw new InvalidRequestError(`Node "${id}" is not in cluster ${c.name}.`, {
      cluster: c.name,
      nodeId: id,
    });
  return n;
}

/** Admin-session timeouts for failover steps (longer queries than probes). */
export function timeouts(c: ClusterConfig): Timeouts {
  return {
    connectTimeoutMs: c.detection.connectTimeoutMs,
    queryTimeoutMs: Math.max(c.detection.queryTimeoutMs, 3000),
  };
}

/** `n` as a replication source, logged in with the replication account. */
export function sourceOf(n: { host: string; port: number }, repl: Login): SourceSpec {
  return { host: n.host, port: n.port, user: repl.user, password: repl.password };
}

/** The named operations' clock for their polling waits: the runtime's, so steps keep one clock. */
export function instClock(rt: { now(): number }): OpsClock {
  return { now: () => rt.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };
}

/** The elected candidate, or InvalidRequestError when ElectCandidate has not run. */
export function requireCandidate(ctx: FailoverContext): string {
  if (!ctx.candidate)
    throw new InvalidRequestError('No candidate in the execution context (ElectCandidate must run first).');
  return ctx.candidate;
}
