import { type BenchScenario, percentile, sleep, type Trial, withTrialEnv } from '../trial-env.ts';

const OBSERVE_MS = 30_000;

/**
 * The health check's round time for one healthy cluster, as the scheduled function runs it (under
 * its MemorySize's CPU limit with the packaged runtime): no fault, ~30 rounds per trial.
 */
export const probeRound: BenchScenario = {
  name: 'probe-round',
  description: 'health check round time, one healthy cluster, under the CPU limit',
  expectFailover: false,
  run: () =>
    withTrialEnv({ cloud: { lambda: { env: { HEALTH_ROUND_LOG: '1' } } } }, async ({ cloud, entries }) => {
      const from = entries.length;
      await sleep(OBSERVE_MS);
      const rounds = entries
        .slice(from)
        .flatMap((e) => (e.type === 'probe-round' && typeof e.ms === 'number' ? [e.ms] : []));
      const failovers = cloud.sfn.executions().length;
      const trial: Trial = {
        detectMs: null,
        promoteMs: null,
        vipMs: null,
        rtoMs: null,
        ackedWrites: 0,
        ackedLost: 0,
        failovers,
        ok: rounds.length >= OBSERVE_MS / 2000 && failovers === 0,
        rounds: rounds.length,
        roundP50Ms: percentile(rounds, 50),
        roundP99Ms: percentile(rounds, 99),
        roundMaxMs: rounds.length ? Math.max(...rounds) : null,
        roundMs: rounds,
      };
      return trial;
    }),
  summarize: (trials) => {
    const all = trials.flatMap((t) => (t.roundMs ?? []) as number[]);
    return { rounds: all.length, roundP50Ms: percentile(all, 50), roundP99Ms: percentile(all, 99) };
  },
};
