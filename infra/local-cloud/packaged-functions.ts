import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PACKAGED_TEMPLATE = join(
  PROJECT_ROOT,
  '.serverless',
  'cloudformation-template-update-stack.json',
);

/**
 * What the template and the zips depend on: packaging again only when one of these changed. The
 * local Lambda runtime runs the zips, so the function sources and the locked versions count too.
 */
const INPUTS = [
  'serverless.yml',
  'infra/state-machine.yml',
  'infra/switchover-state-machine.yml',
  'infra/serverless-config.cjs',
  'lib/config/deploy-settings.ts',
  'lib/config/dashboard.ts',
  'config',
  'functions',
  'lib',
  'package-lock.json',
];

function newestInput(): number {
  let newest = 0;
  const visit = (p: string) => {
    const st = statSync(p);
    newest = Math.max(newest, st.mtimeMs);
    if (st.isDirectory()) for (const e of readdirSync(p)) visit(join(p, e));
  };
  for (const rel of INPUTS) {
    const p = join(PROJECT_ROOT, rel);
    if (existsSync(p)) visit(p);
  }
  return newest;
}

/**
 * Returns the path of the template `serverless package` wrote, packaging first when it is
 * missing or older than serverless.yml / the state machine definition. The local cloud runs
 * exactly what would be deployed.
 */
export async function ensurePackagedTemplate(log: (line: string) => void = () => {}): Promise<string> {
  if (existsSync(PACKAGED_TEMPLATE) && statSync(PACKAGED_TEMPLATE).mtimeMs >= newestInput())
    return PACKAGED_TEMPLATE;
  log('packaging with `serverless package` (osls, offline) ...');
  await runServerlessPackage();
  return PACKAGED_TEMPLATE;
}

/**
 * A private TMPDIR for one `serverless package` run, removed by `cleanup()`. serverless-esbuild
 * zips each function from a directory in os.tmpdir() and never removes it (its release calls a
 * non-recursive remove on a non-empty directory): 10 directories left behind per run otherwise.
 */
export function packagingTmpDir(): { env: { TMPDIR: string }; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'smf-package-'));
  return { env: { TMPDIR: dir }, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function runServerlessPackage(): Promise<void> {
  const tmp = packagingTmpDir();
  return new Promise<void>((resolve, reject) => {
    const child = spawn(join(PROJECT_ROOT, 'node_modules', '.bin', 'serverless'), ['package'], {
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        SLS_TELEMETRY_DISABLED: '1',
        SLS_NOTIFICATIONS_MODE: 'off',
        AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
        ...tmp.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`serverless package failed (exit ${code}):\n${out.slice(-3000)}`)),
    );
  }).finally(tmp.cleanup);
}

/** One scheduled rule of a function: its rate and the constant input it sends (if any). */
export interface ScheduledRule {
  rateMs: number;
  /** The rule's `Input` (parsed), e.g. `{"shard": 1, "of": 3}`; undefined sends the scheduled event. */
  input?: unknown;
}

/**
 * The schedules (rate rules) of a function and its timeout, as packaged: the first rule's rate,
 * and every rule (a fanned-out health check has one per shard, each with its own input).
 */
export function readSchedule(
  templatePath: string,
  functionName: string,
): { rateMs: number; timeoutMs: number; rules: ScheduledRule[] } {
  const t = JSON.parse(readFileSync(templatePath, 'utf8')) as {
    Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  };
  const fnId = `${functionName}LambdaFunction`;
  const fn = t.Resources[fnId];
  if (!fn) throw new Error(`${fnId} missing from ${templatePath}`);
  const timeoutMs = Number(fn.Properties.Timeout ?? 6) * 1000;
  const rules: ScheduledRule[] = [];
  for (const r of Object.values(t.Resources)) {
    if (r.Type !== 'AWS::Events::Rule' || r.Properties.ScheduleExpression === undefined) continue;
    const targets = (r.Properties.Targets ?? []) as Array<{ Arn?: unknown; Input?: unknown }>;
    for (const target of targets) {
      if (!JSON.stringify(target.Arn ?? '').includes(`"${fnId}"`)) continue;
      const expr = String(r.Properties.ScheduleExpression);
      const m = /^rate\((\d+) (minute|minutes|hour|hours)\)$/.exec(expr);
      if (!m) throw new Error(`Schedule of ${fnId} in ${templatePath} is not a rate(): "${expr}"`);
      const rateMs = Number(m[1]) * (m[2]!.startsWith('minute') ? 60_000 : 3_600_000);
      rules.push(typeof target.Input === 'string' ? { rateMs, input: JSON.parse(target.Input) } : { rateMs });
    }
  }
  if (rules.length === 0) throw new Error(`No rate() schedule for ${fnId} in ${templatePath}`);
  return { rateMs: rules[0]!.rateMs, timeoutMs, rules };
}
