import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCluster } from '../../lib/operator/check.ts';
import { getRuntime } from '../../lib/runtime.ts';
import { type LiveEnv, sleep, startLiveEnv } from '../health/live-env.ts';
import { waitFor } from '../support/wait-for.ts';

/**
 * Issue 11, T8: a quiet primary that only the prober lost. The replicas run MariaDB's default
 * heartbeat period (slave_net_timeout/2 = 30 s at the default slave_net_timeout of 60 s) and the
 * application writes nothing: our own heartbeat writes are the only events, and cutting the
 * prober off stops them. The replicas then see nothing for up to 30 s from a perfectly healthy
 * primary. Measured on the code before the fix: a failover of the healthy primary in 3 of 3 trials.
 */
describe('T8: a quiet primary that only the prober lost', () => {
  let env: LiveEnv;
  const replicas = ['db2', 'db3'];

  const setHeartbeat = async (periodSeconds: number, slaveNetTimeout: number) => {
    for (const id of replicas) {
      await env.cluster.query(id, 'STOP SLAVE');
      await env.cluster.query(id, `SET GLOBAL slave_net_timeout = ${slaveNetTimeout}`);
      await env.cluster.query(id, `CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD = ${periodSeconds}`);
      await env.cluster.query(id, 'START SLAVE');
    }
    for (const id of replicas) await env.cluster.waitForReplicaThreads(id);
  };

  beforeAll(async () => {
    env = await startLiveEnv({ name: 'quiet', probePaths: true });
    const m = env.startMonitor(8000);
    await waitFor(() => m.rounds.some((r) => r.analysis.code === 'NoProblem'), 8000, 'NoProblem');
    await m.stop();
    await setHeartbeat(30, 60);
  });

  afterAll(async () => {
    await env?.close();
  });

  it('check reports the 30 s heartbeat period as an error, with the fix', async () => {
    const rt = getRuntime();
    const result = await checkCluster(rt, rt.cluster(env.name));
    const findings = result.findings.filter((f) => f.check === 'heartbeat-period');
    expect(findings.map((f) => f.nodeId).sort()).toEqual(replicas);
    for (const f of findings) {
      expect(f.severity).toBe('error');
      expect(f.message).toContain('heartbeat period 30 s');
      expect(f.message).toContain('slave_net_timeout 60 s');
      expect(f.fix).toContain('MASTER_HEARTBEAT_PERIOD=1');
      expect(f.fix).toContain('slave_net_timeout=3');
    }
    expect(result.ok).toBe(false);
    expect(result.report).toContain('heartbeat-period');
  });

  it('does not fail over while the prober alone is cut off from the quiet primary for 8 s', async () => {
    const m = env.startMonitor(20_000);
    await waitFor(() => m.rounds.length >= 3, 6000, 'three rounds');
    const [io] = await env.cluster.query<Record<string, unknown>>('db2', 'SHOW ALL SLAVES STATUS');
    expect(Number(io?.Slave_heartbeat_period)).toBe(30);
    env.paths!.set('db1', 'drop');
    const cutAt = Date.now();
    try {
      await sleep(8000);
    } finally {
      env.paths!.set('db1', 'pass');
    }
    // No failover: nothing started, nothing confirmed, the primary is still db1 and writable.
    expect(env.logs.filter((e) => e.type === 'failover-started')).toEqual([]);
    expect(env.cloud.sfn.executions()).toEqual([]);
    await waitFor(() => m.rounds.at(-1)?.analysis.code === 'NoProblem', 8000, 'NoProblem after healing');
    await m.stop();
    expect(m.rounds.filter((r) => r.decision.kind === 'confirmed')).toEqual([]);
    const during = m.rounds.filter((r) => r.startedAt > cutAt + 1500 && r.endedAt < cutAt + 8000);
    expect(during.length).toBeGreaterThanOrEqual(3);
    for (const r of during) {
      expect(r.snapshot.nodes.find((n) => n.nodeId === 'db1')?.reachable).toBe(false);
      expect(r.analysis.code).toBe('UnreachablePrimary');
      expect(r.analysis.description).toContain('heartbeat period 30 s');
    }
    const [ro] = await env.cluster.query<{ ro: number }>('db1', 'SELECT @@read_only AS ro');
    expect(Number(ro?.ro)).toBe(0);
    const state = await env.store.getClusterState(env.name);
    expect(state?.primaryId).toBe('db1');
    expect(state?.epoch).toBe(0);
    // The probe reads the period the analysis weighed.
    expect(
      m.rounds.at(-1)?.snapshot.nodes.find((n) => n.nodeId === 'db2')?.replication?.heartbeatPeriodSeconds,
    ).toBe(30);
  });
});
