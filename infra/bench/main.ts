/**
 * `npm run bench -- --scenario <name> --trials N [--provider P] [--latency realistic|none] [--json]`:
 * failover trials on fresh local clusters. JSON on stdout with --json, progress always on stderr.
 * --latency realistic (default) gives the emulated provider APIs the latencies of
 * infra/local-cloud/latency-profiles.ts; none runs them as fast as they go.
 * --nodes N (default 3) sizes every trial's cluster; --force lets a scenario override a veto
 * (lagging-survivors). Each scenario states what must hold in every trial; the verdict is printed
 * (`summary.expectationsMet`, `summary.unmet`) and the exit code is 1 when it does not hold.
 * --runtime packaged (default) runs the zips `serverless package` wrote, each function in its own
 * Node 22 process CPU-limited by its MemorySize; inprocess calls the handlers in the bench process.
 * --cold turns the failover worker's warm-up ping off (the all-cold worst case); --init-cpu full
 * gives the init phase an unthrottled CPU (default throttled); --health-memory / --worker-memory
 * override the packaged MemorySize (MB) to measure other sizes. --clusters N (scale) sets how many
 * clusters one deployment watches, --shards K over how many health-check invocations.
 */
import { parseArgs } from 'node:util';
import { LOCAL_CLOUD_PROVIDERS, type LocalCloudProvider } from '../local-cloud/vip-provider.ts';
import { unmetExpectations } from './scenarios/expectations.ts';
import { SCENARIOS } from './scenarios/index.ts';
import { percentile, setTrialCloudDefaults, setTrialClusterDefaults, type Trial } from './trial-env.ts';

const PROVIDERS: readonly string[] = LOCAL_CLOUD_PROVIDERS;
const LATENCIES = ['realistic', 'none'] as const;
const log = (line: string) => process.stderr.write(`${line}\n`);

function fail(message: string): never {
  log(message);
  process.exit(2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'crash' },
      trials: { type: 'string' },
      nodes: { type: 'string', default: '3' },
      force: { type: 'boolean', default: false },
      provider: { type: 'string', default: 'aws-secondary-ip' },
      latency: { type: 'string', default: 'realistic' },
      json: { type: 'boolean', default: false },
      runtime: { type: 'string', default: 'packaged' },
      cold: { type: 'boolean', default: false },
      'init-cpu': { type: 'string', default: 'throttled' },
      'health-memory': { type: 'string' },
      'worker-memory': { type: 'string' },
      clusters: { type: 'string', default: '1' },
      shards: { type: 'string', default: '1' },
    },
  });
  const scenario = SCENARIOS[values.scenario];
  if (!scenario)
    fail(`Unknown --scenario "${values.scenario}". Available: ${Object.keys(SCENARIOS).join(', ')}.`);
  if (!PROVIDERS.includes(values.provider))
    fail(`Unknown --provider "${values.provider}". Available: ${PROVIDERS.join(', ')}.`);
  const latency = LATENCIES.find((l) => l === values.latency);
  if (!latency) fail(`Unknown --latency "${values.latency}". Available: ${LATENCIES.join(', ')}.`);
  const runtime = (['packaged', 'inprocess'] as const).find((r) => r === values.runtime);
  if (!runtime) fail(`Unknown --runtime "${values.runtime}". Available: packaged, inprocess.`);
  const initCpu = (['throttled', 'full'] as const).find((r) => r === values['init-cpu']);
  if (!initCpu) fail(`Unknown --init-cpu "${values['init-cpu']}". Available: throttled, full.`);
  const memoryMb: Record<string, number> = {};
  for (const [flag, id] of [
    ['health-memory', 'HealthCheckLambdaFunction'],
    ['worker-memory', 'FailoverWorkerLambdaFunction'],
  ] as const) {
    const raw = values[flag];
    if (raw === undefined) continue;
    const mb = Number(raw);
    if (!Number.isInteger(mb) || mb < 128 || mb > 10240)
      fail(`--${flag} must be a Lambda memory size in MB, 128 to 10240 (got "${raw}").`);
    memoryMb[id] = mb;
  }
  setTrialCloudDefaults({
    provider: values.provider as LocalCloudProvider,
    latency,
    runtime,
    warmUp: !values.cold,
    lambda: { initCpu, memoryMb },
  });
  const n = Number(values.trials ?? scenario.defaultTrials ?? 5);
  if (!Number.isInteger(n) || n < 1 || n > 100)
    fail(`--trials must be a whole number from 1 to 100 (got "${values.trials}").`);
  const nodes = Number(values.nodes);
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > 9)
    fail(`--nodes must be a whole number from 2 to 9 (got "${values.nodes}"): a failover needs a replica.`);
  setTrialClusterDefaults({ nodes });
  const clusters = Number(values.clusters);
  if (!Number.isInteger(clusters) || clusters < 1 || clusters > 60)
    fail(
      `--clusters must be a whole number from 1 to 60 (got "${values.clusters}"): each is ${nodes} mariadbd.`,
    );
  const shards = Number(values.shards);
  if (!Number.isInteger(shards) || shards < 1 || shards > clusters)
    fail(`--shards must be a whole number from 1 to --clusters (got "${values.shards}").`);
  const trialOpts = { provider: values.provider, log, force: values.force, clusters, shards };
  const expectations = scenario.expect?.(trialOpts);

  const trials: Trial[] = [];
  for (let i = 0; i < n; i++) {
    let t: Trial;
    try {
      t = await scenario.run({ ...trialOpts, trial: i + 1 });
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
    const unmet = unmetExpectations(t, expectations);
    if (expectations) t.ok = unmet.length === 0;
    t.expectationsMet = unmet.length === 0;
    if (unmet.length > 0) t.unmet = unmet;
    trials.push(t);
    log(
      `trial ${i + 1}/${n}: ${t.ok ? 'ok' : 'FAILED'} detect ${t.detectMs} ms, promote ${t.promoteMs} ms, vip ${t.vipMs} ms, rto ${t.rtoMs} ms, acked ${t.ackedWrites}, lost ${t.ackedLost}, failovers ${t.failovers}${t.error ? `, error: ${t.error}` : ''}${unmet.length > 0 ? `; UNMET: ${unmet.join('; ')}` : ''}`,
    );
  }
  const pick = (k: keyof Trial) => trials.flatMap((t) => (typeof t[k] === 'number' ? [t[k] as number] : []));
  const rtos = pick('rtoMs');
  const detects = pick('detectMs');
  const vips = pick('vipMs');
  const failovers = trials.reduce((s, t) => s + t.failovers, 0);
  const summary = {
    rtoP50Ms: percentile(rtos, 50),
    rtoMaxMs: rtos.length ? Math.max(...rtos) : null,
    detectP50Ms: percentile(detects, 50),
    detectMaxMs: detects.length ? Math.max(...detects) : null,
    vipP50Ms: percentile(vips, 50),
    vipMaxMs: vips.length ? Math.max(...vips) : null,
    ackedLost: trials.reduce((s, t) => s + t.ackedLost, 0),
    failovers,
    falseFailovers: scenario.expectFailover
      ? trials.reduce((s, t) => s + Math.max(0, t.failovers - 1), 0)
      : failovers,
    okTrials: trials.filter((t) => t.ok).length,
    ...sumFields(trials, ['oldPrimaryAcksAfterPromotion', 'stuckInProgress', 'failoverAttempts']),
    writableP50Ms: percentile(pick('writableMs'), 50),
    writableMaxMs: pick('writableMs').length ? Math.max(...pick('writableMs')) : null,
    runtime,
    initMsP50: percentile(pick('initMs'), 50),
    coldStarts: runtime === 'packaged' ? trials.reduce((s, t) => s + Number(t.coldStarts ?? 0), 0) : null,
    startP50Ms: percentile(pick('startMs'), 50),
    stepP50Ms: stepPercentiles(trials),
    ...(scenario.summarize?.(trials) ?? {}),
    expected: expectations ?? 'every trial ok',
    expectationsMet: trials.every((t) => t.expectationsMet === true),
    unmet: trials.flatMap((t, i) =>
      ((t.unmet as string[] | undefined) ?? []).map((u) => `trial ${i + 1}: ${u}`),
    ),
  };
  const verdict = summary.expectationsMet
    ? `${scenario.name}: expectations MET in all ${n} trials`
    : `${scenario.name}: expectations NOT MET: ${summary.unmet.join('; ')}`;
  log(verdict);
  const result = {
    scenario: scenario.name,
    provider: values.provider,
    latency,
    nodes,
    runtime,
    ...(runtime === 'packaged' ? { cold: values.cold, initCpu, memoryMb } : {}),
    ...(values.force ? { force: true } : {}),
    verdict,
    trials,
    summary,
  };
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    const cols = [
      'detectMs',
      'promoteMs',
      'vipMs',
      'rtoMs',
      'ackedWrites',
      'ackedLost',
      'failovers',
      'coldStarts',
      'initMs',
      'startMs',
      ...(['writableMs', 'oldPrimaryAcksAfterPromotion', 'stuckInProgress'] as const).filter((c) =>
        trials.some((t) => c in t),
      ),
    ];
    const head = ['#', 'ok', ...cols];
    const rows = trials.map((t, i) => [
      String(i + 1),
      t.ok ? 'yes' : 'NO',
      ...cols.map((c) => (t[c] === null || t[c] === undefined ? '-' : String(t[c]))),
    ]);
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const fmt = (r: string[]) => r.map((v, i) => v.padStart(w[i] ?? 0)).join('  ');
    console.log(
      `scenario ${scenario.name} (${scenario.description}), provider ${values.provider}, latency ${latency}, runtime ${runtime}${runtime === 'packaged' ? ` (${values.cold ? 'cold' : 'warm-up ping'}, init CPU ${initCpu}${Object.keys(memoryMb).length ? `, memory ${JSON.stringify(memoryMb)}` : ''})` : ''}, ${nodes} nodes, ${n} trials`,
    );
    console.log(fmt(head));
    for (const r of rows) console.log(fmt(r));
    console.log(
      `summary: ${Object.entries(summary)
        .map(([k, v]) => `${k} ${typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`)
        .join(', ')}`,
    );
    console.log(verdict);
  }
  process.exit(summary.expectationsMet && trials.every((t) => t.ok) ? 0 : 1);
}

/** Per-field sums over the trials that report the field (absent: not part of this scenario). */
function sumFields(trials: Trial[], fields: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of fields) {
    const values = trials.flatMap((t) => (typeof t[f] === 'number' ? [t[f] as number] : []));
    if (values.length > 0) out[f] = values.reduce((a, b) => a + b, 0);
  }
  return out;
}

/** p50 of each step's duration over the trials that ran it. */
function stepPercentiles(trials: Trial[]): Record<string, number | null> {
  const byStep: Record<string, number[]> = {};
  for (const t of trials)
    for (const [name, ms] of Object.entries((t.stepsMs ?? {}) as Record<string, number>))
      byStep[name] = [...(byStep[name] ?? []), ms];
  return Object.fromEntries(Object.entries(byStep).map(([k, v]) => [k, percentile(v, 50)]));
}

await main();
