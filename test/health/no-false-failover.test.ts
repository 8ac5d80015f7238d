import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait-for.ts';
import { type LiveEnv, sleep, startLiveEnv } from './live-env.ts';

/**
 * Faults that must never fail over, on one cluster (each test restores it): a hang shorter than
 * the confirmation window, the prober cut off from the primary only, the prober cut off from
 * everything, a crashed replica. The prober reaches each node through its own forwarder
 * (infra/local-cloud/probe-path.ts); replication does not.
 */
describe('failure detection without false failovers', () => {
  let env: LiveEnv;

  beforeAll(async () => {
    env = await startLiveEnv({ name: 'nofalse', probePaths: true });
    const m = env.startMonitor(8000);
    await waitFor(() => m.rounds.some((r) => r.analysis.code === 'NoProblem'), 8000, 'NoProblem');
    await m.stop();
  });

  afterAll(async () => {
    await env?.close();
  });

  const noFailover = () => {
    expect(env.cloud.sfn.executions()).toEqual([]);
    expect(env.logs.filter((e) => e.type === 'failover-started')).toEqual([]);
  };

  it('does not fail over when the primary hangs for 1.5 s, shorter than the 2 s window', async () => {
    const m = env.startMonitor(12_000);
    await waitFor(() => m.rounds.length >= 2, 5000, 'two rounds');
    // Freeze just before the next round starts, so that round's probe meets the hang (the
    // worst case: the window starts as early as it can).
    const n = m.rounds.length;
    await waitFor(() => m.rounds.length > n, 3000, 'a round');
    await sleep(Math.max(0, m.rounds.at(-1)!.startedAt + 900 - Date.now()));
    env.cluster.hang('db1');
    const hungAt = Date.now();
    try {
      await sleep(1500);
    } finally {
      env.cluster.resume('db1');
    }
    await sleep(6000);
    await m.stop();
    noFailover();
    const during = m.rounds.filter((r) => r.endedAt > hungAt);
    // The hang was seen (the probe timed out), but it never turned into a confirmed decision.
    expect(during.some((r) => !r.snapshot.nodes.find((n) => n.nodeId === 'db1')?.reachable)).toBe(true);
    expect(m.rounds.filter((r) => r.decision.kind === 'confirmed')).toEqual([]);
    expect(m.rounds.at(-1)?.analysis.code).toBe('NoProblem');
  });

  it('reports UnreachablePrimary and does not fail over while only the prober is cut off from the primary', async () => {
    const m = env.startMonitor(14_000);
    await waitFor(() => m.rounds.length >= 2, 5000, 'two rounds');
    const [before] = await env.cluster.query<{ g: string }>('db2', 'SELECT @@gtid_slave_pos AS g');
    env.paths!.set('db1', 'drop');
    const cutAt = Date.now();
    try {
      // Traffic on the primary, replicated on its own path while the prober is blind.
      await env.cluster.query('db1', 'CREATE TABLE IF NOT EXISTS app.t_partition (id INT PRIMARY KEY)');
      await env.cluster.query('db1', 'INSERT INTO app.t_partition VALUES (1)');
      await sleep(7000);
    } finally {
      env.paths!.set('db1', 'pass');
    }
    await waitFor(() => m.rounds.at(-1)?.analysis.code === 'NoProblem', 6000, 'NoProblem after healing');
    await m.stop();
    noFailover();
    const during = m.rounds.filter((r) => r.startedAt > cutAt + 1500 && r.endedAt < cutAt + 7000);
    expect(during.length).toBeGreaterThanOrEqual(3);
    for (const r of during) {
      expect(r.analysis.code).toBe('UnreachablePrimary');
      expect(r.snapshot.nodes.find((n) => n.nodeId === 'db1')?.error?.kind).toBe('timeout');
    }
    expect(m.rounds.filter((r) => r.decision.kind !== 'healthy')).toEqual([]);
    const [after] = await env.cluster.query<{ g: string }>('db2', 'SELECT @@gtid_slave_pos AS g');
    expect(after?.g).not.toBe(before?.g);
    expect(env.notifications().some((n) => String(n.subject).startsWith('UnreachablePrimary'))).toBe(true);
  });

  it('reports AllUnreachable and does not fail over when the prober is cut off from every node', async () => {
    const m = env.startMonitor(12_000);
    await waitFor(() => m.rounds.length >= 2, 5000, 'two rounds');
    env.paths!.set('*', 'drop');
    const cutAt = Date.now();
    try {
      await sleep(6000);
    } finally {
      env.paths!.set('*', 'pass');
    }
    await waitFor(() => m.rounds.at(-1)?.analysis.code === 'NoProblem', 6000, 'NoProblem after healing');
    await m.stop();
    noFailover();
    const during = m.rounds.filter((r) => r.startedAt > cutAt && r.endedAt < cutAt + 6000);
    expect(during.length).toBeGreaterThanOrEqual(2);
    for (const r of during) expect(r.analysis.code).toBe('AllUnreachable');
    expect(m.rounds.filter((r) => r.decision.kind !== 'healthy')).toEqual([]);
  });

  it('reports a crashed replica as ReplicaDown with a notification, and does not fail over', async () => {
    const m = env.startMonitor(10_000);
    await waitFor(() => m.rounds.length >= 2, 5000, 'two rounds');
    const notesBefore = env.notifications().length;
    await env.cluster.crash('db3');
    try {
      await waitFor(() => m.rounds.at(-1)?.analysis.code === 'ReplicaDown', 4000, 'ReplicaDown');
      await sleep(3000);
      await m.stop();
      noFailover();
      const note = env
        .notifications()
        .slice(notesBefore)
        .find((n) => String(n.subject).startsWith('ReplicaDown'));
      expect(note?.severity).toBe('warning');
      expect(String(note?.message)).toContain('db3');
      const events = await env.store.listEvents(env.name, 20);
      expect(events.some((e) => e.type === 'AnalysisChanged' && e.message.includes('ReplicaDown'))).toBe(
        true,
      );
      expect(m.rounds.filter((r) => r.decision.kind !== 'healthy')).toEqual([]);
    } finally {
      await env.cluster.restart('db3');
      await env.cluster.waitForReplicaThreads('db3');
    }
  });
});
