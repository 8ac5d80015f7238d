/**
 * Fast unit tests of the timelines T3 (failure after promotion), T5 (an execution that ends
 * outside its Catch) and T6 (a burned execution name): the in-memory StateStore and the fake
 * VipMover stand in for DynamoDB and the provider, the local Step Functions endpoint runs tiny
 * definitions. The live tests beside this file run the same timelines against real mariadbd.
 */
import { SFNClient, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matchesPattern } from '../../infra/local-cloud/eventbridge-emulator.ts';
import {
  type ExecutionStatusChangeEvent,
  type SfnEndpoint,
  startSfnEndpoint,
} from '../../infra/local-cloud/sfn-endpoint.ts';
import { translateStoreError } from '../../lib/adapters/dynamodb-state-store.ts';
import type { Notification } from '../../lib/adapters/notifier.ts';
import { SfnFailoverStarter } from '../../lib/adapters/sfn-starter.ts';
import { StateStoreUnavailableError } from '../../lib/errors.ts';
import { executionEnded } from '../../lib/failover/execution-ended.ts';
import { beginFailover, type FailoverContext, failoverFailed } from '../../lib/failover/steps.ts';
import type { Runtime } from '../../lib/runtime.ts';
import { FakeVipMover } from '../support/fake-vip-mover.ts';
import { InMemoryStateStore } from '../support/in-memory-state-store.ts';
import { seedClusterState } from '../support/seed-state.ts';
import { UNIT_CLUSTER, unitRuntime } from '../support/unit-runtime.ts';

const CLUSTER = UNIT_CLUSTER;

/** The execution history shows no task still running when it ended. */
const nothingInFlight = { inFlightUntil: async (_d: unknown, stop: number) => ({ until: stop, states: [] }) };

const runtime = unitRuntime;

/** The cluster after BeginFailover of `executionName` claimed epoch 1, with `steps` audited. */
async function claimed(
  store: InMemoryStateStore,
  rt: Runtime,
  executionName: string,
  steps: Array<{ name: string; result: 'ok' | 'error'; detail?: Record<string, unknown> }>,
): Promise<FailoverContext> {
  await seedClusterState(store, CLUSTER, 'db1');
  const ctx = await beginFailover(rt, {
    cluster: CLUSTER,
    kind: 'failover',
    failedPrimary: 'db1',
    expectedEpoch: 0,
    incidentId: 'incident-1',
    executionName,
  });
  for (const s of steps) {
    await store.appendStep(CLUSTER, 1, { ...s, startedAt: 0, endedAt: 0 });
  }
  return ctx;
}

describe('T3: a failure after promotion', () => {
  it('rolls forward when MoveVip is refused after PromoteCandidate: the candidate is the recorded primary', async () => {
    const store = new InMemoryStateStore();
    const mover = new FakeVipMover('db1');
    const notes: Notification[] = [];
    const rt = runtime(store, mover, notes);
    const ctx = await claimed(store, rt, 'unit-failover-e1', [
      { name: 'ElectCandidate', result: 'ok', detail: { candidate: 'db2' } },
      { name: 'PromoteCandidate', result: 'ok' },
      { name: 'RepointReplicas', result: 'ok' },
      { name: 'MoveVip', result: 'error' },
    ]);
    await failoverFailed(rt, {
      ...ctx,
      candidate: 'db2',
      error: { Error: 'VipMoveFailedError', Cause: '{"errorMessage":"Failed to move VIP: refused"}' },
    });
    const state = await store.getClusterState(CLUSTER);
    expect(state?.primaryId).toBe('db2');
    expect(state?.needsRejoin).toEqual(['db1']);
    expect(state?.failoverInProgress).toBeUndefined();
    expect(state?.lastFailover).toMatchObject({ status: 'failed', from: 'db1', to: 'db2' });
    const alert = notes.findLast((n) => n.subject.includes('FAILED'));
    expect(alert?.message).toContain('ROLLED FORWARD');
    expect(alert?.message).toContain('VIP 10.0.1.50 still on db1');
    expect(alert?.message).not.toContain('RepointReplicas');
    const record = await store.getFailover(CLUSTER, 1);
    expect(record?.newPrimary).toBe('db2');
    expect(record?.steps.map((s) => s.name)).toContain('RollForward');
  });

  it('rolls forward when CompleteFailover failed on a DynamoDB error, the VIP already moved', async () => {
    const store = new InMemoryStateStore();
    const mover = new FakeVipMover('db2');
    const notes: Notification[] = [];
    const rt = runtime(store, mover, notes);
    // The candidate is known only from the audit record (the Catch's context may lack it).
    const ctx = await claimed(store, rt, 'unit-failover-e1', [
      { name: 'ElectCandidate', result: 'ok', detail: { candidate: 'db2' } },
      { name: 'PromoteCandidate', result: 'ok' },
      { name: 'MoveVip', result: 'ok' },
    ]);
    await failoverFailed(rt, { ...ctx, error: { Error: 'StateStoreUnavailableError', Cause: 'HTTP 500' } });
    const state = await store.getClusterState(CLUSTER);
    expect(state?.primaryId).toBe('db2');
    const alert = notes.findLast((n) => n.subject.includes('FAILED'));
    expect(alert?.message).toContain('RepointReplicas: db3');
    expect(alert?.message).not.toContain('MoveVip');
  });

  it('keeps the old primary recorded when nothing was promoted, and says so', async () => {
    const store = new InMemoryStateStore();
    const mover = new FakeVipMover('db1');
    const notes: Notification[] = [];
    const rt = runtime(store, mover, notes);
    const ctx = await claimed(store, rt, 'unit-failover-e1', [
      { name: 'ElectCandidate', result: 'ok', detail: { candidate: 'db2' } },
      // The freeze records the IO threads it stopped: only those are restarted.
      { name: 'FenceOldPrimary', result: 'ok', detail: { freeze: { frozen: ['db2', 'db3'] } } },
      { name: 'CatchUpCandidate', result: 'error' },
    ]);
    await failoverFailed(rt, { ...ctx, error: { Error: 'RelayLogTimeoutError', Cause: 'slow' } });
    const state = await store.getClusterState(CLUSTER);
    expect(state?.primaryId).toBe('db1');
    expect(state?.needsRejoin ?? []).toEqual([]);
    expect(state?.failoverInProgress).toBeUndefined();
    expect(notes.findLast((n) => n.subject.includes('FAILED'))?.message).toContain('Nothing was promoted');
    // The IO threads were to be restarted on the survivors; here they do not answer: named.
    expect(notes.findLast((n) => n.subject.includes('FAILED'))?.message).toMatch(
      /Could NOT restart the IO thread on db2/,
    );
    // Their server is unknown (they do not answer): both forms, so MySQL 8.4 (no START SLAVE) is covered.
    expect(notes.findLast((n) => n.subject.includes('FAILED'))?.message).toContain(
      'run START REPLICA IO_THREAD (START SLAVE IO_THREAD on MariaDB and on MySQL before 8.0.22) there',
    );
  });
});

describe('T5: an execution that ends outside its Catch', () => {
  function statusChange(
    name: string,
    status: ExecutionStatusChangeEvent['detail']['status'],
    input: unknown,
  ): ExecutionStatusChangeEvent {
    return {
      version: '0',
      id: 'e1',
      'detail-type': 'Step Functions Execution Status Change',
      source: 'aws.states',
      account: '000000000000',
      time: '2026-12-01T00:00:00Z',
      region: 'us-east-1',
      resources: [`arn:aws:states:us-east-1:000000000000:execution:x:${name}`],
      detail: {
        executionArn: `arn:aws:states:us-east-1:000000000000:execution:x:${name}`,
        stateMachineArn: 'arn:aws:states:us-east-1:000000000000:stateMachine:x',
        name,
        status,
        startDate: 0,
        stopDate: 1,
        input: JSON.stringify(input),
        inputDetails: { included: true },
        output: null,
        outputDetails: null,
        error: status === 'TIMED_OUT' ? 'States.Timeout' : null,
        cause: null,
      },
    };
  }

  it('cleans up a timed-out failover once, rolling forward a promoted candidate', async () => {
    const store = new InMemoryStateStore();
    const mover = new FakeVipMover('db1');
    const notes: Notification[] = [];
    const rt = runtime(store, mover, notes);
    const ctx = await claimed(store, rt, 'unit-failover-e1', [
      { name: 'ElectCandidate', result: 'ok', detail: { candidate: 'db2' } },
      { name: 'PromoteCandidate', result: 'ok' },
    ]);
    const event = statusChange('unit-failover-e1', 'TIMED_OUT', ctx);
    const first = await executionEnded(rt, event, nothingInFlight);
    expect(first.action).toBe('cleaned');
    const state = await store.getClusterState(CLUSTER);
    expect(state?.failoverInProgress).toBeUndefined();
    expect(state?.primaryId).toBe('db2');
    expect(notes.filter((n) => n.subject.includes('FAILED'))).toHaveLength(1);
    expect(notes[notes.length - 1]?.message).toContain('ended TIMED_OUT outside its Catch');
    // The same event again (EventBridge delivers at least once): nothing more.
    expect((await executionEnded(rt, event, nothingInFlight)).action).toBe('none');
    expect(notes.filter((n) => n.subject.includes('FAILED'))).toHaveLength(1);
  });

  it('undoes a switchover stopped before promotion: the VIP goes back to the old primary and the claim is cleared', async () => {
    const store = new InMemoryStateStore();
    const mover = new FakeVipMover('db2'); // the VIP branch had moved it to the candidate
    const notes: Notification[] = [];
    const rt = runtime(store, mover, notes);
    await seedClusterState(store, CLUSTER, 'db1');
    const req = {
      cluster: CLUSTER,
      kind: 'switchover' as const,
      failedPrimary: 'db1',
      expectedEpoch: 0,
      incidentId: 'sw',
      executionName: 'unit-switchover-e1',
      ignoreBlock: true,
      limits: { maxLagSeconds: 5, maxTransactionSeconds: 10, graceMs: 100, catchUpTimeoutSeconds: 10 },
    };
    await beginFailover(rt, req);
    await store.appendStep(CLUSTER, 1, {
      name: 'SwitchoverPreCheck',
      result: 'ok',
      startedAt: 0,
      endedAt: 0,
      detail: { candidate: 'db2' },
    });
    const r = await executionEnded(rt, statusChange('unit-switchover-e1', 'ABORTED', req), nothingInFlight);
    expect(r.action).toBe('cleaned');
    expect(mover.holder).toBe('db1');
    expect(mover.moves.at(-1)?.to).toBe('db1');
    const state = await store.getClusterState(CLUSTER);
    expect(state?.failoverInProgress).toBeUndefined();
    expect(state?.primaryId).toBe('db1');
    // The candidate does not answer here, so it cannot be verified read-only: writes stay off.
    expect(r.reason).toContain('stays read-only');
  });

  it('leaves alone an execution that does not hold the claim (its Catch ran, or a stale one)', async () => {
    const store = new InMemoryStateStore();
    const notes: Notification[] = [];
    const rt = runtime(store, new FakeVipMover('db1'), notes);
    const ctx = await claimed(store, rt, 'unit-failover-e1', []);
    const r = await executionEnded(rt, statusChange('unit-failover-e1-a2', 'ABORTED', ctx), nothingInFlight);
    expect(r.action).toBe('none');
    expect((await store.getClusterState(CLUSTER))?.failoverInProgress?.executionName).toBe(
      'unit-failover-e1',
    );
    expect(
      (await executionEnded(rt, statusChange('unit-failover-e1', 'SUCCEEDED', ctx), nothingInFlight)).action,
    ).toBe('none');
  });
});

describe('the local Step Functions endpoint', () => {
  let sfn: SfnEndpoint;
  const changes: ExecutionStatusChangeEvent[] = [];
  let cleanups = 0;
  let release: (() => void) | undefined;
  let failWork = false;

  beforeAll(async () => {
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: 'AKIAUNITTEST00000001',
      AWS_SECRET_ACCESS_KEY: 'unit-secret',
      AWS_REGION: 'us-east-1',
    });
    const definition = {
      StartAt: 'Work',
      TimeoutSeconds: 900,
      States: {
        Work: {
          Type: 'Task',
          Resource: 'arn:aws:lambda:us-east-1:000000000000:function:work',
          Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Cleanup' }],
          End: true,
        },
        Cleanup: {
          Type: 'Task',
          Resource: 'arn:aws:lambda:us-east-1:000000000000:function:cleanup',
          End: true,
        },
      },
    };
    const taskHandlers = {
      Work: async () => {
        if (failWork) throw Object.assign(new Error('claim failed'), { name: 'InternalServerError' });
        await new Promise<void>((r) => {
          release = r;
        });
        return {};
      },
      Cleanup: async () => {
        cleanups++;
        return {};
      },
    };
    sfn = await startSfnEndpoint({
      onStatusChange: (e) => changes.push(e),
      stateMachines: [
        { name: 'steady', definition, taskHandlers },
        {
          name: 'slow',
          executionTimeoutMs: 400,
          definition: {
            StartAt: 'Work',
            TimeoutSeconds: 900,
            States: {
              Work: {
                Type: 'Task',
                Resource: 'arn:aws:lambda:us-east-1:000000000000:function:work',
                Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Cleanup' }],
                End: true,
              },
              Cleanup: {
                Type: 'Task',
                Resource: 'arn:aws:lambda:us-east-1:000000000000:function:cleanup',
                End: true,
              },
            },
          },
          taskHandlers: {
            Work: async () => {
              if (failWork) throw Object.assign(new Error('claim failed'), { name: 'InternalServerError' });
              await new Promise<void>((r) => {
                release = r;
              });
              return {};
            },
            Cleanup: async () => {
              cleanups++;
              return {};
            },
          },
        },
      ],
    });
  });
  afterAll(async () => {
    release?.();
    await sfn?.close();
  });

  it('ends an execution at its TimeoutSeconds without running the Catch, and publishes the status change', async () => {
    const client = new SFNClient({ endpoint: sfn.url });
    const started = await new SfnFailoverStarter(sfn.stateMachineArn('slow'), { client }).start('t1', {});
    const done = await sfn.waitForExecution(started.executionArn, 5000);
    expect(done.status).toBe('TIMED_OUT');
    expect(cleanups).toBe(0);
    const ended = changes.find((e) => e.detail.name === 't1' && e.detail.status === 'TIMED_OUT');
    expect(ended?.detail).toMatchObject({ error: 'States.Timeout', input: '{}' });
    expect(typeof ended?.detail.stopDate).toBe('number');
    expect(changes.some((e) => e.detail.name === 't1' && e.detail.status === 'RUNNING')).toBe(true);
    client.destroy();
  });

  it('ends a stopped execution ABORTED without running the Catch', async () => {
    const client = new SFNClient({ endpoint: sfn.url });
    const started = await new SfnFailoverStarter(sfn.stateMachineArn('slow'), { client }).start('t2', {});
    await client.send(new StopExecutionCommand({ executionArn: started.executionArn }));
    expect((await sfn.waitForExecution(started.executionArn, 5000)).status).toBe('ABORTED');
    expect(cleanups).toBe(0);
    expect(changes.some((e) => e.detail.name === 't2' && e.detail.status === 'ABORTED')).toBe(true);
    client.destroy();
  });

  it('matches the packaged rule pattern only for ended executions of our machines', () => {
    const pattern = {
      source: ['aws.states'],
      'detail-type': ['Step Functions Execution Status Change'],
      detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'], stateMachineArn: [sfn.stateMachineArn('slow')] },
    };
    const timedOut = changes.find((e) => e.detail.status === 'TIMED_OUT');
    const running = changes.find((e) => e.detail.status === 'RUNNING');
    expect(matchesPattern(timedOut, pattern)).toBe(true);
    expect(matchesPattern(running, pattern)).toBe(false);
    expect(
      matchesPattern(timedOut, { ...pattern, detail: { ...pattern.detail, stateMachineArn: ['other'] } }),
    ).toBe(false);
  });

  it('T6: starts a new attempt when the execution of that name ended, and none while one runs', async () => {
    const client = new SFNClient({ endpoint: sfn.url });
    const starter = new SfnFailoverStarter(sfn.stateMachineArn('steady'), { client });
    failWork = true; // the first execution ends (through its Catch) before claiming anything
    const first = await starter.start('c-failover-e1', { executionName: 'c-failover-e1' });
    await sfn.waitForExecution(first.executionArn, 5000);
    failWork = false;
    const second = await starter.start('c-failover-e1', { executionName: 'c-failover-e1' });
    expect(second).toMatchObject({ executionName: 'c-failover-e1-a2', alreadyStarted: false });
    const input = sfn.executions().find((e) => e.name === 'c-failover-e1-a2')?.input;
    expect(JSON.parse(input ?? '{}').executionName).toBe('c-failover-e1-a2');
    const third = await starter.start('c-failover-e1', { executionName: 'c-failover-e1' });
    expect(third).toMatchObject({ executionName: 'c-failover-e1-a2', alreadyStarted: true });
    release?.();
    client.destroy();
  });
});

describe('T6: DynamoDB errors at the adapter boundary', () => {
  it('turns a 5xx, a throttle and a timeout into StateStoreUnavailableError, which the machines retry', () => {
    const http500 = Object.assign(new Error('Internal server error'), {
      name: 'InternalServerError',
      $metadata: { httpStatusCode: 500 },
      $fault: 'server',
    });
    const throttle = Object.assign(new Error('slow down'), {
      name: 'ProvisionedThroughputExceededException',
    });
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    for (const e of [http500, throttle, reset]) {
      const t = translateStoreError(e);
      expect(t).toBeInstanceOf(StateStoreUnavailableError);
      expect((t as StateStoreUnavailableError).transient).toBe(true);
      expect((t as Error).cause).toBe(e);
    }
    const condition = Object.assign(new Error('The conditional request failed'), {
      name: 'ConditionalCheckFailedException',
      $metadata: { httpStatusCode: 400 },
    });
    expect(translateStoreError(condition)).toBe(condition);
  });

  it('claims the epoch once when BeginFailover is retried after its write landed but the answer was lost', async () => {
    const store = new InMemoryStateStore();
    const rt = runtime(store, new FakeVipMover('db1'), []);
    await seedClusterState(store, CLUSTER, 'db1');
    const req = {
      cluster: CLUSTER,
      kind: 'failover' as const,
      failedPrimary: 'db1',
      expectedEpoch: 0,
      incidentId: 'i',
      executionName: 'unit-failover-e1',
    };
    // A 5xx before the write: nothing changed, the retry claims.
    store.failNext('beginFailover', () => new StateStoreUnavailableError('HTTP 500'));
    await expect(beginFailover(rt, req)).rejects.toBeInstanceOf(StateStoreUnavailableError);
    expect((await store.getClusterState(CLUSTER))?.epoch).toBe(0);
    const a = await beginFailover(rt, req);
    const b = await beginFailover(rt, req); // the same execution's retry
    expect([a.epoch, b.epoch]).toEqual([1, 1]);
    expect((await store.getFailover(CLUSTER, 1))?.steps.map((s) => s.detail?.alreadyClaimed)).toEqual([
      false,
      true,
    ]);
    // Another execution of the same epoch is refused: exactly once.
    await expect(beginFailover(rt, { ...req, executionName: 'unit-failover-e1-a2' })).rejects.toThrow(
      /in progress/,
    );
  });
});
