import { type BenchScenario, sleep, type Trial, waitUntil, withTrialEnv } from '../trial-env.ts';
import { startWritableWatch } from './timeline.ts';

/** kill -9 of the primary under a steady write load through the VIP. */
export const crash: BenchScenario = {
  name: 'crash',
  description: 'kill -9 of the primary under write load',
  expectFailover: true,
  run: () =>
    withTrialEnv(
      {},
      async ({ cluster, cloud, entries, startWriter, lostOn, succeededFailovers, defer }): Promise<Trial> => {
        const writer = startWriter();
        const direct = startWritableWatch({ cluster, defer });
        // Crashes do not wait for the prober's next round: kill at a random phase of the 1 s loop.
        await sleep(2000 + Math.random() * 1000);
        const killedAt = Date.now();
        await cluster.crash('db1');
        await waitUntil(() => cloud.sfn.executions().some((e) => e.status !== 'RUNNING'), 60_000);
        const execution = cloud.sfn.executions().find((e) => e.status !== 'RUNNING');
        const newPrimary = execution?.output
          ? (JSON.parse(execution.output) as { candidate?: string }).candidate
          : undefined;
        const newServerId = newPrimary ? cluster.node(newPrimary).serverId : -1;
        await waitUntil(() => writer.firstAckOn(newServerId, killedAt) !== undefined, 30_000);
        await sleep(500);
        await writer.stop();
        const first = writer.firstAckOn(newServerId, killedAt);
        const ackedLost = newPrimary ? await lostOn(writer, newPrimary) : writer.acked.length;
        const started = entries.find((e) => e.type === 'failover-started');
        const step = (name: string) =>
          entries.find((e) => e.type === 'failover-step' && e.name === name && e.result !== 'error');
        const promote = step('PromoteCandidate');
        const vip = step('MoveVip');
        const failovers = succeededFailovers();
        return {
          detectMs: started ? Number(started.detectedAt) - killedAt : null,
          promoteMs: promote && started ? Number(promote.endedAt) - Number(started.detectedAt) : null,
          vipMs: vip ? Number(vip.endedAt) - Number(vip.startedAt) : null,
          rtoMs: first ? first.at - killedAt : null,
          writableMs: direct.writableMs(newPrimary, killedAt),
          ackedWrites: writer.acked.length,
          ackedLost,
          failovers,
          ok:
            execution?.status === 'SUCCEEDED' &&
            ackedLost === 0 &&
            first !== undefined &&
            cloud.vipHolder() === newPrimary &&
            failovers === 1,
          ...(newPrimary ? { newPrimary } : {}),
        };
      },
    ),
};
