import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import { type LocalCloud, startLocalCloud } from '../../infra/local-cloud/local-cloud.ts';
import { missingAcked, startWriter, WRITES_TABLE_DDL, type Writer } from '../../infra/workload/writer.ts';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import { waitFor } from '../support/wait-for.ts';

describe('crash failover, end to end on the local cloud', () => {
  let cluster: MariaDbCluster | undefined;
  let cloud: LocalCloud | undefined;
  let writer: Writer | undefined;
  const logs: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    cluster = await startCluster();
    await cluster.query('db1', WRITES_TABLE_DDL);
    cloud = await startLocalCloud({ cluster, clusterName: 'e2e', onLog: (e) => logs.push(e) });
    const store = new DynamoStateStore(cloud.tableName);
    await waitFor(
      async () => (await store.getClusterState('e2e'))?.analysis === 'NoProblem',
      20_000,
      'NoProblem',
    );
  });

  afterAll(async () => {
    await writer?.stop();
    await cloud?.stop();
    await cluster?.destroy();
  });

  it('promotes a replica after kill -9 of the primary, loses no acknowledged write and moves the VIP', async () => {
    const c = cluster!;
    const lc = cloud!;
    const app = c.credentials.app;
    expect(lc.vipHolder()).toBe('db1');
    writer = startWriter({
      host: lc.vip.host,
      port: lc.vip.port,
      user: app.user,
      password: app.password,
      paceMs: 2,
    });
    await waitFor(() => writer!.acked.length >= 100, 15_000, '100 acknowledged writes');
    expect(new Set(writer.acked.map((a) => a.serverId))).toEqual(new Set([c.node('db1').serverId]));

    const killedAt = Date.now();
    await c.crash('db1');

    // The scheduled health check confirms it and starts the packaged state machine.
    await waitFor(
      () => lc.sfn.executions().some((e) => e.status !== 'RUNNING'),
      60_000,
      'failover execution to end',
    );
    const executions = lc.sfn.executions();
    expect(executions).toHaveLength(1);
    const execution = executions[0]!;
    expect(execution.status).toBe('SUCCEEDED');
    expect(execution.states.map((s) => s.name)).toEqual([
      'BeginFailover',
      'ElectCandidate',
      'FenceOldPrimary',
      'CatchUpCandidate',
      'PromoteCandidate',
      'RepointReplicas',
      'MoveVip',
      'CompleteFailover',
      'Done',
    ]);
    const output = JSON.parse(execution.output ?? '{}') as { candidate: string; epoch: number };
    const newPrimary = output.candidate;
    expect(['db2', 'db3']).toContain(newPrimary);
    const other = newPrimary === 'db2' ? 'db3' : 'db2';

    // The writer resumes through the VIP, on the new primary.
    const newServerId = c.node(newPrimary).serverId;
    await waitFor(
      () => writer!.firstAckOn(newServerId, killedAt) !== undefined,
      20_000,
      'a write on the new primary',
    );
    await waitFor(
      () => writer!.acked.filter((a) => a.serverId === newServerId).length >= 50,
      10_000,
      '50 writes on the new primary',
    );
    await writer.stop();

    // Every acknowledged id is on the new primary.
    expect(await missingAcked(c, newPrimary, writer.acked)).toEqual([]);

    // The other replica replicates from the new primary with both threads running.
    await waitFor(
      async () => {
        const [s] = await c.query<Record<string, unknown>>(other, 'SHOW SLAVE STATUS');
        return (
          s?.Master_Port === c.node(newPrimary).port &&
          s?.Slave_IO_Running === 'Yes' &&
          s?.Slave_SQL_Running === 'Yes'
        );
      },
      10_000,
      `${other} replicating from ${newPrimary}`,
    );
    const [ro] = await c.query<{ ro: number }>(newPrimary, 'SELECT @@read_only AS ro');
    expect(Number(ro?.ro)).toBe(0);

    // The VIP is on the new primary's ENI in the emulated EC2.
    expect(lc.vipHolder()).toBe(newPrimary);
    expect(lc.ec2.model.holderOf('10.0.1.50')).toBe(lc.eniOf[newPrimary]);

    // The state table holds the failover record with step timings, and the new primary.
    const store = new DynamoStateStore(lc.tableName);
    const state = await store.getClusterState('e2e');
    expect(state?.primaryId).toBe(newPrimary);
    expect(state?.failoverInProgress).toBeUndefined();
    expect(state?.needsRejoin).toContain('db1');
    const record = await store.getFailover('e2e', output.epoch);
    expect(record?.status).toBe('succeeded');
    const stepNames = record?.steps.map((s) => s.name);
    expect(stepNames).toEqual(
      expect.arrayContaining(['ElectCandidate', 'PromoteCandidate', 'MoveVip', 'CompleteFailover']),
    );
    for (const s of record?.steps ?? []) {
      expect(s.endedAt).toBeGreaterThanOrEqual(s.startedAt);
      expect(s.result).not.toBe('error');
    }
    // No secret in any log line.
    const text = JSON.stringify(logs);
    for (const cred of Object.values(c.credentials)) expect(text).not.toContain(cred.password);
  });
});
