import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import { waitFor } from '../support/wait-for.ts';
import { type LiveEnv, type RunningMonitor, sleep, startLiveEnv } from './live-env.ts';

/**
 * A crash of the primary is confirmed on unambiguous evidence and fails over; a second failure
 * inside the anti-flapping block period is refused and reported loudly. One cluster.
 */
describe('crash detection and the anti-flapping block', () => {
  let env: LiveEnv;
  let m: RunningMonitor;

  beforeAll(async () => {
    env = await startLiveEnv({ name: 'crashblock' });
    m = env.startMonitor(90_000);
    await waitFor(() => m.rounds.some((r) => r.analysis.code === 'NoProblem'), 8000, 'NoProblem');
  });

  afterAll(async () => {
    await m?.stop();
    await env?.close();
  });

  it('confirms a kill -9 of the primary as DeadPrimary on unambiguous evidence within a second and starts one failover', async () => {
    const killedAt = Date.now();
    await env.cluster.crash('db1');
    await waitFor(() => m.rounds.some((r) => r.decision.kind === 'confirmed'), 5000, 'a confirmed round');
    const confirmed = m.rounds.find((r) => r.decision.kind === 'confirmed')!;
    expect(confirmed.analysis.code).toBe('DeadPrimary');
    expect(confirmed.analysis.evidence).toBe('unambiguous');
    expect(confirmed.snapshot.nodes.find((n) => n.nodeId === 'db1')?.error?.kind).toBe('refused');
    expect(confirmed.started?.executionName).toBe('crashblock-failover-e1');
    expect(confirmed.endedAt - killedAt).toBeLessThan(1500);

    await waitFor(
      () => env.cloud.sfn.executions().some((e) => e.status !== 'RUNNING'),
      60_000,
      'the failover to end',
    );
    expect(env.cloud.sfn.executions().map((e) => e.status)).toEqual(['SUCCEEDED']);
    const started = env.logs.filter((e) => e.type === 'failover-started');
    expect(started).toHaveLength(1);
    const state = await env.store.getClusterState(env.name);
    expect(['db2', 'db3']).toContain(state?.primaryId);
    expect(state?.blockedUntil).toBeGreaterThan(Date.now() + 3_000_000);
  });

  it('refuses and reports a second failure inside the block period: FailoverBlocked event, critical notification, no second execution', async () => {
    const store = new DynamoStateStore(env.cloud.tableName);
    const newPrimary = (await store.getClusterState(env.name))!.primaryId;
    // The monitor follows the new primary before the next fault.
    await waitFor(
      () =>
        m.rounds.at(-1)?.snapshot.primaryId === newPrimary && m.rounds.at(-1)?.decision.kind === 'healthy',
      10_000,
      `the monitor to watch ${newPrimary}`,
    );
    const roleNote = env
      .notifications()
      .find((n) => String(n.message).includes(`primary is now ${newPrimary}`));
    expect(roleNote).toBeDefined();

    await env.cluster.crash(newPrimary);
    await waitFor(
      () => env.notifications().some((n) => n.subject === 'Failover BLOCKED'),
      8000,
      'the blocked-failover notification',
    );
    const note = env.notifications().find((n) => n.subject === 'Failover BLOCKED')!;
    expect(note.severity).toBe('critical');
    expect(String(note.message)).toContain('acknowledge');
    const events = await store.listEvents(env.name, 50);
    expect(events.filter((e) => e.type === 'FailoverBlocked')).toHaveLength(1);
    expect(events.find((e) => e.type === 'FailoverBlocked')?.message).toContain(newPrimary);

    await sleep(3000);
    expect(env.cloud.sfn.executions()).toHaveLength(1);
    expect(env.logs.filter((e) => e.type === 'failover-started')).toHaveLength(1);
    // Reported once per incident, not once per round.
    expect(env.notifications().filter((n) => n.subject === 'Failover BLOCKED')).toHaveLength(1);
    const state = await store.getClusterState(env.name);
    expect(state?.primaryId).toBe(newPrimary);
    expect(state?.epoch).toBe(1);
  });
});
