import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FailoverRequest } from '../../lib/failover/context.ts';
import { planFailover } from '../../lib/operator/plan.ts';
import { getRuntime } from '../../lib/runtime.ts';
import { type LiveEnv, sleep, startLiveEnv } from '../health/live-env.ts';
import { startExecution } from '../support/start-execution.ts';
import { waitFor } from '../support/wait-for.ts';

/**
 * Issue 11, T4: survivors far behind. A 2-node cluster (one primary, one replica) whose replica
 * stopped receiving (IO thread stopped) long before the primary crashes, with
 * failover.maxLagSeconds 2 s. Seconds_Behind_Master is NULL with the IO thread stopped, and there
 * is no other survivor to be relatively behind: before the fix the stale replica was promoted.
 * It must be vetoed against the primary's last known position and time (the state table), with
 * the reason, changing nothing; an operator can force it (ignoreLag).
 */
describe('T4: survivors far behind', () => {
  let env: LiveEnv;
  const MAX_LAG = 2;

  beforeAll(async () => {
    env = await startLiveEnv({
      name: 'lagging',
      // Async: with semi-sync the primary would stall its commits for the semi-sync timeout
      // once the only replica stops acknowledging, which is not what this timeline is about.
      harness: { nodes: 2, semiSync: false },
      clusterOverrides: { failover: { maxLagSeconds: MAX_LAG, semiSync: false } },
    });
  });

  afterAll(async () => {
    await env?.close();
  });

  const readOnly = async (id: string) =>
    Number((await env.cluster.query<{ ro: number }>(id, 'SELECT @@read_only AS ro'))[0]?.ro);

  it('vetoes a replica that stopped receiving long before the crash, says why, and changes nothing', async () => {
    const c = env.cluster;
    const m = env.startMonitor(40_000);
    await waitFor(() => m.rounds.some((r) => r.analysis.code === 'NoProblem'), 10_000, 'NoProblem');
    await c.query('db1', 'CREATE TABLE IF NOT EXISTS app.t_lag (id INT PRIMARY KEY)');
    await waitFor(
      async () => (await c.query('db2', "SHOW TABLES FROM app LIKE 't_lag'")).length === 1,
      5000,
      't_lag on db2',
    );
    await c.query('db2', 'STOP SLAVE IO_THREAD');
    const stoppedAt = Date.now();
    // The primary keeps committing (the application, and the prober's heartbeat every second)
    // while db2 receives nothing.
    for (let i = 1; i <= 20; i++) {
      await c.query('db1', 'INSERT INTO app.t_lag VALUES (?)', [i]);
      await sleep(300);
    }
    const [primaryPos] = await c.query<{ g: string }>('db1', 'SELECT @@gtid_binlog_pos AS g');
    const [db2Before] = await c.query<Record<string, unknown>>('db2', 'SHOW SLAVE STATUS');
    await c.crash('db1');
    const crashedAt = Date.now();

    await waitFor(
      () => env.cloud.sfn.executions().some((e) => e.status !== 'RUNNING'),
      40_000,
      'the failover to end',
    );
    await m.stop();
    const [execution] = env.cloud.sfn.executions();
    expect(execution?.status).toBe('FAILED');
    const path = execution!.states.map((s) => s.name);
    expect(path).toEqual(['BeginFailover', 'ElectCandidate', 'FailoverFailed', 'Failed']);
    const elect = execution!.states.find((s) => s.name === 'ElectCandidate')!;
    expect(elect.errors.map((e) => e.error)).toEqual(['NoEligibleCandidateError']);
    const cause = elect.errors[0]!.cause;
    // Why, how far behind, and measured against what.
    expect(cause).toMatch(/db2: \d+\.\d s behind the primary as last seen/);
    expect(cause).toContain(`over the limit of ${MAX_LAG} s`);
    expect(cause).toContain('ignoreLag');
    const behind = Number(/db2: (\d+\.\d) s behind/.exec(cause)?.[1]);
    expect(behind).toBeGreaterThan(MAX_LAG);
    expect(behind).toBeLessThan((crashedAt - stoppedAt) / 1000 + 2);

    // Nothing changed: db2 still a read-only replica of db1 with its IO thread stopped, the
    // state still names db1, and no node is writable.
    expect(await readOnly('db2')).toBe(1);
    const [db2After] = await c.query<Record<string, unknown>>('db2', 'SHOW SLAVE STATUS');
    expect(db2After?.Master_Port).toBe(db2Before?.Master_Port);
    expect(db2After?.Slave_IO_Running).toBe('No');
    const state = await env.store.getClusterState(env.name);
    expect(state?.primaryId).toBe('db1');
    expect(state?.failoverInProgress).toBeUndefined();
    expect(state?.lastFailover?.status).toBe('failed');
    expect(state?.lastFailover?.error?.name).toBe('NoEligibleCandidateError');
    // The state table held the primary's position as last seen, which is what was measured against.
    const stored = state?.topology.find((t) => t.nodeId === 'db1');
    // (The last round before the crash: within a heartbeat write or two of what we read.)
    const seq = (g: string | undefined) => Number(/^0-1-(\d+)$/.exec(g ?? '')?.[1]);
    expect(Math.abs(seq(stored?.gtid) - seq(primaryPos?.g))).toBeLessThanOrEqual(3);
    expect(stored?.seenAt).toBeGreaterThan(crashedAt - 3000);
    expect(stored?.reachable).toBe(false);
  });

  it('plan shows the veto, and with ignoreLag the candidate', async () => {
    const rt = getRuntime();
    const c = rt.cluster(env.name);
    const vetoed = await planFailover(rt, c);
    expect(vetoed.candidate).toBeUndefined();
    expect(vetoed.veto).toMatch(/db2: .*behind the primary as last seen/);
    const forced = await planFailover(rt, c, { ignoreLag: true });
    expect(forced.candidate).toBe('db2');
  });

  it('promotes the stale replica when an operator forces it (ignoreLag)', async () => {
    const state = (await env.store.getClusterState(env.name))!;
    const request: FailoverRequest = {
      cluster: env.name,
      kind: 'failover',
      failedPrimary: 'db1',
      expectedEpoch: state.epoch,
      incidentId: 'operator-forced',
      executionName: `${env.name}-failover-e${state.epoch + 1}`,
      ignoreBlock: true,
      ignoreLag: true,
    };
    await startExecution(env.cloud.stateMachineArn, request.executionName, request);
    await waitFor(
      () =>
        env.cloud.sfn.executions().some((e) => e.name === request.executionName && e.status !== 'RUNNING'),
      40_000,
      'the forced failover to end',
    );
    const execution = env.cloud.sfn.executions().find((e) => e.name === request.executionName)!;
    expect(execution.status).toBe('SUCCEEDED');
    expect(await readOnly('db2')).toBe(0);
    const after = await env.store.getClusterState(env.name);
    expect(after?.primaryId).toBe('db2');
    const record = await env.store.getFailover(env.name, state.epoch + 1);
    const elect = record?.steps.find((s) => s.name === 'ElectCandidate');
    expect(elect?.detail?.ignoreLag).toBe(true);
    expect(JSON.stringify(elect?.detail?.verdicts)).toMatch(
      /behind the primary as last seen.*ignored, the operator forced it/,
    );
    expect(env.cloud.vipHolder()).toBe('db2');
  });
});
