import type { MariaDbCluster } from '../../cluster/mariadb-cluster.ts';
import { type BenchScenario, sleep, type Trial, withTrialEnv } from '../trial-env.ts';
import { startTimeline, timelineTrial } from './timeline.ts';

/** How far the replicas' appliers trail when the primary crashes. */
const LAG_MS = 3000;
const DELAY_SECONDS = 3;

type LagMode = 'stopped' | 'delayed';

/** Received-but-not-applied transactions per replica (domain 0 of Gtid_IO_Pos vs gtid_slave_pos). */
async function backlog(cluster: MariaDbCluster, ids: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const seq = (pos: string) => Number(/(?:^|,)0-\d+-(\d+)/.exec(pos)?.[1] ?? 0);
  for (const id of ids) {
    const [st] = await cluster.query(id, 'SHOW SLAVE STATUS');
    const [row] = await cluster.query<{ p: string }>(id, 'SELECT @@GLOBAL.gtid_slave_pos AS p');
    out[id] = seq(String(st?.Gtid_IO_Pos ?? '')) - seq(row?.p ?? '');
  }
  return out;
}

/**
 * kill -9 of the primary while every replica's applier trails what it received: odd trials stop
 * the SQL thread 3 s before the crash, even trials run the replicas with MASTER_DELAY=3 from the
 * start. Whichever replica is elected has a relay-log backlog (`backlogAtCrash`) that must be
 * applied before it is promoted. Must hold: nothing acknowledged lost.
 */
export const laggingCandidate: BenchScenario = {
  name: 'lagging-candidate',
  description: `kill -9 of the primary while the replicas' SQL threads are stopped or delayed ${DELAY_SECONDS} s`,
  expectFailover: true,
  defaultTrials: 5,
  expect: () => ({
    failovers: 1,
    zero: ['oldPrimaryAcksAfterPromotion', 'ackedLost', 'stuckInProgress'],
    true: ['stateNamesWritable'],
  }),
  run: (opts) => {
    const mode: LagMode = (opts.trial ?? 1) % 2 === 1 ? 'stopped' : 'delayed';
    const delayed = async (cluster: MariaDbCluster) => {
      for (const n of cluster.nodes.slice(1)) {
        await cluster.query(n.id, 'STOP SLAVE');
        await cluster.query(n.id, `CHANGE MASTER TO MASTER_DELAY=${DELAY_SECONDS}`);
        await cluster.query(n.id, 'START SLAVE');
        await cluster.waitForReplicaThreads(n.id);
      }
    };
    return withTrialEnv(mode === 'delayed' ? { prepare: delayed } : {}, async (env): Promise<Trial> => {
      const { cluster } = env;
      const replicas = cluster.nodes.slice(1).map((n) => n.id);
      const tl = startTimeline(env);
      if (mode === 'stopped') {
        await sleep(1000);
        await Promise.all(replicas.map((r) => cluster.query(r, 'STOP SLAVE SQL_THREAD')));
      }
      await sleep(LAG_MS);
      const backlogAtCrash = await backlog(cluster, replicas);
      tl.markFault();
      await cluster.crash('db1');
      await tl.waitSettled(90_000);
      if (tl.promoted() !== undefined) await tl.waitFirstWriteOnNewPrimary(30_000);
      await sleep(1500);
      const f = await tl.figures();
      return timelineTrial(f, { lagMode: mode, backlogAtCrash });
    });
  },
};
