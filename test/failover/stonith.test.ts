/**
 * STONITH on a real 3-node MariaDB cluster and the local cloud (packaged state machine, dynalite,
 * EC2 emulator whose StopInstances really kills the node's mariadbd). One cluster, in sequence:
 *   1. stonith on, db1 hung, StopInstances refused (permanent): the failover fails cleanly, nobody
 *      is promoted, nothing is writable through the VIP.
 *   2. stonith on, the same hung db1: its instance is stopped through the API before db2 is
 *      promoted; no acknowledged write lost.
 *   3. stonith off (the default), db2 hung: db3 is promoted without any StopInstances call.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import { type LocalCloud, startLocalCloud } from '../../infra/local-cloud/local-cloud.ts';
import { missingAcked, startWriter, WRITES_TABLE_DDL, type Writer } from '../../infra/workload/writer.ts';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import type { FailoverRequest } from '../../lib/failover/steps.ts';
import { createRuntime, resetRuntime } from '../../lib/runtime.ts';
import { seedClusterState } from '../support/seed-state.ts';
import { startExecution } from '../support/start-execution.ts';
import { waitFor } from '../support/wait-for.ts';

const NAME = 'st';

/** The parts of the cluster's config file the test changes. */
interface ClusterDoc {
  nodes: Array<{ id: string; instanceId?: string }>;
  failover: { stonith?: { enabled: boolean; waitStoppedMs?: number } };
}

describe('STONITH through the cloud API', () => {
  let cluster: MariaDbCluster | undefined;
  let cloud: LocalCloud | undefined;
  let store: DynamoStateStore;
  const writers: Writer[] = [];
  const logs: Array<Record<string, unknown>> = [];
  let writer: Writer | undefined;
  let hungPid: number | undefined;

  const c = () => cluster!;
  const lc = () => cloud!;
  const instanceOf = (id: string) => lc().ec2.model.networkInterface(lc().eniOf[id]!)!.instanceId!;

  function setConfig(change: (cfg: ClusterDoc) => void): void {
    const file = lc().configFile;
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { clusters: ClusterDoc[] };
    change(doc.clusters[0]!);
    writeFileSync(file, JSON.stringify(doc, null, 2));
    resetRuntime(createRuntime(process.env, { log: (e) => logs.push(e) }));
  }

  async function runFailover(name: string, failedPrimary: string, expectedEpoch: number) {
    const input: FailoverRequest = {
      cluster: NAME,
      kind: 'failover',
      failedPrimary,
      expectedEpoch,
      incidentId: `incident-${name}`,
      executionName: name,
    };
    await startExecution(lc().stateMachineArn, name, input);
    await waitFor(
      () =>
        lc()
          .sfn.executions()
          .some((e) => e.name === name && e.status !== 'RUNNING'),
      60_000,
      `execution ${name} to end`,
    );
    return lc()
      .sfn.executions()
      .find((e) => e.name === name)!;
  }

  async function readOnly(id: string): Promise<number> {
    const [r] = await c().query<{ ro: number }>(id, 'SELECT @@read_only AS ro');
    return Number(r?.ro);
  }

  /** Whether a write through the VIP is accepted right now. */
  async function vipWritable(): Promise<boolean> {
    const app = c().credentials.app;
    const conn = await mysql.createConnection({
      host: lc().vip.host,
      port: lc().vip.port,
      user: app.user,
      password: app.password,
      connectTimeout: 2000,
    });
    try {
      await conn.query({ sql: 'INSERT INTO app.probe (at) VALUES (1)', timeout: 2000 });
      return true;
    } catch {
      return false;
    } finally {
      conn.destroy();
    }
  }

  beforeAll(async () => {
    cluster = await startCluster({ nodes: 3 });
    await cluster.query('db1', WRITES_TABLE_DDL);
    await cluster.query('db1', 'CREATE TABLE app.probe (id INT AUTO_INCREMENT PRIMARY KEY, at INT)');
    cloud = await startLocalCloud({
      cluster,
      clusterName: NAME,
      schedule: false,
      clusterOverrides: { failover: { blockPeriodSeconds: 0 } },
      onLog: (e) => logs.push(e),
    });
    store = new DynamoStateStore(cloud.tableName);
    setConfig((cfg) => {
      for (const n of cfg.nodes) n.instanceId = instanceOf(n.id);
      cfg.failover.stonith = { enabled: true, waitStoppedMs: 10_000 };
    });
    await seedClusterState(store, NAME, 'db1');
  }, 120_000);

  afterAll(async () => {
    for (const w of writers) await w.stop();
    await cloud?.stop();
    await cluster?.destroy();
  });

  it('fails the failover cleanly, promoting nobody, when StopInstances is refused', async () => {
    const app = c().credentials.app;
    writer = startWriter({
      host: lc().vip.host,
      port: lc().vip.port,
      user: app.user,
      password: app.password,
      paceMs: 2,
    });
    writers.push(writer);
    await waitFor(() => writer!.acked.length >= 200, 15_000, '200 acknowledged writes');
    hungPid = c().node('db1').pid;
    c().hang('db1');
    lc().ec2.faults.set('StopInstances', {
      permanentError: {
        code: 'UnauthorizedOperation',
        message: 'You are not authorized to perform this operation.',
        status: 403,
      },
    });

    const exec = await runFailover('st-refused', 'db1', 0);
    expect(exec.status).toBe('FAILED');
    expect(exec.states.map((s) => s.name)).toEqual([
      'BeginFailover',
      'ElectCandidate',
      'FenceOldPrimary',
      'FailoverFailed',
      'Failed',
    ]);
    const record = await store.getFailover(NAME, 1);
    expect(record?.status).toBe('failed');
    expect(record?.error?.name).toBe('StonithFailedError');
    expect(record?.error?.message).toContain('UnauthorizedOperation');
    const fence = record?.steps.find((s) => s.name === 'FenceOldPrimary');
    expect(fence?.result).toBe('error');
    // Nobody promoted, nothing writable through the VIP (it left the hung db1 for the read-only db2).
    expect(await readOnly('db2')).toBe(1);
    expect(await readOnly('db3')).toBe(1);
    expect(lc().vipHolder()).toBe('db2');
    expect(await vipWritable()).toBe(false);
    const state = await store.getClusterState(NAME);
    expect(state?.primaryId).toBe('db1');
    expect(state?.failoverInProgress).toBeUndefined();
    expect(lc().ec2.model.instance(instanceOf('db1'))?.state).toBe('running');
  }, 90_000);

  it('stops the hung primary through the EC2 API before promoting, losing no acknowledged write', async () => {
    lc().ec2.faults.clear('StopInstances');
    lc().ec2.faults.resetCalls();
    const exec = await runFailover('st-stonith', 'db1', 1);
    expect(exec.status).toBe('SUCCEEDED');
    const record = await store.getFailover(NAME, 2);
    expect(record?.status).toBe('succeeded');
    const fence = record?.steps.find((s) => s.name === 'FenceOldPrimary');
    const promote = record?.steps.find((s) => s.name === 'PromoteCandidate');
    expect(fence?.detail?.stonith).toMatchObject({ instanceId: instanceOf('db1'), state: 'stopped' });
    expect((fence?.detail?.stonith as { ms?: number } | undefined)?.ms).toBeGreaterThan(0);
    // Before promotion: the stop was confirmed when the fence step ended.
    expect(fence!.endedAt).toBeLessThanOrEqual(promote!.startedAt);
    expect(lc().ec2.faults.calls('StopInstances')).toBe(1);
    expect(lc().ec2.model.instance(instanceOf('db1'))?.state).toBe('stopped');
    expect(c().node('db1').pid).toBeUndefined();
    expect(() => process.kill(hungPid!, 0)).toThrow();

    // Writes resume through the VIP on db2; every acknowledged id is there.
    const db2 = c().node('db2').serverId;
    await waitFor(
      () => writer!.acked.filter((a) => a.serverId === db2).length >= 50,
      20_000,
      '50 writes on db2',
    );
    await writer!.stop();
    expect(await missingAcked(c(), 'db2', writer!.acked)).toEqual([]);
    expect(await readOnly('db2')).toBe(0);
    expect((await store.getClusterState(NAME))?.primaryId).toBe('db2');
  }, 90_000);

  it('makes no StopInstances call when STONITH is disabled (the default)', async () => {
    setConfig((cfg) => {
      delete cfg.failover.stonith;
    });
    await waitFor(
      async () => {
        const [s] = await c().query<Record<string, unknown>>('db3', 'SHOW SLAVE STATUS');
        return Number(s?.Master_Port) === c().node('db2').port && s?.Slave_IO_Running === 'Yes';
      },
      10_000,
      'db3 replicating from db2',
    );
    lc().ec2.faults.resetCalls();
    c().hang('db2');
    const exec = await runFailover('st-disabled', 'db2', 2);
    expect(exec.status).toBe('SUCCEEDED');
    const record = await store.getFailover(NAME, 3);
    const fence = record?.steps.find((s) => s.name === 'FenceOldPrimary');
    expect(fence?.detail?.stonith).toBeUndefined();
    expect(fence?.detail?.vipTakenFrom).toBe('db2');
    expect(lc().ec2.faults.calls('StopInstances')).toBe(0);
    expect(lc().ec2.faults.calls('DescribeInstances')).toBe(0);
    expect(lc().ec2.model.instance(instanceOf('db2'))?.state).toBe('running');
    expect(await readOnly('db3')).toBe(0);
    expect(lc().vipHolder()).toBe('db3');
    c().resume('db2');
  }, 90_000);
});
