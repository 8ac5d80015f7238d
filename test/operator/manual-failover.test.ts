/**
 * Issue 11, T4 "an operator can force", live: the operator's `failover` function on a 2-node
 * cluster whose replica stopped receiving long before the primary crashed (the lagging-survivors
 * timeline), with failover.maxLagSeconds 2 s.
 *
 * Must hold: bad input is refused naming the field; a live primary is refused (that is a
 * switchover) unless forced; the lagging replica is refused without ignoreLag, saying why and how
 * to force it, with nothing changed; with ignoreLag it is promoted, the state names it and the VIP
 * is on it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plain as failover } from '../../functions/failover.ts';
import { type LiveEnv, sleep, startLiveEnv } from '../health/live-env.ts';
import { waitFor } from '../support/wait-for.ts';

describe('T4: an operator forces a failover (serverless invoke -f failover)', () => {
  let env: LiveEnv;

  beforeAll(async () => {
    env = await startLiveEnv({
      name: 'manualfo',
      harness: { nodes: 2, semiSync: false },
      clusterOverrides: { failover: { maxLagSeconds: 2, semiSync: false } },
    });
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  const readOnly = async (id: string) =>
    Number((await env.cluster.query<{ ro: number }>(id, 'SELECT @@read_only AS ro'))[0]?.ro);
  /** What a refused request must leave as it was. */
  const unchanged = async () => {
    const s = await env.store.getClusterState(env.name);
    return {
      primary: s?.primaryId,
      epoch: s?.epoch,
      inProgress: s?.failoverInProgress,
      db2ro: await readOnly('db2'),
      vip: env.cloud.vipHolder(),
      executions: env.cloud.sfn.executions().length,
    };
  };

  it('refuses bad input naming the field, and a live primary (a switchover), changing nothing', async () => {
    const m = env.startMonitor(20_000);
    await waitFor(() => m.rounds.some((r) => r.analysis.code === 'NoProblem'), 15_000, 'NoProblem');
    await m.stop();
    const before = await unchanged();
    expect(before.executions).toBe(0);
    const cases: Array<[unknown, string, RegExp]> = [
      [{ cluster: env.name, candidat: 'db2' }, 'InvalidRequestError', /candidat/],
      [{ cluster: env.name, ignoreLag: 'yes' }, 'InvalidRequestError', /ignoreLag/],
      [
        { cluster: env.name, candidate: 'db9' },
        'InvalidRequestError',
        /Node "db9" is not in cluster manualfo/,
      ],
      [{ cluster: 'nope' }, 'UnknownClusterError', /Unknown cluster "nope"/],
      [{}, 'InvalidRequestError', /cluster/],
    ];
    for (const [input, name, message] of cases) {
      await expect(failover(input), JSON.stringify(input)).rejects.toMatchObject({
        name,
        message: expect.stringMatching(message),
      });
    }
    await expect(failover({ cluster: env.name })).rejects.toMatchObject({
      name: 'OperatorRefusedError',
      message: expect.stringMatching(
        /db1 answers and is writable.*switchover.*"force": true.*Nothing was changed/s,
      ),
    });
    expect(await unchanged()).toEqual(before);
  });

  it('refuses the lagging replica without ignoreLag, saying why, and promotes it with ignoreLag', async () => {
    const c = env.cluster;
    // The prober runs throughout, as in production: it records db1's position and time while db2
    // receives nothing, then confirms the crash and starts the automatic failover, which vetoes
    // db2 (T4) and blocks further automatic failovers.
    const m = env.startMonitor(60_000);
    await c.query('db1', 'CREATE TABLE IF NOT EXISTS app.t_manual (id INT PRIMARY KEY)');
    await waitFor(
      async () => (await c.query('db2', "SHOW TABLES FROM app LIKE 't_manual'")).length === 1,
      5000,
      't_manual on db2',
    );
    await c.query('db2', 'STOP SLAVE IO_THREAD');
    for (let i = 1; i <= 15; i++) {
      await c.query('db1', 'INSERT INTO app.t_manual VALUES (?)', [i]);
      await sleep(300);
    }
    await c.crash('db1');
    await waitFor(
      () => env.cloud.sfn.executions().some((e) => e.status !== 'RUNNING'),
      40_000,
      'the automatic failover to end',
    );
    await m.stop();
    expect(env.cloud.sfn.executions()[0]?.status).toBe('FAILED');
    const before = await unchanged();
    expect(before.primary).toBe('db1');

    await expect(failover({ cluster: env.name })).rejects.toMatchObject({
      name: 'OperatorRefusedError',
      message: expect.stringMatching(/blocked until .*"ignoreBlock": true.*Nothing was changed/s),
    });
    await expect(failover({ cluster: env.name, ignoreBlock: true })).rejects.toMatchObject({
      name: 'OperatorRefusedError',
      message: expect.stringMatching(
        /no replica can be promoted: .*db2: \d+\.\d s behind the primary as last seen.*"ignoreLag": true.*Nothing was changed/s,
      ),
    });
    await expect(failover({ cluster: env.name, candidate: 'db2', ignoreBlock: true })).rejects.toMatchObject({
      name: 'OperatorRefusedError',
      message: expect.stringMatching(
        /db2 cannot be promoted: .*behind the primary as last seen.*"ignoreLag": true/s,
      ),
    });
    expect(await unchanged()).toEqual(before);

    const r = await failover({ cluster: env.name, candidate: 'db2', ignoreLag: true, ignoreBlock: true });
    expect(r.outcome, r.report).toBe('succeeded');
    expect(r.to).toBe('db2');
    expect(r.incidentId).toMatch(/^manual-manualfo-/);
    expect(await readOnly('db2')).toBe(0);
    const state = await env.store.getClusterState(env.name);
    expect(state?.primaryId).toBe('db2');
    expect(state?.epoch).toBe((before.epoch ?? 0) + 1);
    expect(state?.failoverInProgress).toBeUndefined();
    expect(env.cloud.vipHolder()).toBe('db2');
    const record = await env.store.getFailover(env.name, state!.epoch);
    const elect = record?.steps.find((s) => s.name === 'ElectCandidate');
    expect(elect?.detail?.ignoreLag).toBe(true);
    expect(JSON.stringify(elect?.detail?.verdicts)).toMatch(/ignored, the operator forced it/);
  }, 120_000);
});
