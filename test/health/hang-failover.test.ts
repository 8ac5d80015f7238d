import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWriter, WRITES_TABLE_DDL, type Writer } from '../../infra/workload/writer.ts';
import { waitFor } from '../support/wait-for.ts';
import { type LiveEnv, type RunningMonitor, sleep, startLiveEnv } from './live-env.ts';

/**
 * A SIGSTOP hang of the primary (TCP accepts, nothing answers, the replicas' IO threads stay
 * 'Yes' until slave_net_timeout) is confirmed within a few seconds from stalled positions and
 * timeouts, and fails over; the thawed old primary never takes a write through the VIP.
 */
describe('hang detection', () => {
  let env: LiveEnv;
  let m: RunningMonitor;
  let writer: Writer | undefined;

  beforeAll(async () => {
    env = await startLiveEnv({ name: 'hang' });
    await env.cluster.query('db1', WRITES_TABLE_DDL);
    m = env.startMonitor(90_000);
    await waitFor(() => m.rounds.some((r) => r.analysis.code === 'NoProblem'), 8000, 'NoProblem');
  });

  afterAll(async () => {
    await writer?.stop();
    try {
      env?.cluster.resume('db1');
    } catch {
      // not running
    }
    await m?.stop();
    await env?.close();
  });

  it('confirms a SIGSTOP of the primary in under 4 s, fails over, and the thawed old primary takes no write through the VIP', async () => {
    const app = env.cluster.credentials.app;
    writer = startWriter({ host: env.cloud.vip.host, port: env.cloud.vip.port, ...app, paceMs: 5 });
    await waitFor(() => writer!.acked.length >= 50, 10_000, '50 writes');
    const db1 = env.cluster.node('db1').serverId;

    const hungAt = Date.now();
    env.cluster.hang('db1');
    await waitFor(() => m.rounds.some((r) => r.decision.kind === 'confirmed'), 8000, 'a confirmed round');
    const confirmed = m.rounds.find((r) => r.decision.kind === 'confirmed')!;
    expect(confirmed.analysis.code).toBe('DeadPrimary');
    expect(confirmed.analysis.evidence).toBe('ambiguous');
    expect(confirmed.snapshot.nodes.find((n) => n.nodeId === 'db1')?.error?.kind).toBe('timeout');
    const started = env.logs.find((e) => e.type === 'failover-started')!;
    const detectMs = Number(started.detectedAt) - hungAt;
    expect(detectMs).toBeLessThan(4000);
    // Never before the 2 s window of real silence.
    expect(detectMs).toBeGreaterThanOrEqual(2000);

    await waitFor(
      () => env.cloud.sfn.executions().some((e) => e.status !== 'RUNNING'),
      60_000,
      'the failover to end',
    );
    expect(env.cloud.sfn.executions().map((e) => e.status)).toEqual(['SUCCEEDED']);
    const newPrimary = (await env.store.getClusterState(env.name))!.primaryId;
    expect(['db2', 'db3']).toContain(newPrimary);
    const newServerId = env.cluster.node(newPrimary).serverId;
    await waitFor(
      () => writer!.firstAckOn(newServerId, hungAt) !== undefined,
      20_000,
      'a write on the new primary',
    );

    // Thaw the old primary. Its clients were cut when the VIP left it; new VIP connections
    // reach the new primary only.
    env.cluster.resume('db1');
    const resumedAt = Date.now();
    await sleep(3000);
    await writer.stop();
    expect(writer.acked.filter((a) => a.serverId === db1 && a.at >= resumedAt)).toEqual([]);
    const conn = await mysql.createConnection({
      host: env.cloud.vip.host,
      port: env.cloud.vip.port,
      ...app,
      connectTimeout: 2000,
    });
    try {
      const [rows] = await conn.query('SELECT @@server_id AS s');
      expect(Number((rows as Array<{ s: number }>)[0]?.s)).toBe(newServerId);
      await conn.query('INSERT INTO app.writes (id, at, payload) VALUES (?, ?, ?)', [
        99_000_001,
        Date.now(),
        'vip',
      ]);
    } finally {
      conn.destroy();
    }
    const onOld = await env.cluster.query<{ n: number }>(
      'db1',
      'SELECT COUNT(*) AS n FROM app.writes WHERE id = 99000001',
    );
    expect(Number(onOld[0]?.n)).toBe(0);
    expect(env.cloud.sfn.executions()).toHaveLength(1);
  });
});
