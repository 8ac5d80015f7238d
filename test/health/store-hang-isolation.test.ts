import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import type { DynamoRequestMatcher } from '../../infra/local-cloud/dynamo-fault-proxy.ts';
import { missingAcked, startWriter, WRITES_TABLE_DDL, type Writer } from '../../infra/workload/writer.ts';
import { createRuntime } from '../../lib/runtime.ts';
import { waitFor } from '../support/wait-for.ts';
import { type LiveEnv, type RunningMonitor, sleep, startLiveEnv } from './live-env.ts';

/** lease.ts: the heartbeat lives 15 s; renewals stop once a loop has not progressed for 10 s. */
const LEASE_TTL_MS = 15_000;
const STUCK_MS = 10_000;

/**
 * Issue 12: "One cluster's failure, hang or slow store never delays another's detection."
 * Two real clusters in one health-check invocation (one shard). Every DynamoDB request about
 * cluster A hangs (the fault proxy accepts it and never answers, as a dead keep-alive socket
 * would). A's loop must fail its requests (the store client's request timeout) and go on, so the
 * invocation keeps renewing its one heartbeat; past the stuck threshold and the lease TTL, a kill -9
 * of B's primary is still confirmed at once by the same invocation and failed over, no
 * acknowledged write lost.
 */
describe("a hung state store for one cluster never delays another's detection", () => {
  const a = 'iso-a';
  let env: LiveEnv;
  let clusterA: MariaDbCluster | undefined;
  let m: RunningMonitor | undefined;
  let writer: Writer | undefined;

  beforeAll(async () => {
    clusterA = await startCluster({ nodes: 2 });
    env = await startLiveEnv({ name: 'iso-b' });
  });

  afterAll(async () => {
    env?.cloud.dynamoFaults.clear();
    await writer?.stop();
    await m?.stop();
    await env?.close();
    await clusterA?.destroy();
  });

  it("confirms a kill -9 in B within 1 s and fails it over while A's store requests hang", async () => {
    const doc = JSON.parse(readFileSync(env.cloud.configFile, 'utf8')) as {
      clusters: Array<Record<string, unknown>>;
    };
    const ca = clusterA!;
    doc.clusters.push({
      name: a,
      primary: ca.nodes[0]!.id,
      nodes: ca.nodes.map((n) => ({ id: n.id, host: n.host, port: n.port })),
      credentials: {
        admin: { user: ca.credentials.admin.user, password: { file: ca.credentials.admin.passwordFile } },
        replication: {
          user: ca.credentials.replication.user,
          password: { file: ca.credentials.replication.passwordFile },
        },
      },
      vip: { provider: 'none' },
    });
    writeFileSync(env.cloud.configFile, JSON.stringify(doc));
    const rt = createRuntime(process.env, { log: (e) => env.logs.push(e) });
    expect(rt.config.clusters.map((c) => c.name)).toEqual([env.name, a]);

    const c = env.cluster;
    await c.query('db1', WRITES_TABLE_DDL);
    m = env.startMonitor(90_000, { rt });
    const mon = m;
    const last = (name: string) => mon.rounds.filter((r) => r.cluster === name).at(-1);
    await waitFor(
      () => last(env.name)?.analysis.code === 'NoProblem' && last(a)?.analysis.code === 'NoProblem',
      15_000,
      'both clusters NoProblem',
    );
    const app = c.credentials.app;
    writer = startWriter({
      host: env.cloud.vip.host,
      port: env.cloud.vip.port,
      user: app.user,
      password: app.password,
      paceMs: 2,
    });
    await waitFor(() => writer!.acked.length >= 100, 15_000, '100 acknowledged writes');

    // Every request whose key (or item, or query value) is cluster A's hangs from now on.
    const aRequests: DynamoRequestMatcher = (_op, body) => JSON.stringify(body).includes(`"CLUSTER#${a}"`);
    env.cloud.dynamoFaults.failAll(aRequests, 'hang');
    const hungAt = Date.now();
    // A's loop asks the store about A only now and then (its state re-read, health writes): from
    // its first hung request, past the stuck threshold, the last renewal's TTL and a margin.
    await waitFor(() => env.cloud.dynamoFaults.injected() > 0, 15_000, "A's first hung request");
    const firstHangAt = Date.now();
    await sleep(STUCK_MS + LEASE_TTL_MS + 1000);
    const killedAt = Date.now();
    await c.crash('db1');
    await waitFor(
      () => mon.rounds.some((r) => r.cluster === env.name && r.decision.kind === 'confirmed'),
      5000,
      "the same invocation to confirm B's crash",
    );
    const confirmed = mon.rounds.find((r) => r.cluster === env.name && r.decision.kind === 'confirmed')!;
    expect(confirmed.analysis.code).toBe('DeadPrimary');
    expect(confirmed.owner).toBe(mon.owner);
    console.log(
      `store of ${a} hung ${killedAt - hungAt} ms (first hung request ${killedAt - firstHangAt} ms); kill -9 of ${env.name}'s primary confirmed ${confirmed.endedAt - killedAt} ms after it`,
    );
    expect(confirmed.endedAt - killedAt).toBeLessThan(1000);

    // B kept its cadence all along: the invocation's heartbeat was renewed, its lease never lapsed.
    const bRounds = mon.rounds.filter(
      (r) => r.cluster === env.name && r.startedAt >= hungAt - 1000 && r.startedAt < killedAt,
    );
    const gaps = bRounds.slice(1).map((r, i) => r.startedAt - bRounds[i]!.startedAt);
    expect(bRounds.at(-1)!.startedAt).toBeGreaterThan(killedAt - 1600);
    expect(Math.max(...gaps)).toBeLessThan(1600);
    expect(env.logs.filter((e) => e.type === 'cluster-taken-over')).toEqual([]);

    await waitFor(
      () => env.cloud.sfn.executions().some((e) => e.status !== 'RUNNING'),
      60_000,
      "B's failover to end",
    );
    const executions = env.cloud.sfn.executions();
    expect(executions.map((e) => [e.name.startsWith(`${env.name}-failover-`), e.status])).toEqual([
      [true, 'SUCCEEDED'],
    ]);
    const output = JSON.parse(executions[0]!.output ?? '{}') as { candidate: string };
    const newPrimary = output.candidate;
    expect(['db2', 'db3']).toContain(newPrimary);
    const newServerId = c.node(newPrimary).serverId;
    await waitFor(
      () => writer!.acked.filter((w) => w.serverId === newServerId).length >= 20,
      20_000,
      'writes on the new primary',
    );
    await writer.stop();
    expect(await missingAcked(c, newPrimary, writer.acked)).toEqual([]);

    // A's loop failed its requests instead of hanging on them, and was restarted.
    expect(
      env.logs.some(
        (e) =>
          e.type === 'cluster-monitor-failed' &&
          e.cluster === a &&
          (e.error as { name?: string } | undefined)?.name === 'StateStoreUnavailableError',
      ),
    ).toBe(true);
    // A is probed again once its store answers.
    env.cloud.dynamoFaults.clear();
    const healedAt = Date.now();
    await waitFor(
      () => mon.rounds.some((r) => r.cluster === a && r.startedAt > healedAt),
      15_000,
      "A's loop to probe again",
    );
    const results = await mon.stop();
    expect(results.find((r) => r.cluster === env.name)?.outcome).toBe('probed');
  }, 180_000);
});
