import mysql from 'mysql2/promise';
import { type BenchScenario, sleep, type Trial, waitUntil, withTrialEnv } from '../trial-env.ts';
import { startWritableWatch } from './timeline.ts';

/**
 * SIGSTOP of the primary under a steady write load through the VIP: TCP still accepts, nothing
 * answers; the replicas' IO threads stay 'Yes' until slave_net_timeout. Measured from the
 * SIGSTOP: detectMs (to the confirmed decision), rtoMs (first acknowledged write on the new
 * primary). After the failover the old primary is thawed (SIGCONT) and must not take writes
 * through the VIP (`oldPrimaryReachableViaVip` false).
 */
export const hang: BenchScenario = {
  name: 'hang',
  description: 'SIGSTOP of the primary under write load',
  expectFailover: true,
  run: () =>
    withTrialEnv(
      {},
      async ({ cluster, cloud, entries, startWriter, lostOn, succeededFailovers, defer }): Promise<Trial> => {
        const writer = startWriter();
        const direct = startWritableWatch({ cluster, defer });
        await sleep(2000 + Math.random() * 1000);
        const hungAt = Date.now();
        cluster.hang('db1');
        try {
          await waitUntil(() => cloud.sfn.executions().some((e) => e.status !== 'RUNNING'), 60_000);
          const execution = cloud.sfn.executions().find((e) => e.status !== 'RUNNING');
          const newPrimary = execution?.output
            ? (JSON.parse(execution.output) as { candidate?: string }).candidate
            : undefined;
          const newServerId = newPrimary ? cluster.node(newPrimary).serverId : -1;
          await waitUntil(() => writer.firstAckOn(newServerId, hungAt) !== undefined, 30_000);
          await sleep(300);
          // Thaw the old primary: its clients were cut when the VIP left it, and new VIP
          // connections reach the new primary only.
          cluster.resume('db1');
          await sleep(2500);
          const viaVip = await serverIdViaVip(cloud.vip, cluster.credentials.app);
          await writer.stop();
          const first = writer.firstAckOn(newServerId, hungAt);
          const ackedLost = newPrimary ? await lostOn(writer, newPrimary) : writer.acked.length;
          const lateOnOld = writer.acked.filter(
            (a) => a.serverId === cluster.node('db1').serverId && a.at > (first?.at ?? hungAt),
          ).length;
          const started = entries.find((e) => e.type === 'failover-started');
          const step = (name: string) =>
            entries.find((e) => e.type === 'failover-step' && e.name === name && e.result !== 'error');
          const promote = step('PromoteCandidate');
          const vip = step('MoveVip');
          const failovers = succeededFailovers();
          const detectMs = started ? Number(started.detectedAt) - hungAt : null;
          return {
            detectMs,
            promoteMs: promote && started ? Number(promote.endedAt) - Number(started.detectedAt) : null,
            vipMs: vip ? Number(vip.endedAt) - Number(vip.startedAt) : null,
            rtoMs: first ? first.at - hungAt : null,
            writableMs: direct.writableMs(newPrimary, hungAt),
            ackedWrites: writer.acked.length,
            ackedLost,
            failovers,
            oldPrimaryReachableViaVip: viaVip === cluster.node('db1').serverId,
            lateAcksOnOldPrimary: lateOnOld,
            evidence: (started?.reason as { evidence?: string } | undefined)?.evidence ?? null,
            ok:
              execution?.status === 'SUCCEEDED' &&
              ackedLost === 0 &&
              first !== undefined &&
              failovers === 1 &&
              detectMs !== null &&
              detectMs < 4000 &&
              viaVip === newServerId &&
              lateOnOld === 0,
            ...(newPrimary ? { newPrimary } : {}),
          };
        } finally {
          cluster.resume('db1');
        }
      },
    ),
};

/** @@server_id of the node a fresh connection through the VIP reaches (undefined: none). */
export async function serverIdViaVip(
  vip: { host: string; port: number },
  app: { user: string; password: string },
): Promise<number | undefined> {
  try {
    const conn = await mysql.createConnection({
      host: vip.host,
      port: vip.port,
      user: app.user,
      password: app.password,
      connectTimeout: 2000,
    });
    try {
      const [rows] = await conn.query({ sql: 'SELECT @@server_id AS s', timeout: 2000 });
      return Number((rows as Array<{ s: number }>)[0]?.s);
    } finally {
      conn.destroy();
    }
  } catch {
    return undefined;
  }
}
