/**
 * The crash failover end to end with each VIP provider, through the real SDKs (@aws-sdk/client-ec2,
 * @alicloud/pop-core) against the local cloud's emulators: one cluster per provider, reused for
 * (1) a kill -9 under a writer, (2) a second crash whose MoveVip meets a permanent provider error,
 * and (3) a hung provider call bounded by the move's deadline, then the operator's retry.
 */
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import {
  ALIYUN_CREDENTIALS,
  HAVIP_ID,
  LOCAL_CREDENTIALS,
  type LocalCloud,
  type LocalCloudProvider,
  startLocalCloud,
} from '../../infra/local-cloud/local-cloud.ts';
import { missingAcked, startWriter, WRITES_TABLE_DDL, type Writer } from '../../infra/workload/writer.ts';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import { getRuntime } from '../../lib/runtime.ts';
import { waitFor } from '../support/wait-for.ts';

interface ProviderCase {
  provider: LocalCloudProvider;
  /** The call that moves the VIP, where the faults are injected. */
  mutating: string;
  /** The test secret that must never show up. */
  secret: string;
  /** Whether the provider's API state has the VIP on `node`. */
  apiShowsOn(lc: LocalCloud, node: string): boolean;
}

const CASES: ProviderCase[] = [
  {
    provider: 'aws-secondary-ip',
    mutating: 'AssignPrivateIpAddresses',
    secret: LOCAL_CREDENTIALS.secretAccessKey,
    apiShowsOn: (lc, node) => lc.ec2.model.holderOf(lc.vipAddress) === lc.eniOf[node],
  },
  {
    provider: 'aws-route-table',
    mutating: 'ReplaceRoute',
    secret: LOCAL_CREDENTIALS.secretAccessKey,
    apiShowsOn: (lc, node) =>
      lc.routeTableIds.length === 2 &&
      lc.routeTableIds.every((t) => lc.ec2.model.routeTargetOf(t, `${lc.vipAddress}/32`) === lc.eniOf[node]),
  },
  {
    provider: 'aliyun-havip',
    mutating: 'AssociateHaVip',
    secret: ALIYUN_CREDENTIALS.accessKeySecret,
    apiShowsOn: (lc, node) => {
      const hv = lc.aliyun?.model.haVips.get(HAVIP_ID);
      return hv?.status === 'InUse' && hv.masterInstanceId === lc.instanceOf[node];
    },
  },
];

const CLUSTER = 'prov';

describe.each(CASES)('failover with the VIP moved through $provider', (pc) => {
  let cluster: MariaDbCluster | undefined;
  let cloud: LocalCloud | undefined;
  const writers: Writer[] = [];
  const logs: Array<Record<string, unknown>> = [];
  let primary = 'db1';
  let replica = '';

  beforeAll(async () => {
    cluster = await startCluster();
    await cluster.query('db1', WRITES_TABLE_DDL);
    cloud = await startLocalCloud({
      cluster,
      clusterName: CLUSTER,
      provider: pc.provider,
      // Short move deadlines keep the hung-call test quick.
      vipOverrides: { verifyTimeoutMs: 4000 },
      onLog: (e) => logs.push(e),
    });
    const store = new DynamoStateStore(cloud.tableName);
    await waitFor(
      async () => (await store.getClusterState(CLUSTER))?.analysis === 'NoProblem',
      20_000,
      'NoProblem',
    );
  });

  afterAll(async () => {
    await Promise.allSettled(writers.map((w) => w.stop()));
    await cloud?.stop();
    await cluster?.destroy();
  });

  const writerThroughVip = () => {
    const app = cluster!.credentials.app;
    const w = startWriter({
      host: cloud!.vip.host,
      port: cloud!.vip.port,
      user: app.user,
      password: app.password,
      paceMs: 2,
    });
    writers.push(w);
    return w;
  };

  it('moves the VIP to the new primary after kill -9 under a writer and loses no acknowledged write', async () => {
    const c = cluster!;
    const lc = cloud!;
    expect(lc.vipHolder()).toBe('db1');
    expect(pc.apiShowsOn(lc, 'db1')).toBe(true);
    const writer = writerThroughVip();
    await waitFor(() => writer.acked.length >= 100, 15_000, '100 acknowledged writes');

    const killedAt = Date.now();
    await c.crash('db1');
    await waitFor(() => lc.sfn.executions().some((e) => e.status !== 'RUNNING'), 60_000, 'failover end');
    const [execution] = lc.sfn.executions();
    expect(execution?.status).toBe('SUCCEEDED');
    primary = (JSON.parse(execution?.output ?? '{}') as { candidate: string }).candidate;
    expect(['db2', 'db3']).toContain(primary);
    replica = primary === 'db2' ? 'db3' : 'db2';

    // The provider's API state names the new primary (a HaVip settles once the dead master's
    // detach, done after the move, has finished), and the data path follows it.
    const p = primary;
    await waitFor(() => pc.apiShowsOn(lc, p), 5000, `the provider showing the VIP on ${p}`);
    expect(lc.vipHolder()).toBe(primary);
    const newServerId = c.node(primary).serverId;
    await waitFor(
      () => writer.firstAckOn(newServerId, killedAt) !== undefined,
      20_000,
      'a write on the new primary',
    );
    await waitFor(
      () => writer.acked.filter((a) => a.serverId === newServerId).length >= 50,
      10_000,
      '50 writes on the new primary',
    );
    await writer.stop();

    expect(await missingAcked(c, primary, writer.acked)).toEqual([]);
  });

  it('fails the failover cleanly and alerts when the provider refuses the move permanently', async () => {
    const c = cluster!;
    const lc = cloud!;
    const store = new DynamoStateStore(lc.tableName);
    await waitFor(
      async () => {
        const s = await store.getClusterState(CLUSTER);
        return s?.primaryId === primary && s.failoverInProgress === undefined;
      },
      20_000,
      `${primary} recorded as the primary`,
    );
    await c.waitForReplicaThreads(replica);
    // The operator acknowledges the first failover (lifts the anti-flap block); the failed one
    // below sets it again, so nothing else fails over while the next test runs.
    await store.setBlockedUntil(CLUSTER, null);
    lc.faults.set(pc.mutating, {
      permanentError: pc.provider.startsWith('aws')
        ? {
            code: 'UnauthorizedOperation',
            message: 'You are not authorized to perform this operation.',
            status: 403,
          }
        : {
            code: 'Forbidden.RAM',
            message:
              'User not authorized to operate on the specified resource, or this API does not support RAM.',
            status: 403,
          },
    });
    try {
      await c.crash(primary);
      await waitFor(
        () => lc.sfn.executions().filter((e) => e.status !== 'RUNNING').length >= 2,
        60_000,
        'the second failover to end',
      );
    } finally {
      lc.faults.clear(pc.mutating);
    }
    const failed = lc.sfn.executions()[1]!;
    expect(failed.status).toBe('FAILED');

    const state = await store.getClusterState(CLUSTER);
    expect(state?.failoverInProgress).toBeUndefined();
    expect(state?.lastFailover).toMatchObject({ status: 'failed', error: { name: 'VipMoveFailedError' } });
    const record = await store.getFailover(CLUSTER, state!.lastFailover!.epoch);
    expect(record?.status).toBe('failed');
    expect(record?.error?.name).toBe('VipMoveFailedError');
    // The VIP leaves a crashed old primary in FenceOldPrimary, before the promotion: a refused
    // move fails the failover there, and nobody is promoted.
    expect(record?.steps.find((s) => s.name === 'FenceOldPrimary')).toMatchObject({
      result: 'error',
      error: { name: 'VipMoveFailedError' },
    });
    expect(record?.steps.some((s) => s.name === 'PromoteCandidate' && s.result === 'ok')).toBe(false);
    expect(
      logs.some(
        (e) =>
          e.type === 'notification' &&
          e.severity === 'critical' &&
          String(e.subject).includes('FAILED: VipMoveFailedError'),
      ),
    ).toBe(true);
    // The VIP did not reach the replica that was promoted.
    expect(pc.apiShowsOn(lc, replica)).toBe(false);

    // Nothing the functions logged, stored or told Step Functions carries the secret or a signature.
    const client = new DynamoDBClient({});
    const scan = await client.send(new ScanCommand({ TableName: lc.tableName }));
    client.destroy();
    const everything = [
      JSON.stringify(logs),
      JSON.stringify(scan.Items),
      JSON.stringify(lc.sfn.executions()),
    ];
    for (const text of everything) {
      expect(text).not.toContain(pc.secret);
      expect(text).not.toContain(encodeURIComponent(pc.secret));
      expect(text).not.toContain('Signature=');
    }
  });

  it('bounds a hung provider call by the move deadline, then moves the VIP once the API answers', async () => {
    const lc = cloud!;
    const rt = getRuntime();
    const mover = await rt.vipMover(rt.cluster(CLUSTER));
    expect(mover).toBeDefined();
    lc.faults.set(pc.mutating, { hang: true });
    const started = Date.now();
    const err = await mover!
      .moveTo(replica, { fromNodeId: primary, oldHolderDead: true, deadline: started + 2000 })
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    const elapsed = Date.now() - started;
    lc.faults.clear(pc.mutating);
    expect(err?.name).toBe('ProviderTransientError');
    expect(elapsed).toBeLessThan(3500);
    expect(`${err?.message}`).not.toContain(pc.secret);

    // The operator's retry, with the API answering again: the promoted replica gets the VIP.
    const moved = await mover!.moveTo(replica, {
      fromNodeId: primary,
      oldHolderDead: true,
      deadline: Date.now() + 4000,
    });
    expect(moved).toMatchObject({ holder: replica, alreadyThere: false });
    const r = replica;
    await waitFor(() => pc.apiShowsOn(lc, r), 5000, `the provider showing the VIP on ${r}`);
    expect(lc.vipHolder()).toBe(replica);
    // The data path follows the provider: a new connection through the VIP lands on the replica.
    const app = cluster!.credentials.app;
    const conn = await mysql.createConnection({
      host: lc.vip.host,
      port: lc.vip.port,
      user: app.user,
      password: app.password,
      connectTimeout: 2000,
    });
    try {
      const [rows] = await conn.query('SELECT @@server_id AS id');
      expect(Number((rows as Array<{ id: number }>)[0]?.id)).toBe(cluster!.node(replica).serverId);
    } finally {
      await conn.end();
    }
  });
});
