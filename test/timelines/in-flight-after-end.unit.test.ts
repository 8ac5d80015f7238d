/**
 * A task still running after its execution ended (a timeout, a StopExecution), fast: the
 * interleavings of the cleanup's revoke / settle / decide rule (lib/failover/execution-ended.ts)
 * with a late PromoteCandidate, MoveVip or switchover step, on the in-memory StateStore and the
 * fake VipMover. The live test beside this file (stopped-mid-step.test.ts) runs the same against
 * real mariadbd and the local Step Functions endpoint.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Notification } from '../../lib/adapters/notifier.ts';
import {
  type ExecutionStatusChange,
  executionEnded,
  inFlightOf,
  taskTimeouts,
} from '../../lib/failover/execution-ended.ts';
import {
  assertClaim,
  beginFailover,
  type FailoverContext,
  failoverFailed,
  moveVip,
  TASK_OVERRUN_MARGIN_MS,
} from '../../lib/failover/steps.ts';
import type { SwitchoverContext } from '../../lib/operator/switchover-steps.ts';
import type { Runtime } from '../../lib/runtime.ts';
import { FakeVipMover } from '../support/fake-vip-mover.ts';
import { InMemoryStateStore } from '../support/in-memory-state-store.ts';
import { seedClusterState } from '../support/seed-state.ts';
import { UNIT_CLUSTER, unitRuntime } from '../support/unit-runtime.ts';

const CLUSTER = UNIT_CLUSTER;

const runtime = unitRuntime;

async function claim(
  store: InMemoryStateStore,
  rt: Runtime,
  kind: 'failover' | 'switchover',
  name: string,
): Promise<FailoverContext> {
  await seedClusterState(store, CLUSTER, 'db1');
  return beginFailover(rt, {
    cluster: CLUSTER,
    kind,
    failedPrimary: 'db1',
    expectedEpoch: 0,
    incidentId: 'incident-1',
    executionName: name,
    ...(kind === 'switchover' ? { ignoreBlock: true } : {}),
  });
}

function ended(name: string, status: ExecutionStatusChange['status'], input: unknown): ExecutionStatusChange {
  return {
    executionArn: `arn:aws:states:us-east-1:000000000000:execution:x:${name}`,
    stateMachineArn: 'arn:aws:states:us-east-1:000000000000:stateMachine:x',
    name,
    status,
    startDate: 0,
    stopDate: Date.now(),
    input: JSON.stringify(input),
    error: status === 'TIMED_OUT' ? 'States.Timeout' : null,
    cause: null,
  };
}

describe('a task in flight when its execution ended', () => {
  it('refuses its irreversible statement when the cleanup revoked the claim after the step had started', async () => {
    const store = new InMemoryStateStore();
    const mover = new FakeVipMover('db1');
    let revokeNow = false;
    // The cleanup's revoke lands between MoveVip's start-of-step check and its move.
    const rt = runtime(store, mover, [], async () => {
      if (revokeNow) await store.revokeClaim(CLUSTER, 1, 'unit-failover-e1', Date.now());
    });
    const ctx = await claim(store, rt, 'failover', 'unit-failover-e1');
    revokeNow = true;
    await expect(moveVip(rt, { ...ctx, candidate: 'db2' })).rejects.toMatchObject({
      name: 'StaleEpochError',
      message: expect.stringContaining('revoked the claim'),
    });
    expect(mover.moves).toHaveLength(0);
    expect(mover.holder).toBe('db1');
  });

  it('lets the cleanup run its own steps on the claim it revoked, and nobody else', async () => {
    const store = new InMemoryStateStore();
    const rt = runtime(store, new FakeVipMover('db1'), []);
    const ctx = await claim(store, rt, 'failover', 'unit-failover-e1');
    expect(await store.revokeClaim(CLUSTER, 1, 'someone-else', 1)).toBe(false);
    expect(await store.revokeClaim(CLUSTER, 1, 'unit-failover-e1', 1)).toBe(true);
    expect(await store.revokeClaim(CLUSTER, 1, 'unit-failover-e1', 2)).toBe(true);
    expect((await store.getClusterState(CLUSTER))?.failoverInProgress?.revokedAt).toBe(1); // the first revoke
    await expect(assertClaim(rt, ctx, 'PromoteCandidate')).rejects.toMatchObject({ name: 'StaleEpochError' });
    await expect(assertClaim(rt, ctx, 'MoveVipBack', { allowRevoked: true })).resolves.toBeUndefined();
  });

  it('decides only after the in-flight PromoteCandidate is over: a promotion landing during the wait is rolled forward', async () => {
    const store = new InMemoryStateStore();
    const mover = new FakeVipMover('db1');
    const notes: Notification[] = [];
    const rt = runtime(store, mover, notes);
    const ctx = await claim(store, rt, 'failover', 'unit-failover-e1');
    await store.appendStep(CLUSTER, 1, {
      name: 'ElectCandidate',
      result: 'ok',
      startedAt: 0,
      endedAt: 0,
      detail: { candidate: 'db2' },
    });
    const stopDate = Date.now();
    const waits: Array<{ ms: number; revokedAt: number | undefined }> = [];
    const r = await executionEnded(
      rt,
      { detail: ended('unit-failover-e1', 'ABORTED', ctx) },
      {
        inFlightUntil: async () => ({
          until: stopDate + 60_000 + TASK_OVERRUN_MARGIN_MS,
          states: [{ name: 'PromoteCandidate', attemptStartedAt: stopDate, timeoutSeconds: 60 }],
        }),
        sleep: async (ms) => {
          waits.push({
            ms,
            revokedAt: (await store.getClusterState(CLUSTER))?.failoverInProgress?.revokedAt,
          });
          // The task passed its re-check before the revoke: its promotion lands during the wait.
          await store.appendStep(CLUSTER, 1, {
            name: 'PromoteCandidate',
            result: 'ok',
            startedAt: 0,
            endedAt: 0,
          });
        },
      },
    );
    expect(waits).toHaveLength(1);
    expect(waits[0]?.revokedAt).toBeTypeOf('number'); // revoked before the wait
    expect(waits[0]?.ms).toBeGreaterThan(60_000);
    expect(r.action).toBe('cleaned');
    const state = await store.getClusterState(CLUSTER);
    expect(state?.failoverInProgress).toBeUndefined();
    expect(state?.primaryId).toBe('db2');
    expect(state?.needsRejoin).toContain('db1');
    expect(notes.at(-1)?.message).toContain('ROLLED FORWARD');
  });

  it('undoes a switchover after its late VIP move, not before: the VIP ends on the old primary', async () => {
    const store = new InMemoryStateStore();
    const mover = new FakeVipMover('db1');
    const rt = runtime(store, mover, []);
    const base = await claim(store, rt, 'switchover', 'unit-switchover-e1');
    const ctx: SwitchoverContext = {
      ...base,
      limits: { maxLagSeconds: 5, maxTransactionSeconds: 10, graceMs: 100, catchUpTimeoutSeconds: 10 },
    };
    await store.appendStep(CLUSTER, 1, {
      name: 'SwitchoverPreCheck',
      result: 'ok',
      startedAt: 0,
      endedAt: 0,
      detail: { candidate: 'db2' },
    });
    const r = await executionEnded(
      rt,
      { detail: ended('unit-switchover-e1', 'TIMED_OUT', ctx) },
      {
        inFlightUntil: async (_d, stop) => ({
          until: stop + 120_000,
          states: [{ name: 'SwitchoverMoveVip', attemptStartedAt: stop, timeoutSeconds: 120 }],
        }),
        // The VIP branch's move, already past its re-check, lands during the wait.
        sleep: async () => {
          mover.holder = 'db2';
        },
      },
    );
    expect(r.action).toBe('cleaned');
    expect(mover.holder).toBe('db1');
    expect(mover.moves.map((m) => m.to)).toEqual(['db1']);
    const state = await store.getClusterState(CLUSTER);
    expect(state?.failoverInProgress).toBeUndefined();
    expect(state?.primaryId).toBe('db1');
  });

  it('as a Catch target, waits the overrun margin after a task timeout and not after a task error', async () => {
    for (const [error, expected] of [
      ['States.Timeout', TASK_OVERRUN_MARGIN_MS],
      ['PromotionFailedError', 0],
    ] as const) {
      const store = new InMemoryStateStore();
      const rt = runtime(store, new FakeVipMover('db1'), []);
      const ctx = await claim(store, rt, 'failover', 'unit-failover-e1');
      const waits: number[] = [];
      await failoverFailed(
        rt,
        { ...ctx, error: { Error: error, Cause: 'x' } },
        { sleep: async (ms) => void waits.push(ms) },
      );
      expect(waits.reduce((a, b) => a + b, 0)).toBeGreaterThan(expected - 100);
      expect(waits.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(expected);
      expect((await store.getClusterState(CLUSTER))?.failoverInProgress).toBeUndefined();
    }
  });
});

describe('the in-flight bound from the execution history', () => {
  const timeouts = new Map([
    ['PromoteCandidate', 60],
    ['MoveVip', 120],
  ]);
  const entered = (name: string, t: number) => ({
    type: 'TaskStateEntered',
    timestamp: new Date(t),
    stateEnteredEventDetails: { name },
  });
  const exited = (name: string, t: number) => ({
    type: 'TaskStateExited',
    timestamp: new Date(t),
    stateExitedEventDetails: { name },
  });

  it('bounds an open task by its last attempt plus its TimeoutSeconds plus the margin', () => {
    const r = inFlightOf(
      [entered('MoveVip', 0), exited('MoveVip', 500), entered('PromoteCandidate', 1000)],
      timeouts,
      3000,
    );
    expect(r.states.map((s) => s.name)).toEqual(['PromoteCandidate']);
    expect(r.until).toBe(1000 + 60_000 + TASK_OVERRUN_MARGIN_MS);
  });

  it('counts from the latest TaskScheduled, and from the stop after a retry it cannot date', () => {
    const scheduled = { type: 'TaskScheduled', timestamp: new Date(5000) };
    expect(inFlightOf([entered('PromoteCandidate', 1000), scheduled], timeouts, 9000).until).toBe(
      5000 + 60_000 + TASK_OVERRUN_MARGIN_MS,
    );
    const failed = { type: 'TaskFailed', timestamp: new Date(5000) };
    expect(inFlightOf([entered('PromoteCandidate', 1000), failed], timeouts, 9000).until).toBe(
      9000 + 60_000 + TASK_OVERRUN_MARGIN_MS,
    );
  });

  it('counts a task that failed the execution as over, and one that failed before a stop as maybe retried', () => {
    const failed = { type: 'TaskFailed', timestamp: new Date(5000) };
    expect(inFlightOf([entered('PromoteCandidate', 1000), failed], timeouts, 6000, 'FAILED').until).toBe(
      6000,
    );
    expect(inFlightOf([entered('PromoteCandidate', 1000), failed], timeouts, 6000, 'ABORTED').until).toBe(
      6000 + 60_000 + TASK_OVERRUN_MARGIN_MS,
    );
    // Two open (Parallel branches): the error may be the other's.
    const parallel = {
      type: 'ParallelStateEntered',
      timestamp: new Date(400),
      stateEnteredEventDetails: { name: 'P' },
    };
    const two = [parallel, entered('MoveVip', 500), entered('PromoteCandidate', 1000), failed];
    expect(inFlightOf(two, timeouts, 6000, 'FAILED').until).toBe(6000 + 120_000 + TASK_OVERRUN_MARGIN_MS);
  });

  it('closes a caught task when the next state is entered, outside a Parallel state only', () => {
    const failed = { type: 'TaskFailed', timestamp: new Date(2000) };
    const caught = [entered('MoveVip', 500), failed, entered('PromoteCandidate', 3000)];
    expect(inFlightOf(caught, timeouts, 4000).states.map((s) => s.name)).toEqual(['PromoteCandidate']);
    const timedOut = {
      type: 'TaskFailed',
      timestamp: new Date(2000),
      taskFailedEventDetails: { error: 'States.Timeout' },
    };
    const late = inFlightOf(
      [
        entered('MoveVip', 500),
        timedOut,
        entered('PromoteCandidate', 3000),
        {
          type: 'TaskStateExited',
          timestamp: new Date(3100),
          stateExitedEventDetails: { name: 'PromoteCandidate' },
        },
      ],
      timeouts,
      4000,
    );
    expect(late.until).toBe(2000 + TASK_OVERRUN_MARGIN_MS); // the timed-out MoveVip's Lambda may run on
  });

  it('needs no wait when no task is open', () => {
    expect(inFlightOf([entered('MoveVip', 0), exited('MoveVip', 500)], timeouts, 3000).until).toBe(3000);
  });

  it('reads every Task TimeoutSeconds of both machines, and executionEnded can wait out the longest and still clean up', () => {
    const sls = parse(readFileSync('serverless.yml', 'utf8')) as {
      functions: Record<string, { timeout?: number }>;
    };
    const longest = Math.max(
      ...['infra/state-machine.yml', 'infra/switchover-state-machine.yml'].flatMap((f) => [
        ...taskTimeouts(parse(readFileSync(f, 'utf8'))).values(),
      ]),
    );
    expect(
      taskTimeouts(parse(readFileSync('infra/switchover-state-machine.yml', 'utf8'))).has('BlockWrites'),
    ).toBe(true);
    // The cleanup itself: a VIP move back (vip.verifyTimeoutMs, at most 120 s) and the SQL around it.
    const cleanupSeconds = 180;
    expect(sls.functions.executionEnded?.timeout).toBeGreaterThanOrEqual(
      longest + TASK_OVERRUN_MARGIN_MS / 1000 + cleanupSeconds,
    );
  });
});
