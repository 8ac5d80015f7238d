/**
 * `npm run bench -- --scenario crash --trials N [--json]`: failover trials on fresh local
 * clusters under a steady write load through the VIP. JSON on stdout, progress on stderr.
 */
import { parseArgs } from 'node:util';
import { DynamoStateStore } from '../../lib/adapters/dynamodb-state-store.ts';
import { startCluster } from '../cluster/mariadb-cluster.ts';
import { startLocalCloud } from '../local-cloud/local-cloud.ts';
import { startWriter, WRITES_TABLE_DDL } from '../workload/writer.ts';

export interface Trial {
  detectMs: number | null;
  promoteMs: number | null;
  vipMs: number | null;
  rtoMs: number | null;
  ackedWrites: number;
  ackedLost: number;
  failovers: number;
  ok: boolean;
  newPrimary?: string;
  error?: string;
}

const SCENARIOS = ['crash'] as const;
type Scenario = (typeof SCENARIOS)[number];

const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await sleep(20);
  }
  return false;
}

/** One crash trial: kill -9 of the primary under load, measured from the kill. */
async function crashTrial(): Promise<Trial> {
  const cluster = await startCluster();
  const entries: Array<Record<string, unknown>> = [];
  let cloud: Awaited<ReturnType<typeof startLocalCloud>> | undefined;
  const writerBox: { w?: ReturnType<typeof startWriter> } = {};
  try {
    await cluster.query('db1', WRITES_TABLE_DDL);
    cloud = await startLocalCloud({ cluster, clusterName: 'bench', onLog: (e) => entries.push(e) });
    const store = new DynamoStateStore(cloud.tableName);
    await waitUntil(async () => (await store.getClusterState('bench'))?.analysis === 'NoProblem', 20_000);
    const app = cluster.credentials.app;
    const writer = startWriter({
      host: cloud.vip.host,
      port: cloud.vip.port,
      user: app.user,
      password: app.password,
      paceMs: 2,
    });
    writerBox.w = writer;
    // Crashes do not wait for the prober's next round: kill at a random phase of the 1 s loop.
    await sleep(2000 + Math.random() * 1000);
    const killedAt = Date.now();
    await cluster.crash('db1');
    const lc = cloud;
    await waitUntil(() => lc.sfn.executions().some((e) => e.status !== 'RUNNING'), 60_000);
    const execution = lc.sfn.executions().find((e) => e.status !== 'RUNNING');
    const output = execution?.output ? (JSON.parse(execution.output) as { candidate?: string }) : {};
    const newPrimary = output.candidate;
    const newServerId = newPrimary ? cluster.node(newPrimary).serverId : -1;
    await waitUntil(() => writer.firstAckOn(newServerId, killedAt) !== undefined, 30_000);
    await sleep(500);
    await writer.stop();
    const first = writer.firstAckOn(newServerId, killedAt);
    let ackedLost = writer.acked.length;
    if (newPrimary) {
      const rows = await cluster.query<{ id: string | number }>(newPrimary, 'SELECT id FROM app.writes');
      const present = new Set(rows.map((r) => Number(r.id)));
      ackedLost = writer.acked.filter((a) => !present.has(a.id)).length;
    }
    const started = entries.find((e) => e.type === 'failover-started');
    const step = (name: string) =>
      entries.find((e) => e.type === 'failover-step' && e.name === name && e.result !== 'error');
    const promote = step('PromoteCandidate');
    const vip = step('MoveVip');
    const firstStep = entries.find((e) => e.type === 'failover-step');
    const failovers = lc.sfn.executions().filter((e) => e.status === 'SUCCEEDED').length;
    const trial: Trial = {
      detectMs: started ? Number(started.detectedAt) - killedAt : null,
      promoteMs:
        promote && firstStep
          ? Number(promote.endedAt) - Number(started?.detectedAt ?? firstStep.startedAt)
          : null,
      vipMs: vip ? Number(vip.endedAt) - Number(vip.startedAt) : null,
      rtoMs: first ? first.at - killedAt : null,
      ackedWrites: writer.acked.length,
      ackedLost,
      failovers,
      ok:
        execution?.status === 'SUCCEEDED' &&
        ackedLost === 0 &&
        first !== undefined &&
        lc.vipHolder() === newPrimary &&
        failovers === 1,
      ...(newPrimary ? { newPrimary } : {}),
    };
    return trial;
  } finally {
    await writerBox.w?.stop().catch(() => {});
    await cloud?.stop().catch(() => {});
    await cluster.destroy().catch(() => {});
  }
}

function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] ?? null;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'crash' },
      trials: { type: 'string', default: '5' },
      provider: { type: 'string', default: 'aws-secondary-ip' },
      json: { type: 'boolean', default: false },
    },
  });
  const scenario = values.scenario as Scenario;
  if (!SCENARIOS.includes(scenario)) {
    log(`Unknown --scenario "${values.scenario}". Available: ${SCENARIOS.join(', ')}.`);
    process.exit(2);
  }
  if (values.provider !== 'aws-secondary-ip') {
    log(`Unknown --provider "${values.provider}". Available: aws-secondary-ip.`);
    process.exit(2);
  }
  const n = Number(values.trials);
  if (!Number.isInteger(n) || n < 1 || n > 100) {
    log(`--trials must be a whole number from 1 to 100 (got "${values.trials}").`);
    process.exit(2);
  }
  const trials: Trial[] = [];
  for (let i = 0; i < n; i++) {
    let t: Trial;
    try {
      t = await crashTrial();
    } catch (err) {
      t = {
        detectMs: null,
        promoteMs: null,
        vipMs: null,
        rtoMs: null,
        ackedWrites: 0,
        ackedLost: 0,
        failovers: 0,
        ok: false,
        error: (err as Error).message,
      };
    }
    trials.push(t);
    log(
      `trial ${i + 1}/${n}: ${t.ok ? 'ok' : 'FAILED'} detect ${t.detectMs} ms, promote ${t.promoteMs} ms, vip ${t.vipMs} ms, rto ${t.rtoMs} ms, acked ${t.ackedWrites}, lost ${t.ackedLost}${t.error ? `, error: ${t.error}` : ''}`,
    );
  }
  const rtos = trials.flatMap((t) => (t.rtoMs === null ? [] : [t.rtoMs]));
  const detects = trials.flatMap((t) => (t.detectMs === null ? [] : [t.detectMs]));
  const summary = {
    rtoP50Ms: percentile(rtos, 50),
    rtoMaxMs: rtos.length ? Math.max(...rtos) : null,
    detectP50Ms: percentile(detects, 50),
    ackedLost: trials.reduce((s, t) => s + t.ackedLost, 0),
    failovers: trials.reduce((s, t) => s + t.failovers, 0),
    falseFailovers: 0,
    okTrials: trials.filter((t) => t.ok).length,
  };
  const result = { scenario, provider: values.provider, trials, summary };
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    const head = ['#', 'ok', 'detectMs', 'promoteMs', 'vipMs', 'rtoMs', 'acked', 'lost', 'failovers'];
    const rows = trials.map((t, i) => [
      String(i + 1),
      t.ok ? 'yes' : 'NO',
      ...[t.detectMs, t.promoteMs, t.vipMs, t.rtoMs, t.ackedWrites, t.ackedLost, t.failovers].map((v) =>
        v === null ? '-' : String(v),
      ),
    ]);
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const fmt = (r: string[]) => r.map((v, i) => v.padStart(w[i] ?? 0)).join('  ');
    console.log(`scenario ${scenario}, provider ${values.provider}, ${n} trials`);
    console.log(fmt(head));
    for (const r of rows) console.log(fmt(r));
    console.log(
      `summary: rto p50 ${summary.rtoP50Ms} ms, max ${summary.rtoMaxMs} ms; detect p50 ${summary.detectP50Ms} ms; acked lost ${summary.ackedLost}; failovers ${summary.failovers}; false failovers ${summary.falseFailovers}; ok ${summary.okTrials}/${n}`,
    );
  }
  process.exit(trials.every((t) => t.ok) ? 0 : 1);
}

await main();
