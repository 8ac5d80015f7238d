import { type BenchScenario, sleep, type Trial, withTrialEnv } from '../trial-env.ts';
import { startTimeline, timelineTrial } from './timeline.ts';

/** Concurrent writers through the VIP, back to back: as much as the primary commits. */
const LOAD_WRITERS = 4;

/**
 * kill -9 of the primary under write load at its steady rate (4 writers through the VIP, back to
 * back, plus the direct writers), 20 trials by default. After the failover the writers stop, the
 * survivors catch up with the new primary, and CHECKSUM TABLE app.writes must be equal on every
 * running node (the crashed one stays down). Must hold: nothing acknowledged lost, checksums equal.
 */
export const crashUnderLoad: BenchScenario = {
  name: 'crash-under-load',
  description: `kill -9 of the primary under ${LOAD_WRITERS} back-to-back writers; table checksums equal afterwards`,
  expectFailover: true,
  defaultTrials: 20,
  expect: () => ({
    failovers: 1,
    zero: ['oldPrimaryAcksAfterPromotion', 'ackedLost', 'stuckInProgress'],
    true: ['stateNamesWritable', 'checksumsEqual'],
  }),
  run: () =>
    withTrialEnv({}, async (env): Promise<Trial> => {
      const { cluster } = env;
      const tl = startTimeline(env, { vipWriters: LOAD_WRITERS, vipPaceMs: 0 });
      const loadFrom = Date.now();
      await sleep(3000 + Math.random() * 1000);
      const faultAt = tl.markFault();
      await cluster.crash('db1');
      await tl.waitSettled(60_000);
      // Let the writers find the new primary, directly and through the VIP, before stopping them.
      await tl.waitFirstWriteOnNewPrimary(30_000);
      await sleep(2000);
      const f = await tl.figures();
      const [rate] = await cluster.query<{ n: number }>(
        f.newPrimary ?? 'db2',
        'SELECT COUNT(*) AS n FROM app.writes WHERE at >= ? AND at < ?',
        [loadFrom, faultAt],
      );
      const checksums: Record<string, string> = {};
      let checksumError: string | null = null;
      try {
        if (!f.newPrimary) throw new Error('no new primary');
        await cluster.waitForReplicas(f.newPrimary, 30_000);
        for (const n of cluster.nodes) {
          if (!cluster.isRunning(n.id)) continue;
          const [row] = await cluster.query<{ Checksum: string | number }>(n.id, 'CHECKSUM TABLE app.writes');
          checksums[n.id] = String(row?.Checksum);
        }
      } catch (err) {
        checksumError = (err as Error).message;
      }
      const values = Object.values(checksums);
      return timelineTrial(f, {
        writesPerSecondBeforeCrash: Math.round((Number(rate?.n ?? 0) * 1000) / (faultAt - loadFrom)),
        checksums,
        // With --nodes 2 the new primary is the only node left: trivially equal.
        checksumsEqual: checksumError === null && values.length >= 1 && values.every((v) => v === values[0]),
        ...(checksumError ? { checksumError } : {}),
      });
    }),
};
