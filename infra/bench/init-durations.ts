/**
 * `npm run bench:init [-- --runs N]`: the Init Duration of every packaged function (Node 22
 * start + the bundle's import, as Lambda reports it), cold N times each, unthrottled and under
 * its MemorySize's CPU limit. Needs the package (`npm run package`).
 */
import { parseArgs } from 'node:util';
import { readPackagedFunctions, unpackArtifact } from '../local-cloud/lambda-runtime/artifact.ts';
import { startLambdaRuntime } from '../local-cloud/lambda-runtime/runtime.ts';
import { ensurePackagedTemplate, PROJECT_ROOT } from '../local-cloud/packaged-functions.ts';
import { percentile } from './trial-env.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 50) {
  process.stderr.write(`--runs must be a whole number from 1 to 50 (got "${values.runs}")\n`);
  process.exit(2);
}
const template = await ensurePackagedTemplate((l) => process.stderr.write(`${l}\n`));
const fns = readPackagedFunctions(template);
const cache = `${PROJECT_ROOT}/.serverless/.local-runtime`;
const specs = fns.map((f) => ({
  id: f.id,
  functionName: f.functionName,
  codeDir: unpackArtifact(f.zipPath, cache),
  handler: f.handler,
  // No configuration: the handler fails at once; only the init is measured.
  env: { AWS_REGION: 'us-east-1' },
  timeoutMs: 10_000,
  memoryMb: f.memoryMb,
}));
console.log(
  'function                         memory  init p50 (ms) unthrottled  init p50 (ms) at its memory',
);
for (const spec of specs) {
  const row: string[] = [];
  for (const cpuLimit of [false, true]) {
    const rt = await startLambdaRuntime({ functions: [spec], cpuLimit, idleMs: 60_000 });
    const inits: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await rt.invoke(spec.id, { ping: true, source: 'init-durations' });
      if (r.report.initMs !== undefined) inits.push(r.report.initMs);
      await rt.reclaimIdle();
    }
    await rt.close();
    const p50 = percentile(inits, 50);
    row.push(
      `${p50 === null ? '-' : p50.toFixed(0)}${cpuLimit && !rt.cpuLimit.applied ? ' (limit NOT applied)' : ''}`,
    );
  }
  console.log(
    `${spec.id.padEnd(32)} ${String(spec.memoryMb).padStart(6)}  ${row[0]!.padStart(25)}  ${row[1]!.padStart(27)}`,
  );
}
