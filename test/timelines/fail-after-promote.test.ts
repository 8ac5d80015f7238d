/**
 * T3 · failure after promotion, live: a real 3-node MariaDB cluster, the health check, the
 * packaged failover state machine on the local Step Functions endpoint, the EC2 emulator.
 * db1 is killed. FenceOldPrimary takes the VIP off it before anything is promoted, so the fault
 * lands once PromoteCandidate made the candidate writable: the VIP is found back on db1 (an
 * operator or a stale script put it there) and EC2 refuses every AssignPrivateIpAddresses
 * (injected), so MoveVip really has to move and fails terminally AFTER the promotion.
 *
 * Must hold: the state table never names a node as primary while another node is the writable
 * one. The failover rolls forward: the candidate is the recorded primary, db1 needs rejoin and
 * stays fenced (restarted writable, the health check makes it read-only again), and the alert
 * says the VIP is still on db1. The same rule holds for a switchover whose CompleteSwitchover
 * cannot write the state table (HTTP 500, injected) after the candidate was promoted.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DynamoRequestMatcher } from '../../infra/local-cloud/dynamo-fault-proxy.ts';
import { runSwitchover } from '../../lib/operator/switchover.ts';
import { getRuntime } from '../../lib/runtime.ts';
import { type LiveEnv, type RunningMonitor, startLiveEnv } from '../health/live-env.ts';
import { afterStep, putVipBackOn } from '../support/after-step.ts';
import { seedClusterState } from '../support/seed-state.ts';
import { waitFor } from '../support/wait-for.ts';

describe('T3: a failure after promotion', () => {
  let env: LiveEnv;
  let m: RunningMonitor;

  const readOnly = async (id: string) =>
    Number((await env.cluster.query<{ ro: number }>(id, 'SELECT @@read_only AS ro'))[0]?.ro);

  beforeAll(async () => {
    env = await startLiveEnv({ name: 't3', clusterOverrides: { failover: { blockPeriodSeconds: 0 } } });
    m = env.startMonitor(110_000);
    await waitFor(() => m.rounds.some((r) => r.analysis.code === 'NoProblem'), 10_000, 'NoProblem');
  });

  afterAll(async () => {
    env?.cloud.faults.clear();
    await m?.stop();
    await env?.close();
  });

  it('records the promoted candidate as the primary when MoveVip is refused, and keeps the old primary fenced', async () => {
    const injected = afterStep(env.logs, 'PromoteCandidate', () => {
      env.cloud.faults.set('AssignPrivateIpAddresses', {
        permanentError: {
          code: 'UnauthorizedOperation',
          message: 'You are not authorized to perform this operation.',
          status: 403,
        },
      });
      putVipBackOn(env.cloud, 'db1');
    });
    await env.cluster.crash('db1');
    await waitFor(
      () => env.cloud.sfn.executions().some((e) => e.status !== 'RUNNING'),
      60_000,
      'the failover to end',
    );
    await injected;
    const [execution] = env.cloud.sfn.executions();
    expect(execution?.status).toBe('FAILED');
    const path = execution?.states.map((s) => `${s.name}:${s.outcome}`) ?? [];
    expect(path).toContain('PromoteCandidate:exited');
    expect(path).toContain('MoveVip:caught');
    // MoveVip was refused by EC2 (not a no-op): the failure came after the promotion.
    const record1 = await env.store.getFailover(env.name, 1);
    const moveVip = record1?.steps.find((s) => s.name === 'MoveVip');
    expect(moveVip?.result).toBe('error');
    expect(JSON.stringify(moveVip?.error)).toContain('UnauthorizedOperation');

    // Exactly one writable node, and it is the one the state table names.
    const survivors = ['db2', 'db3'];
    const writable = [];
    for (const id of survivors) if ((await readOnly(id)) === 0) writable.push(id);
    expect(writable).toHaveLength(1);
    const state = await env.store.getClusterState(env.name);
    expect(state?.primaryId).toBe(writable[0]);
    expect(state?.needsRejoin).toContain('db1');
    expect(state?.failoverInProgress).toBeUndefined();
    expect(state?.lastFailover).toMatchObject({ status: 'failed', from: 'db1', to: writable[0] });
    const record = await env.store.getFailover(env.name, 1);
    expect(record?.newPrimary).toBe(writable[0]);

    const alert = env.notifications().find((n) => String(n.subject).includes('FAILED'));
    expect(String(alert?.message)).toContain('ROLLED FORWARD');
    expect(String(alert?.message)).toContain(`VIP ${env.cloud.vipAddress} still on db1`);
    expect(env.cloud.vipHolder()).toBe('db1');

    // db1 comes back writable (a plain restart): it is not the recorded primary, so the health
    // check fences it instead of taking it for a healthy primary.
    env.cloud.faults.clear();
    await env.cluster.restart('db1');
    await waitFor(async () => (await readOnly('db1')) === 1, 20_000, 'the health check to fence db1');
    expect((await env.store.getClusterState(env.name))?.primaryId).toBe(writable[0]);
  });
});

/** endFailover's conditional update of the cluster state (lib/adapters/dynamodb-state-store.ts). */
const endOfFailover: DynamoRequestMatcher = (operation, body) =>
  operation === 'UpdateItem' && String(body.UpdateExpression).includes('REMOVE failoverInProgress');

describe('T3: a failure after the switchover promoted', () => {
  let env: LiveEnv;

  const readOnly = async (id: string) =>
    Number((await env.cluster.query<{ ro: number }>(id, 'SELECT @@read_only AS ro'))[0]?.ro);

  beforeAll(async () => {
    env = await startLiveEnv({ name: 't3s' });
    await seedClusterState(env.store, 't3s', 'db1');
  });

  afterAll(async () => {
    env?.cloud.dynamoFaults.clear();
    await env?.close();
  });

  it('records the promoted candidate when CompleteSwitchover cannot write the state table', async () => {
    const client = new DynamoDBClient({});
    const sdkAttempts = await client.config.maxAttempts();
    client.destroy();
    // Every attempt of CompleteSwitchover (1 + 2 retries), each with all of the SDK's attempts.
    env.cloud.dynamoFaults.failNext(endOfFailover, 3 * sdkAttempts);
    const rt = getRuntime();
    const result = await runSwitchover(rt, rt.cluster('t3s'), { candidate: 'db2' });
    expect(result.executionStatus).toBe('FAILED');

    const writable: string[] = [];
    for (const id of ['db1', 'db2', 'db3']) if ((await readOnly(id)) === 0) writable.push(id);
    expect(writable).toEqual(['db2']);
    const state = await env.store.getClusterState('t3s');
    expect(state?.primaryId).toBe('db2');
    expect(state?.failoverInProgress).toBeUndefined();
    expect(state?.lastFailover).toMatchObject({ status: 'failed', from: 'db1', to: 'db2' });
    // The old primary replicates from the new one already (SwitchoverRepoint): no rejoin needed.
    expect(state?.needsRejoin ?? []).not.toContain('db1');
    const alert = env.notifications().find((n) => String(n.subject).includes('switchover ABORTED'));
    expect(String(alert?.message)).toContain('ROLLED FORWARD');
    expect(env.cloud.vipHolder()).toBe('db2');
    // CompleteSwitchover's 500s were retried (StateStoreUnavailableError) before the Catch.
    expect(env.cloud.dynamoFaults.injected()).toBe(3 * sdkAttempts);
  });
});
