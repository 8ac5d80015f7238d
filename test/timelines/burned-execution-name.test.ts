/**
 * T6 · a burned execution name, live: a real 3-node MariaDB cluster, the health check, the
 * packaged failover state machine, and DynamoDB (dynalite) behind a fault-injecting proxy that
 * answers BeginFailover's conditional epoch claim with HTTP 500 InternalServerError.
 *
 * Must hold: a DynamoDB 5xx on the claim is retried (the failover completes), and when an
 * execution still ends before it claimed the epoch, the next confirmation starts a new execution
 * (`<cluster>-failover-e<N>-a2`) instead of reporting the burned name as "already started".
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DynamoRequestMatcher } from '../../infra/local-cloud/dynamo-fault-proxy.ts';
import { type LiveEnv, type RunningMonitor, startLiveEnv } from '../health/live-env.ts';
import { waitFor } from '../support/wait-for.ts';

/** BeginFailover's conditional write (lib/adapters/dynamodb-state-store.ts beginFailover). */
const epochClaim: DynamoRequestMatcher = (operation, body) =>
  operation === 'UpdateItem' && String(body.UpdateExpression).includes('failoverInProgress = :p');

describe('T6: a burned execution name', () => {
  let env: LiveEnv;
  let m: RunningMonitor;

  const readOnly = async (id: string) =>
    Number((await env.cluster.query<{ ro: number }>(id, 'SELECT @@read_only AS ro'))[0]?.ro);
  const execution = (name: string) => env.cloud.sfn.executions().find((e) => e.name === name);

  beforeAll(async () => {
    env = await startLiveEnv({ name: 't6', clusterOverrides: { failover: { blockPeriodSeconds: 0 } } });
    m = env.startMonitor(115_000);
    await waitFor(() => m.rounds.some((r) => r.analysis.code === 'NoProblem'), 10_000, 'NoProblem');
  });

  afterAll(async () => {
    env?.cloud.dynamoFaults.clear();
    await m?.stop();
    await env?.close();
  });

  it('retries a DynamoDB 5xx on the epoch claim: the failover completes', async () => {
    // One BeginFailover attempt's worth: every one of the SDK's own attempts answered 500.
    const client = new DynamoDBClient({});
    const sdkAttempts = await client.config.maxAttempts();
    client.destroy();
    env.cloud.dynamoFaults.failNext(epochClaim, sdkAttempts);
    await env.cluster.crash('db1');
    await waitFor(
      () => env.cloud.sfn.executions().some((e) => e.status !== 'RUNNING'),
      45_000,
      'the failover of epoch 1 to end',
    );
    expect(env.cloud.dynamoFaults.injected()).toBe(sdkAttempts);
    const e1 = execution('t6-failover-e1');
    expect(e1?.status).toBe('SUCCEEDED');
    expect(e1?.states.find((s) => s.name === 'BeginFailover')?.attempts).toBe(2);
    const state = await env.store.getClusterState(env.name);
    expect(state?.lastFailover?.status).toBe('succeeded');
    expect(['db2', 'db3']).toContain(state?.primaryId);
    expect(await readOnly(state!.primaryId)).toBe(0);
  });

  it('starts a new execution for the incident when the first one ended before claiming the epoch', async () => {
    const before = (await env.store.getClusterState(env.name))!;
    const primary = before.primaryId;
    const first = `t6-failover-e${before.epoch + 1}`;
    await waitFor(
      () => m.rounds.at(-1)?.snapshot.primaryId === primary && m.rounds.at(-1)?.decision.kind === 'healthy',
      15_000,
      `the monitor to watch ${primary}`,
    );
    env.cloud.dynamoFaults.failAll(epochClaim);
    await env.cluster.crash(primary);
    // Every attempt of BeginFailover (1 + 3 retries) fails: the execution ends before claiming.
    await waitFor(() => execution(first)?.status === 'FAILED', 45_000, `${first} to fail`);
    expect((await env.store.getClusterState(env.name))?.epoch).toBe(before.epoch);
    env.cloud.dynamoFaults.clear();

    await waitFor(
      () => (execution(`${first}-a2`)?.status ?? 'RUNNING') !== 'RUNNING',
      45_000,
      `a new execution (${first}-a2) to fail over`,
    );
    // The first execution retried the 500s (StateStoreUnavailableError) before it gave up.
    expect(execution(first)?.states.find((s) => s.name === 'BeginFailover')?.attempts).toBe(4);
    const retried = execution(`${first}-a2`);
    expect(retried?.status).toBe('SUCCEEDED');
    expect(JSON.parse(retried?.input ?? '{}').executionName).toBe(`${first}-a2`);
    const state = await env.store.getClusterState(env.name);
    expect(state?.epoch).toBe(before.epoch + 1);
    const writable: string[] = [];
    for (const id of ['db1', 'db2', 'db3'].filter(
      (n) => n !== primary && !(before.needsRejoin ?? []).includes(n),
    )) {
      if ((await readOnly(id)) === 0) writable.push(id);
    }
    expect(writable).toEqual([state?.primaryId]);
    // Exactly once: one execution claimed the epoch.
    const claims = env.cloud.sfn
      .executions()
      .filter((e) => e.name.startsWith(first) && e.status === 'SUCCEEDED');
    expect(claims).toHaveLength(1);
  });
});
