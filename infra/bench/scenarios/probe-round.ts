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
      const logged = entries.slice(from).filter((e) => e.type === 'probe-round' && typeof e.ms === 'number');
      const rounds = logged.map((e) => Number(e.ms));
      // The probe phase alone (every node's statements and the heartbeat's state check).
      const probes = logged.flatMap((e) => {
        const ms = (e.phases as { probeMs?: unknown } | undefined)?.probeMs;
        return typeof ms === 'number' ? [Math.round(ms)] : [];
      });
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
        probePhaseMs: probes,
      };
      return trial;
    }),
  summarize: (trials) => {
    const all = trials.flatMap((t) => (t.roundMs ?? []) as number[]);
    const probes = trials.flatMap((t) => (t.probePhaseMs ?? []) as number[]);
    return {
      rounds: all.length,
      roundP50Ms: percentile(all, 50),
      roundP99Ms: percentile(all, 99),
      probePhaseP50Ms: percentile(probes, 50),
      probePhaseP99Ms: percentile(probes, 99),
    };
  },
};

/**
 * The lease hand-over under the CPU limit: the schedule shortened to 20 s with a 30 s invocation
 * (the same 6 s overlap as rate 1 minute / timeout 70 s), so each new invocation starts (cold on
 * its first two ticks) while the previous one still probes. Measures the longest gap between two
 * rounds across the hand-overs and the health check's Init Durations.
 */
export const probeHandover: BenchScenario = {
  name: 'probe-handover',
  description: 'health check lease hand-over (rate 20 s, timeout 30 s) under the CPU limit',
  expectFailover: false,
  run: () =>
    withTrialEnv(
      {
        cloud: {
          lambda: { env: { HEALTH_ROUND_LOG: '1' } },
          scheduleRateMs: 20_000,
          healthCheckTimeoutMs: 30_000,
        },
      },
      async ({ cloud, entries }) => {
        const from = entries.length;
        await sleep(65_000);
        const rounds = entries
          .slice(from)
          .filter((e) => e.type === 'probe-round')
          .map((e) => ({ at: Number(e.at), owner: String(e.owner) }))
          .sort((a, b) => a.at - b.at);
        let maxGapMs = 0;
        let handovers = 0;
        for (let i = 1; i < rounds.length; i++) {
          maxGapMs = Math.max(maxGapMs, rounds[i]!.at - rounds[i - 1]!.at);
          if (rounds[i]!.owner !== rounds[i - 1]!.owner) handovers++;
        }
        const inits = (cloud.lambdaRuntime?.reports() ?? [])
          .filter((r) => r.functionId.startsWith('HealthCheck') && r.initMs !== undefined)
          .map((r) => Math.round(r.initMs!));
        return {
          detectMs: null,
          promoteMs: null,
          vipMs: null,
          rtoMs: null,
          ackedWrites: 0,
          ackedLost: 0,
          failovers: cloud.sfn.executions().length,
          ok: handovers >= 2 && cloud.sfn.executions().length === 0,
          rounds: rounds.length,
          handovers,
          maxGapMs,
          healthCheckInitMs: inits,
        };
      },
    ),
};
