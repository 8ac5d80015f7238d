import { plain as switchover } from '../../../functions/switchover.ts';
import { type BenchScenario, percentile, sleep, type Trial, waitUntil, withTrialEnv } from '../trial-env.ts';

/**
 * A planned switchover under a steady write load through the VIP: the operator's `switchover`
 * action, run through the packaged switchover state machine. `writeBlockMs` is what the
 * switchover reports: from the earlier of read_only=ON on the old primary and the VIP leaving it
 * (bounded by the last provider read that still showed it there), to the later of the new primary
 * accepting commits and the VIP verified on it. `clientGapMs` is what the writer saw (last ack on
 * the old primary -> first ack on the new one), the figure no server-side clock can flatter.
 */
export const switchoverScenario: BenchScenario = {
  name: 'switchover',
  description: 'planned switchover under write load',
  expectFailover: true,
  run: () =>
    withTrialEnv({}, async ({ cluster, cloud, startWriter, lostOn, succeededFailovers }): Promise<Trial> => {
      const writer = startWriter();
      await sleep(2000);
      const startedAt = Date.now();
      const r = await switchover({ cluster: cloud.clusterName });
      const to = r.to;
      const newServerId = to ? cluster.node(to).serverId : -1;
      await waitUntil(() => writer.firstAckOn(newServerId, startedAt) !== undefined, 30_000);
      await sleep(500);
      await writer.stop();
      const first = writer.firstAckOn(newServerId, startedAt);
      const oldServerId = cluster.node(r.from).serverId;
      const lastOld = [...writer.acked]
        .reverse()
        .find((a) => a.serverId === oldServerId && a.at <= (first?.at ?? Infinity));
      const ackedLost = to ? await lostOn(writer, to) : writer.acked.length;
      const step = (name: string) => r.steps.find((s) => s.name === name);
      const failovers = succeededFailovers();
      return {
        detectMs: null,
        promoteMs: step('PromoteCandidate')?.ms ?? null,
        vipMs: step('MoveVip')?.ms ?? null,
        rtoMs: first ? first.at - startedAt : null,
        writeBlockMs: r.writeBlockMs ?? null,
        clientGapMs: first && lastOld ? first.at - lastOld.at : null,
        ackedWrites: writer.acked.length,
        ackedLost,
        failovers,
        ok:
          r.outcome === 'succeeded' &&
          ackedLost === 0 &&
          first !== undefined &&
          cloud.vipHolder() === to &&
          r.oldPrimaryReplicating === true &&
          failovers === 1,
        ...(to ? { newPrimary: to } : {}),
        ...(r.outcome !== 'succeeded' ? { error: r.report } : {}),
      };
    }),
  summarize(trials) {
    const nums = (k: string) => trials.flatMap((t) => (typeof t[k] === 'number' ? [t[k] as number] : []));
    const blocks = nums('writeBlockMs');
    const gaps = nums('clientGapMs');
    return {
      writeBlockP50Ms: percentile(blocks, 50),
      writeBlockMaxMs: blocks.length ? Math.max(...blocks) : null,
      clientGapP50Ms: percentile(gaps, 50),
      clientGapMaxMs: gaps.length ? Math.max(...gaps) : null,
      ackedLost: trials.reduce((s, t) => s + t.ackedLost, 0),
    };
  },
};
