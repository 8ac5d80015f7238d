import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALARM_METRICS, METRICS_NAMESPACE } from '../../lib/health/metrics.ts';
import type { StateStore } from '../../lib/ports.ts';
import { createRuntime } from '../../lib/runtime.ts';
import { waitFor } from '../support/wait-for.ts';
import { type LiveEnv, sleep, startLiveEnv } from './live-env.ts';

/**
 * What the health check owes besides failover decisions, on one healthy cluster: one prober
 * per cluster at a time with a gapless hand-over, few state writes, alerts for the six rules
 * (notifications and the EMF metrics the packaged alarms watch).
 */
describe('health check duties', () => {
  let env: LiveEnv;
  const metricsBefore = process.env.FAILOVER_METRICS;

  beforeAll(async () => {
    process.env.FAILOVER_METRICS = '1';
    env = await startLiveEnv({
      name: 'duties',
      probePaths: true,
      clusterOverrides: { detection: { stateHeartbeatMs: 5000 } },
    });
    const m = env.startMonitor(8000);
    await waitFor(() => m.rounds.some((r) => r.analysis.code === 'NoProblem'), 8000, 'NoProblem');
    await m.stop();
  });

  afterAll(async () => {
    await env?.close();
    if (metricsBefore === undefined) delete process.env.FAILOVER_METRICS;
    else process.env.FAILOVER_METRICS = metricsBefore;
  });

  it('never lets two overlapping invocations probe the same cluster at once, and hands over without a gap', async () => {
    env.paths!.resetStats();
    const a = env.startMonitor(5000, { owner: 'invocation-A' });
    await sleep(1000);
    const b = env.startMonitor(10_000, { owner: 'invocation-B' });
    await sleep(500);
    const c = env.startMonitor(2500, { owner: 'invocation-C' });
    const [ra, rb, rc] = await Promise.all([a.done, b.done, c.done]);
    expect(ra?.[0]?.outcome).toBe('probed');
    expect(rb?.[0]?.outcome).toBe('probed');
    expect(rc?.[0]).toMatchObject({ outcome: 'lease-held-elsewhere', rounds: 0 });
    expect(c.rounds).toEqual([]);
    expect(a.rounds.length).toBeGreaterThanOrEqual(3);
    expect(b.rounds.length).toBeGreaterThanOrEqual(3);
    const lastA = a.rounds.at(-1)!;
    const firstB = b.rounds[0]!;
    expect(firstB.startedAt).toBeGreaterThanOrEqual(lastA.endedAt);
    // B took over within about one probe interval of A's last round.
    expect(firstB.startedAt - lastA.startedAt).toBeLessThan(1700);
    // At the servers: never two probe connections to one node at the same time. Each invocation
    // keeps one connection per node for all its rounds (probe-connections.ts) and closes it
    // before releasing the lease, so the next holder's connection never overlaps it.
    for (const id of ['db1', 'db2', 'db3']) {
      const s = env.paths!.stats(id);
      expect(s.accepted).toBeGreaterThanOrEqual(2);
      expect(s.accepted).toBeLessThan(a.rounds.length + b.rounds.length);
      expect(s.maxOpen).toBe(1);
    }
  });

  it('writes the state on change plus a heartbeat, not on every probe round', async () => {
    const real = env.store as StateStore;
    const calls: Record<string, number> = {};
    const counting = new Proxy(real, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          calls[String(prop)] = (calls[String(prop)] ?? 0) + 1;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const logs: Array<Record<string, unknown>> = [];
    const rt = createRuntime(process.env, { store: counting, log: (e) => logs.push(e) });
    const eventsBefore = (await env.store.listEvents(env.name, 100)).length;
    const m = env.startMonitor(13_000, { rt });
    const result = await m.done;
    const rounds = result[0]!.rounds;
    expect(rounds).toBeGreaterThanOrEqual(10);
    expect(m.rounds.every((r) => r.analysis.code === 'NoProblem')).toBe(true);
    // 12 s of probing with a 5 s heartbeat: at most 3 state writes, not one per round.
    expect(calls.putHealth ?? 0).toBeGreaterThanOrEqual(2);
    expect(calls.putHealth ?? 0).toBeLessThanOrEqual(3);
    // No change, no event item.
    expect(calls.putEvent ?? 0).toBe(0);
    expect((await env.store.listEvents(env.name, 100)).length).toBe(eventsBefore);
    // The lease: taken once and released once; the invocation's heartbeat (not the lease) is
    // renewed every 5 s, one write for all its clusters.
    expect(calls.acquireLease ?? 0).toBe(1);
    expect(calls.releaseLease).toBe(1);
    expect(calls.renewHeartbeat ?? 0).toBeGreaterThanOrEqual(2);
    expect(calls.renewHeartbeat ?? 0).toBeLessThanOrEqual(4);
    const writes =
      (calls.putHealth ?? 0) +
      (calls.acquireLease ?? 0) +
      (calls.releaseLease ?? 0) +
      (calls.renewHeartbeat ?? 0) +
      (calls.initClusterState ?? 0);
    expect(writes).toBeLessThan(rounds);
  });

  it('notifies when a replica IO thread stops and when a replica lags more than 5 s, and emits the alarm metrics', async () => {
    const m = env.startMonitor(40_000);
    try {
      await waitFor(() => m.rounds.length >= 2, 5000, 'two rounds');
      await env.cluster.query('db2', 'STOP SLAVE IO_THREAD');
      await waitFor(
        () => env.notifications().some((n) => String(n.subject).includes('Alert: ReplicaIoStopped(db2)')),
        5000,
        'the IO-thread notification',
      );
      await env.cluster.query('db2', 'START SLAVE IO_THREAD');
      await waitFor(
        () =>
          env
            .notifications()
            .some((n) => ((n.data as { cleared?: string[] }).cleared ?? []).includes('ReplicaIoStopped:db2')),
        5000,
        'the IO-thread alert to clear',
      );

      // Lag: db2 applies everything 8 s late; the prober's heartbeat row shows it.
      await env.cluster.query('db2', 'STOP SLAVE');
      await env.cluster.query('db2', 'CHANGE MASTER TO MASTER_DELAY=8');
      await env.cluster.query('db2', 'START SLAVE');
      await waitFor(
        () => env.notifications().some((n) => String(n.subject).includes('Alert: ReplicaLagging(db2)')),
        15_000,
        'the lag notification',
      );
      const note = env.notifications().find((n) => String(n.subject).includes('Alert: ReplicaLagging(db2)'))!;
      expect(note.severity).toBe('warning');
      expect(String(note.message)).toMatch(/db2 is \d+(\.\d)? s behind \(alert above 5 s\)/);
    } finally {
      await env.cluster.query('db2', 'STOP SLAVE');
      await env.cluster.query('db2', 'CHANGE MASTER TO MASTER_DELAY=0');
      await env.cluster.query('db2', 'START SLAVE');
      await m.stop();
    }
    const emf = env.logs.filter((e) => e._aws !== undefined);
    const clusterLines = emf.filter((e) => e.Node === undefined);
    expect(clusterLines.some((e) => Number(e.ReplicasIoStopped) >= 1)).toBe(true);
    expect(clusterLines.some((e) => Number(e.ReplicasLagging) >= 1)).toBe(true);
    expect(clusterLines.some((e) => Number(e.StateChanges) >= 1)).toBe(true);

    // The packaged alarms watch exactly these metrics, without dimensions, as emitted.
    const template = JSON.parse(
      readFileSync(join(process.cwd(), '.serverless/cloudformation-template-update-stack.json'), 'utf8'),
    ) as { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
    const alarms = Object.values(template.Resources).filter(
      (r) => r.Type === 'AWS::CloudWatch::Alarm' && r.Properties.Namespace === METRICS_NAMESPACE,
    );
    expect(alarms.map((a) => a.Properties.MetricName).sort()).toEqual([...ALARM_METRICS].sort());
    for (const a of alarms) expect(a.Properties.Dimensions).toBeUndefined();
    const first = clusterLines[0] as { _aws: { CloudWatchMetrics: Array<Record<string, unknown>> } };
    const dimensionless = first._aws.CloudWatchMetrics.find((d) => JSON.stringify(d.Dimensions) === '[[]]');
    expect(dimensionless).toBeDefined();
    const names = (dimensionless as { Metrics: Array<{ Name: string }> }).Metrics.map((x) => x.Name);
    expect(names.sort()).toEqual([...ALARM_METRICS].sort());
    for (const e of clusterLines) for (const name of ALARM_METRICS) expect(typeof e[name]).toBe('number');
  });
});
