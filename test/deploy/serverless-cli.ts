import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT, packagingTmpDir } from '../../infra/local-cloud/packaged-functions.ts';

export interface CliResult {
  code: number | null;
  output: string;
}

/**
 * Runs the project's `serverless` (osls) with `args`, offline and without AWS credentials, so a
 * command that reached AWS would fail on credentials rather than deploy anything.
 */
export function runServerless(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const tmp = packagingTmpDir();
  return new Promise<CliResult>((resolve, reject) => {
    const child = spawn(join(PROJECT_ROOT, 'node_modules', '.bin', 'serverless'), args, {
      cwd: PROJECT_ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        SLS_TELEMETRY_DISABLED: '1',
        SLS_NOTIFICATIONS_MODE: 'off',
        AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
        AWS_CONFIG_FILE: '/nonexistent',
        ...tmp.env,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, output }));
  }).finally(tmp.cleanup);
}

/** Runs cfn-lint on a template; resolves with its exit code and output (never throws on findings). */
export function runCfnLint(template: string): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile('cfn-lint', ['--format', 'parseable', template], (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, output: `${stdout}${stderr}` });
    });
  });
}
