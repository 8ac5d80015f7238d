/**
 * T5 · a task still in flight when its execution ends, live: real 3-node MariaDB clusters, the
 * packaged state machines on the local Step Functions endpoint (StopExecution ends an execution
 * ABORTED and leaves the running task's Lambda running, as the service does) and the packaged
 * EventBridge rule delivering the status change to executionEnded.
 *
 * The promotion pauses right after its claim re-check passed (FAILOVER_TEST_PAUSE_AFTER_CLAIM),
 * and the execution is stopped during the pause: the promotion lands about 8 s after the stop.
 * A cleanup that decided at once would find the candidate read-only, record "nothing promoted"
 * (failover) or undo the switchover (VIP back, old primary writable again), and the late
 * promotion would then leave a writable node the state does not name (failover) or two writable
 * nodes (switchover).
 *
 * Must hold: exactly one writable node, named by the state; for the switchover the VIP on it.
 */
import { SFNClient, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { plain as switchover } from '../../functions/switchover.ts';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import { type LocalCloud, startLocalCloud } from '../../infra/local-cloud/local-cloud.ts';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import type { FailoverRequest } from '../../lib/failover/context.ts';
import { seedClusterState } from '../support/seed-state.ts';
import { startExecution } from '../support/start-execution.ts';
import { waitFor } from '../support/wait-for.ts';

const PAUSE = 'PromoteCandidate:promote=8000';

describe('T5: an execution stopped while its promotion is in flight', () => {
  let cluster: MariaDbCluster | undefined;
  let cloud: LocalCloud | undefined;
  const logs: Array<Record<string, unknown>> = [];

  const readOnly = async (id: string) =>
    Number((await cluster!.query<{ ro: number }>(id, 'SELECT @@read_only AS ro'))[0]?.ro);
  const writable = async (ids: string[]) => {
    const out: string[] = [];
    for (const id of ids) if ((await readOnly(id)) === 0) out.push(id);
    return out;
  };
  const executionArn = (machineArn: string, name: string) =>
    `${machineArn.replace(':stateMachine:', ':execution:')}:${name}`;

  async function stopWhenPaused(machineArn: string, name: string): Promise<number> {
    await waitFor(
      async () => logs.some((e) => e.type === 'test-pause' && e.executionName === name),
      60_000,
      `${name} to reach its promotion`,
    );
    const sfn = new SFNClient({});
    try {
      await sfn.send(new StopExecutionCommand({ executionArn: executionArn(machineArn, name) }));
    } finally {
      sfn.destroy();
    }
    return Date.now();
  }

  async function start(name: string, overrides: Record<string, unknown> = {}) {
    cluster = await startCluster({ nodes: 3 });
    cloud = await startLocalCloud({
      cluster,
      clusterName: name,
      schedule: false,
      clusterOverrides: { failover: { blockPeriodSeconds: 0 }, ...overrides },
      onLog: (e) => logs.push(e),
    });
    const store = new DynamoStateStore(cloud.tableName);
    await seedClusterState(store, name, 'db1');
    return store;
  }

  afterEach(async () => {
    delete process.env.FAILOVER_TEST_PAUSE_AFTER_CLAIM;
    await cloud?.stop();
    await cluster?.destroy();
    cloud = undefined;
    cluster = undefined;
  });
  afterAll(() => {
    delete process.env.FAILOVER_TEST_PAUSE_AFTER_CLAIM;
  });

  it('failover: the cleanup waits out the in-flight PromoteCandidate and rolls the late promotion forward', async () => {
    const NAME = 't5stop';
    const store = await start(NAME);
    await cluster!.crash('db1');
    process.env.FAILOVER_TEST_PAUSE_AFTER_CLAIM = PAUSE;
    const name = `${NAME}-failover-e1`;
    const request: FailoverRequest = {
      cluster: NAME,
      kind: 'failover',
      failedPrimary: 'db1',
      expectedEpoch: 0,
      incidentId: `incident-${name}`,
      executionName: name,
    };
    await startExecution(cloud!.stateMachineArn, name, request);
    const stoppedAt = await stopWhenPaused(cloud!.stateMachineArn, name);
    const ended = await cloud!.sfn.waitForExecution(executionArn(cloud!.stateMachineArn, name), 10_000);
    expect(ended.status).toBe('ABORTED');
    expect(ended.states.find((s) => s.name === 'PromoteCandidate')?.outcome).not.toBe('exited');
    // The claim is revoked at once; the decision waits for the promotion's Lambda to be over.
    await waitFor(
      async () => (await store.getClusterState(NAME))?.failoverInProgress?.revokedAt !== undefined,
      10_000,
      'the cleanup to revoke the claim',
    );

    await waitFor(
      async () => (await store.getClusterState(NAME))?.failoverInProgress === undefined,
      120_000,
      'the execution status rule to end the failover',
    );
    const nowWritable = await writable(['db2', 'db3']);
    expect(nowWritable).toHaveLength(1);
    const state = await store.getClusterState(NAME);
    expect(state?.primaryId).toBe(nowWritable[0]);
    expect(state?.needsRejoin).toContain('db1');
    const record = await store.getFailover(NAME, 1);
    const promoted = record?.steps.find((s) => s.name === 'PromoteCandidate' && s.result === 'ok');
    const forward = record?.steps.find((s) => s.name === 'RollForward');
    // The promotion landed after the stop, and the cleanup decided after it.
    expect(promoted?.endedAt).toBeGreaterThan(stoppedAt);
    expect(forward?.startedAt).toBeGreaterThan(promoted?.endedAt ?? Number.POSITIVE_INFINITY);
    const cleanup = logs.find((e) => e.type === 'execution-ended' && e.executionName === name);
    expect(JSON.stringify(cleanup?.inFlight)).toContain('PromoteCandidate');
  }, 240_000);

  it('switchover: a stop during the promotion ends with writes on exactly one node, named by the state, the VIP on it', async () => {
    const NAME = 't5swstop';
    const store = await start(NAME);
    process.env.FAILOVER_TEST_PAUSE_AFTER_CLAIM = PAUSE;
    const name = `${NAME}-switchover-e1`;
    const machine = cloud!.stateMachineArns.SwitchoverStateMachine!;
    const result = switchover({ cluster: NAME, candidate: 'db2' });
    const stoppedAt = await stopWhenPaused(machine, name);
    const r = await result;
    expect(r.executionStatus).toBe('ABORTED');

    await waitFor(
      async () => (await store.getClusterState(NAME))?.failoverInProgress === undefined,
      120_000,
      'the execution status rule to end the switchover',
    );
    const nowWritable = await writable(['db1', 'db2', 'db3']);
    expect(nowWritable).toEqual(['db2']);
    const state = await store.getClusterState(NAME);
    expect(state?.primaryId).toBe('db2');
    expect(cloud!.vipHolder()).toBe('db2');
    const record = await store.getFailover(NAME, 1);
    const promoted = record?.steps.find((s) => s.name === 'PromoteCandidate' && s.result === 'ok');
    expect(promoted?.endedAt).toBeGreaterThan(stoppedAt);
    expect(record?.steps.map((s) => s.name)).toContain('RollForward');
    expect(record?.steps.map((s) => s.name)).not.toContain('RestoreOldPrimary');
  }, 240_000);
});
