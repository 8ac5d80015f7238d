/**
 * Network-namespace mode (root only): every node is a host in its own namespace with its own
 * address, the VIP (the lab's .50) is a real address moved by the Alibaba HaVip adapter's Cloud
 * Assistant script (ip addr add + arping -U, really run in the new holder's namespace), and the
 * clients and the prober sit in the root namespace across a bridge. One cluster for both tests:
 * (1) kill -9 of the primary under a writer connected to the VIP address; (2) a partition (link
 * down) of the new primary, confirmed by the prober and the replica, then healed.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import { type LocalCloud, startLocalCloud } from '../../infra/local-cloud/local-cloud.ts';
import { type NetnsLab, netnsLabUnavailableReason, startNetnsLab } from '../../infra/netns/lab.ts';
import { missingAcked, startWriter, WRITES_TABLE_DDL, type Writer } from '../../infra/workload/writer.ts';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import { waitFor } from '../support/wait-for.ts';

const CLUSTER = 'netns';
const CONFIRM_WINDOW_MS = 2000;

describe('failover in network-namespace mode with the aliyun-havip provider', () => {
  let lab: NetnsLab | undefined;
  let cluster: MariaDbCluster | undefined;
  let cloud: LocalCloud | undefined;
  const writers: Writer[] = [];
  const connections: mysql.Connection[] = [];
  const logs: Array<Record<string, unknown>> = [];
  let primary = 'db1';
  let replica = '';

  beforeAll(async () => {
    // CI runs these as root; anywhere else this must fail loudly rather than pass by skipping.
    const reason = netnsLabUnavailableReason();
    if (reason !== '')
      throw new Error(`${reason}: run this test file as root with iproute2 and iputils-arping`);
    lab = await startNetnsLab({ nodes: ['db1', 'db2', 'db3'] });
    cluster = await startCluster({ netns: lab });
    await cluster.query('db1', WRITES_TABLE_DDL);
    cloud = await startLocalCloud({
      cluster,
      clusterName: CLUSTER,
      provider: 'aliyun-havip',
      network: 'netns',
      clusterOverrides: { detection: { confirmWindowMs: CONFIRM_WINDOW_MS } },
      onLog: (e) => logs.push(e),
    });
    const store = new DynamoStateStore(cloud.tableName);
    await waitFor(
      async () => (await store.getClusterState(CLUSTER))?.analysis === 'NoProblem',
      20_000,
      'NoProblem',
    );
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled(writers.map((w) => w.stop()));
    await Promise.allSettled(connections.map((c) => c.end()));
    for (const c of connections) c.destroy();
    await cloud?.stop();
    await cluster?.destroy();
    await lab?.close();
  });

  const connectToVip = async () => {
    const app = cluster!.credentials.app;
    const conn = await mysql.createConnection({
      host: cloud!.vip.host,
      port: cloud!.vip.port,
      user: app.user,
      password: app.password,
      connectTimeout: 1000,
    });
    conn.on('error', () => {});
    connections.push(conn);
    return conn;
  };
  const serverIdOf = async (conn: mysql.Connection) => {
    const [rows] = await conn.query({ sql: 'SELECT @@server_id AS id', timeout: 1000 });
    return Number((rows as Array<{ id: number }>)[0]?.id);
  };
  const holdersOfVip = async () => {
    const out: string[] = [];
    for (const node of lab!.nodes)
      if ((await lab!.addresses(node)).includes(cloud!.vipAddress)) out.push(node);
    return out;
  };

  it('moves the real VIP address to the new primary after kill -9 and loses no acknowledged write', async () => {
    const c = cluster!;
    const lc = cloud!;
    expect(lc.vipAddress).toBe(lab!.addressAt(50));
    expect(lc.vip.host).toBe(lc.vipAddress);
    expect(await holdersOfVip()).toEqual(['db1']);
    const app = c.credentials.app;
    const writer = startWriter({
      host: lc.vip.host,
      port: lc.vip.port,
      user: app.user,
      password: app.password,
      paceMs: 2,
    });
    writers.push(writer);
    await waitFor(
      () => writer.acked.length >= 100,
      15_000,
      '100 acknowledged writes through the VIP address',
    );
    expect(new Set(writer.acked.map((a) => a.serverId))).toEqual(new Set([c.node('db1').serverId]));
    const held = await connectToVip();
    expect(await serverIdOf(held)).toBe(c.node('db1').serverId);

    const killedAt = Date.now();
    await c.crash('db1');
    await waitFor(() => lc.sfn.executions().some((e) => e.status !== 'RUNNING'), 60_000, 'failover end');
    const [execution] = lc.sfn.executions();
    expect(execution?.status).toBe('SUCCEEDED');
    primary = (JSON.parse(execution?.output ?? '{}') as { candidate: string }).candidate;
    expect(['db2', 'db3']).toContain(primary);
    replica = primary === 'db2' ? 'db3' : 'db2';

    // The guest step really ran in the new primary's namespace: only it holds the address.
    expect(await holdersOfVip()).toEqual([primary]);
    expect(lc.vipHolder()).toBe(primary);
    const newServerId = c.node(primary).serverId;
    await waitFor(
      () => writer.firstAckOn(newServerId, killedAt) !== undefined,
      20_000,
      'a write on the new primary',
    );
    const switchMs = writer.firstAckOn(newServerId, killedAt)!.at - killedAt;
    console.log(
      `netns: kill -9 -> first write acknowledged by ${primary} through the VIP address: ${switchMs} ms`,
    );
    await waitFor(
      () => writer.acked.filter((a) => a.serverId === newServerId).length >= 50,
      10_000,
      '50 writes on the new primary',
    );
    await writer.stop();

    // The connection to the old primary is gone; a new one reaches the new primary.
    await expect(serverIdOf(held)).rejects.toThrow();
    expect(await serverIdOf(await connectToVip())).toBe(newServerId);

    expect(await missingAcked(c, primary, writer.acked)).toEqual([]);
  }, 120_000);

  it('fails over after a partition of the primary and the healed old primary no longer holds the VIP', async () => {
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
    await store.setBlockedUntil(CLUSTER, null); // the operator acknowledges the first failover
    const held = await connectToVip();
    expect(await serverIdOf(held)).toBe(c.node(primary).serverId);

    const partitionedAt = Date.now();
    await lab!.partition(primary);
    try {
      // The replica loses its source across the bridge (not a signal the harness fakes).
      await waitFor(
        async () => {
          const [s] = await c.query<Record<string, unknown>>(replica, 'SHOW SLAVE STATUS');
          return s?.Slave_IO_Running !== 'Yes';
        },
        30_000,
        `${replica}'s IO thread to lose ${primary}`,
      );
      const replicaLostMs = Date.now() - partitionedAt;
      await waitFor(
        () => lc.sfn.executions().filter((e) => e.status !== 'RUNNING').length >= 2,
        60_000,
        'the partition failover to end',
      );
      const execution = lc.sfn.executions()[1]!;
      expect(execution.status).toBe('SUCCEEDED');
      expect((JSON.parse(execution.output ?? '{}') as { candidate: string }).candidate).toBe(replica);
      // Timeouts are ambiguous evidence: nothing starts before the confirmation window.
      const startedAfterMs = execution.startDate.getTime() - partitionedAt;
      expect(startedAfterMs).toBeGreaterThanOrEqual(CONFIRM_WINDOW_MS);
      await waitFor(async () => (await holdersOfVip()).includes(replica), 10_000, `the VIP on ${replica}`);
      const movedMs = Date.now() - partitionedAt;
      console.log(
        `netns partition: replica lost the source after ${replicaLostMs} ms, failover started after ` +
          `${startedAfterMs} ms, VIP address on ${replica} after <= ${movedMs} ms`,
      );
      // The client's connection to the partitioned primary does not come back through the VIP.
      await expect(serverIdOf(held)).rejects.toThrow();
      expect(await serverIdOf(await connectToVip())).toBe(c.node(replica).serverId);
    } finally {
      await lab!.heal(primary);
    }

    // Healed: the old primary's namespace no longer has the address, so it cannot answer ARP for it.
    expect(await holdersOfVip()).toEqual([replica]);
    const old = primary;
    const state = await store.getClusterState(CLUSTER);
    expect(state?.primaryId).toBe(replica);
    expect(state?.needsRejoin).toContain(old);
    // Clients in the root namespace still reach the new primary after the heal (no ARP flip-flop).
    for (let i = 0; i < 5; i++) expect(await serverIdOf(await connectToVip())).toBe(c.node(replica).serverId);
  }, 120_000);
});
