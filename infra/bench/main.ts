/**
 * `npm run bench -- --scenario <name> --trials N [--provider P] [--latency realistic|none] [--json]`:
 * failover trials on fresh local clusters. JSON on stdout with --json, progress always on stderr.
 * --latency realistic (default) gives the emulated provider APIs the latencies of
 * infra/local-cloud/latency-profiles.ts; none runs them as fast as they go.
 */
import { parseArgs } from 'node:util';
import { LOCAL_CLOUD_PROVIDERS, type LocalCloudProvider } from '../local-cloud/vip-provider.ts';
import { SCENARIOS } from './scenarios/index.ts';
import { percentile, setTrialCloudDefaults, type Trial } from './trial-env.ts';

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
      trials: { type: 'string', default: '5' },
      provider: { type: 'string', default: 'aws-secondary-ip' },
      latency: { type: 'string', default: 'realistic' },
      json: { type: 'boolean', default: false },
    },
  });
  const scenario = SCENARIOS[values.scenario];
  if (!scenario)
    fail(`Unknown --scenario "${values.scenario}". Available: ${Object.keys(SCENARIOS).join(', ')}.`);
  if (!PROVIDERS.includes(values.provider))
    fail(`Unknown --provider "${values.provider}". Available: ${PROVIDERS.join(', ')}.`);
  const latency = LATENCIES.find((l) => l === values.latency);
  if (!latency) fail(`Unknown --latency "${values.latency}". Available: ${LATENCIES.join(', ')}.`);
  setTrialCloudDefaults({ provider: values.provider as LocalCloudProvider, latency });
  const n = Number(values.trials);
  if (!Number.isInteger(n) || n < 1 || n > 100)
    fail(`--trials must be a whole number from 1 to 100 (got "${values.trials}").`);

  const trials: Trial[] = [];
  for (let i = 0; i < n; i++) {
    let t: Trial;
    try {
      t = await scenario.run({ provider: values.provider, log });
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
      `trial ${i + 1}/${n}: ${t.ok ? 'ok' : 'FAILED'} detect ${t.detectMs} ms, promote ${t.promoteMs} ms, vip ${t.vipMs} ms, rto ${t.rtoMs} ms, acked ${t.ackedWrites}, lost ${t.ackedLost}, failovers ${t.failovers}${t.error ? `, error: ${t.error}` : ''}`,
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
    ...(scenario.summarize?.(trials) ?? {}),
  };
  const result = { scenario: scenario.name, provider: values.provider, latency, trials, summary };
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
    ] as const;
    const head = ['#', 'ok', ...cols];
    const rows = trials.map((t, i) => [
      String(i + 1),
      t.ok ? 'yes' : 'NO',
      ...cols.map((c) => (t[c] === null || t[c] === undefined ? '-' : String(t[c]))),
    ]);
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const fmt = (r: string[]) => r.map((v, i) => v.padStart(w[i] ?? 0)).join('  ');
    console.log(
      `scenario ${scenario.name} (${scenario.description}), provider ${values.provider}, latency ${latency}, ${n} trials`,
    );
    console.log(fmt(head));
    for (const r of rows) console.log(fmt(r));
    console.log(
      `summary: ${Object.entries(summary)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
  }
  process.exit(trials.every((t) => t.ok) ? 0 : 1);
}

await main();
