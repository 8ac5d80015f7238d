/**
 * T5 · the execution ends outside its Catch, live: a real 3-node MariaDB cluster, the packaged
 * failover state machine on the local Step Functions endpoint (which enforces the execution-level
 * TimeoutSeconds, here shortened to 15 s, and publishes every status change as the EventBridge
 * event Step Functions sends), and the packaged EventBridge rule that delivers FAILED, TIMED_OUT
 * and ABORTED changes to the executionEnded function.
 *
 *   1. FailoverFailed itself fails (every read of the failover record answers HTTP 500): the
 *      execution ends FAILED without its cleanup.
 *   2. After promotion, MoveVip hangs (EC2 never answers) until the execution times out: no
 *      Catch runs at all.
 *
 * Must hold: cleanup runs however the execution ends: failoverInProgress is cleared, a promoted
 * candidate is rolled forward (the state names the writable node), and an operator is alerted.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import type { DynamoRequestMatcher } from '../../infra/local-cloud/dynamo-fault-proxy.ts';
import { type LocalCloud, startLocalCloud } from '../../infra/local-cloud/local-cloud.ts';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import type { FailoverRequest } from '../../lib/failover/context.ts';
import { createRuntime, resetRuntime } from '../../lib/runtime.ts';
import { seedClusterState } from '../support/seed-state.ts';
import { startExecution } from '../support/start-execution.ts';
import { waitFor } from '../support/wait-for.ts';

const NAME = 't5';

/** FailoverFailed's first read: the failover record (lib/failover/finish-steps.ts). */
const failoverRecordRead: DynamoRequestMatcher = (operation, body) =>
  operation === 'GetItem' && JSON.stringify(body.Key ?? {}).includes('FAILOVER#');

describe('T5: an execution that ends outside its Catch', () => {
  let cluster: MariaDbCluster | undefined;
  let cloud: LocalCloud | undefined;
  let store: DynamoStateStore;
  const logs: Array<Record<string, unknown>> = [];
  const lc = () => cloud!;

  const readOnly = async (id: string) =>
    Number((await cluster!.query<{ ro: number }>(id, 'SELECT @@read_only AS ro'))[0]?.ro);
  const alerts = () =>
    logs
      .filter((e) => e.type === 'notification' && String(e.subject).includes('FAILED'))
      .map((e) => String(e.message));

  function setMode(mode: 'auto' | 'fail'): void {
    const file = lc().configFile;
    const doc = JSON.parse(readFileSync(file, 'utf8')) as {
      clusters: Array<{ failover?: Record<string, unknown> }>;
    };
    doc.clusters[0]!.failover = { ...doc.clusters[0]!.failover, mode };
    writeFileSync(file, JSON.stringify(doc, null, 2));
    resetRuntime(createRuntime(process.env, { log: (e) => logs.push(e) }));
  }

  function request(expectedEpoch: number, executionName: string): FailoverRequest {
    return {
      cluster: NAME,
      kind: 'failover',
      failedPrimary: 'db1',
      expectedEpoch,
      incidentId: `incident-${executionName}`,
      executionName,
    };
  }

  beforeAll(async () => {
    cluster = await startCluster({ nodes: 3 });
    cloud = await startLocalCloud({
      cluster,
      clusterName: NAME,
      schedule: false,
      executionTimeoutMs: { FailoverStateMachine: 15_000 },
      clusterOverrides: { failover: { blockPeriodSeconds: 0 } },
      onLog: (e) => logs.push(e),
    });
    store = new DynamoStateStore(cloud.tableName);
    await seedClusterState(store, NAME, 'db1');
    await cluster.crash('db1');
  }, 120_000);

  afterAll(async () => {
    cloud?.faults.clear();
    cloud?.dynamoFaults.clear();
    await cloud?.stop();
    await cluster?.destroy();
  });

  it('cleans up when FailoverFailed itself fails: failoverInProgress is cleared and an operator alerted', async () => {
    setMode('fail'); // ElectCandidate refuses: the execution goes to FailoverFailed
    lc().dynamoFaults.failAll(failoverRecordRead);
    await startExecution(lc().stateMachineArn, 't5-failover-e1', request(0, 't5-failover-e1'));
    const arn = `${lc().stateMachineArn.replace(':stateMachine:', ':execution:')}:t5-failover-e1`;
    const ended = await lc().sfn.waitForExecution(arn, 30_000);
    expect(ended.status).toBe('FAILED');
    const failed = ended.states.find((s) => s.name === 'FailoverFailed');
    expect(failed?.outcome).toBe('failed');
    lc().dynamoFaults.clear();

    await waitFor(
      async () => (await store.getClusterState(NAME))?.failoverInProgress === undefined,
      15_000,
      'the execution status rule to clear failoverInProgress',
    );
    // FailoverFailed retried the state table's 500s (StateStoreUnavailableError) before giving up.
    expect(failed?.attempts).toBe(4);
    const state = await store.getClusterState(NAME);
    expect(state?.primaryId).toBe('db1'); // nothing was promoted
    expect(state?.lastFailover).toMatchObject({ epoch: 1, status: 'failed' });
    expect(alerts().some((m) => m.includes('t5-failover-e1 ended FAILED outside its Catch'))).toBe(true);
    const delivery = lc()
      .eventBridge.deliveries()
      .find((d) => d.status === 'ok');
    expect(delivery?.rule).toMatch(/executionEnded/);
  });

  it('rolls a promoted candidate forward when the execution times out in MoveVip (no Catch runs)', async () => {
    setMode('auto');
    lc().faults.set('AssignPrivateIpAddresses', { hang: true });
    const epoch = (await store.getClusterState(NAME))?.epoch ?? 0;
    const name = `t5-failover-e${epoch + 1}`;
    await startExecution(lc().stateMachineArn, name, request(epoch, name));
    const arn = `${lc().stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
    const ended = await lc().sfn.waitForExecution(arn, 40_000);
    expect(ended.status).toBe('TIMED_OUT');
    expect(ended.states.map((s) => s.name)).not.toContain('FailoverFailed');
    expect(ended.states.find((s) => s.name === 'PromoteCandidate')?.outcome).toBe('exited');

    // MoveVip's Lambda is still running (hung on EC2): the cleanup revokes the claim at once and
    // decides once that task is over, at the latest its TimeoutSeconds (120 s) plus a margin.
    await waitFor(
      async () => (await store.getClusterState(NAME))?.failoverInProgress?.revokedAt !== undefined,
      20_000,
      'the execution status rule to revoke the claim',
    );
    await waitFor(
      async () => (await store.getClusterState(NAME))?.failoverInProgress === undefined,
      150_000,
      'the execution status rule to clear failoverInProgress',
    );
    const writable: string[] = [];
    for (const id of ['db2', 'db3']) if ((await readOnly(id)) === 0) writable.push(id);
    expect(writable).toHaveLength(1);
    const state = await store.getClusterState(NAME);
    expect(state?.primaryId).toBe(writable[0]);
    expect(state?.needsRejoin).toContain('db1');
    expect(state?.lastFailover).toMatchObject({ epoch: epoch + 1, status: 'failed', to: writable[0] });
    const alert = alerts().find((m) => m.includes(`${name} ended TIMED_OUT outside its Catch`));
    expect(alert).toContain('ROLLED FORWARD');
    expect(alert).toContain('still on db1');
    lc().faults.clear();
  }, 240_000);
});
