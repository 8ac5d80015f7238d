import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPackagedFunctions, unpackArtifact } from '../../infra/local-cloud/lambda-runtime/artifact.ts';
import {
  type LambdaFunctionSpec,
  type LambdaRuntime,
  probeCgroupCpu,
  quotaUs,
  startLambdaRuntime,
} from '../../infra/local-cloud/lambda-runtime/runtime.ts';
import { ensurePackagedTemplate, PROJECT_ROOT } from '../../infra/local-cloud/packaged-functions.ts';

// Small handlers in the shape of the bundles (ESM, `export const handler`).
const FIXTURES: Record<string, string> = {
  'echo.mjs': `
    const loadedAt = Date.now();
    export const handler = async (event, context) => ({
      event, pid: process.pid, node: process.version, loadedAt,
      requestId: context.awsRequestId, remainingMs: context.getRemainingTimeInMillis(),
      memory: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, custom: process.env.CUSTOM,
      cgroup: (await import('node:fs')).readFileSync('/proc/self/cgroup', 'utf8'),
    });`,
  'typed-error.mjs': `
    class StaleEpochError extends Error { constructor(m) { super(m); this.name = new.target.name; } }
    export const handler = async () => { throw new StaleEpochError('epoch 3 is not 4'); };`,
  // A hung query keeps a socket open; an interval stands in for it.
  'hang.mjs': `export const handler = () => new Promise(() => setInterval(() => {}, 1000));`,
  'broken.mjs': `throw new Error('broken at import'); export const handler = async () => 1;`,
  // A bundle whose split-off chunk is missing from the zip.
  'lost-chunk.mjs': `import './lost-chunk.chunks/chunk-gone.mjs'; export const handler = async () => 1;`,
  'spin.mjs': `export const handler = async ({ ms }) => {
      const end = Date.now() + ms; let n = 0; while (Date.now() < end) n++; return { n };
    };`,
};

function spec(id: string, file: string, over: Partial<LambdaFunctionSpec> = {}): LambdaFunctionSpec {
  return {
    id,
    functionName: `fixture-${id}`,
    codeDir: dir,
    handler: `${file}.handler`,
    env: { CUSTOM: 'from-template' },
    timeoutMs: 5000,
    memoryMb: 1769,
    ...over,
  };
}

let dir: string;
let runtime: LambdaRuntime;
const lines: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lambda-runtime-'));
  for (const [name, text] of Object.entries(FIXTURES)) writeFileSync(join(dir, name), text);
  runtime = await startLambdaRuntime({
    functions: [
      spec('echo', 'echo', { memoryMb: 256 }),
      spec('typed', 'typed-error'),
      spec('hang', 'hang', { timeoutMs: 1000 }),
      spec('broken', 'broken'),
      spec('missing', 'no-such-file'),
      spec('lostChunk', 'lost-chunk'),
      spec('spin128', 'spin', { memoryMb: 128 }),
      spec('spin1769', 'spin', { memoryMb: 1769 }),
      spec('reclaimed', 'echo'),
    ],
    idleMs: 60_000,
    log: (l) => lines.push(l),
  });
});

afterAll(async () => {
  await runtime?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the local Lambda runtime', () => {
  it('runs a function cold on Node 22 with its environment and context, then warm on the same instance', async () => {
    const first = await runtime.invoke('echo', { n: 1 });
    const second = await runtime.invoke('echo', { n: 2 });
    expect(first.ok && second.ok).toBe(true);
    if (!first.ok || !second.ok) return;
    const a = first.payload as Record<string, unknown>;
    const b = second.payload as Record<string, unknown>;
    expect(a.node).toMatch(/^v22\./);
    expect(a.event).toEqual({ n: 1 });
    expect(a.custom).toBe('from-template');
    expect(a.memory).toBe('256');
    expect(a.requestId).toBe(first.report.requestId);
    expect(a.remainingMs).toBeGreaterThan(3000);
    expect(a.remainingMs).toBeLessThanOrEqual(5000);
    expect(first.report.cold).toBe(true);
    expect(first.report.initMs).toBeGreaterThan(0);
    expect(second.report.cold).toBe(false);
    expect(second.report.initMs).toBeUndefined();
    expect(b.pid).toBe(a.pid);
    expect(b.loadedAt).toBe(a.loadedAt);
    expect(lines.some((l) => /REPORT fixture-echo .*Init Duration: \d+\.\d+ ms/.test(l))).toBe(true);
  });

  it('gives concurrent invocations their own instances', async () => {
    const [x, y] = await Promise.all([runtime.invoke('echo', 1), runtime.invoke('echo', 2)]);
    const pids = [x, y].map((r) => (r.ok ? (r.payload as { pid: number }).pid : 0));
    expect(pids[0]).not.toBe(pids[1]);
  });

  it('serialises an error as Lambda does: errorType from error.name, errorMessage, trace', async () => {
    const r = await runtime.invoke('typed', {});
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.errorType).toBe('StaleEpochError');
    expect(r.error.errorMessage).toBe('epoch 3 is not 4');
    expect(r.error.trace.join('\n')).toContain('typed-error.mjs');
    await expect(runtime.invokeOrThrow('typed', {})).rejects.toMatchObject({ name: 'StaleEpochError' });
  });

  it('kills a function at its Timeout and reports Sandbox.Timedout; the next invocation is cold', async () => {
    const r = await runtime.invoke('hang', {});
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.errorType).toBe('Sandbox.Timedout');
    expect(r.error.errorMessage).toMatch(/Task timed out after 1\.00 seconds/);
    // Killed at the timeout, not before it (a few ms of clock granularity between timer and Date.now).
    expect(r.report.durationMs).toBeGreaterThanOrEqual(990);
    const again = await runtime.invoke('hang', {});
    expect(again.report.cold).toBe(true);
  });

  it('fails every invocation of a module that throws at import, with the import error', async () => {
    const r = await runtime.invoke('broken', {});
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatchObject({ errorType: 'Error', errorMessage: 'broken at import' });
    const m = await runtime.invoke('missing', {});
    expect(m.ok).toBe(false);
    if (!m.ok) expect(m.error.errorType).toBe('Runtime.ImportModuleError');
    // The handler file is there but a module it imports is not: that module is named.
    const c = await runtime.invoke('lostChunk', {});
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.error.errorMessage).toContain('lost-chunk.chunks/chunk-gone.mjs');
  });

  it('reclaims idle instances', async () => {
    await runtime.invoke('reclaimed', {});
    expect(runtime.instances().some((i) => i.functionId === 'reclaimed')).toBe(true);
    await runtime.reclaimIdle();
    expect(runtime.instances().some((i) => i.functionId === 'reclaimed')).toBe(false);
    expect((await runtime.invoke('reclaimed', {})).report.cold).toBe(true);
  });
});

describe('the CPU limit', () => {
  const cg = probeCgroupCpu();

  it('says whether it is applied', () => {
    expect(runtime.cpuLimit.applied).toBe(cg.applied);
    if (!cg.applied) expect(lines.some((l) => l.includes('CPU limit NOT applied'))).toBe(true);
  });

  it.runIf(cg.applied)('puts each instance in its own cgroup with MemorySize/1769 of a CPU', async () => {
    const r = await runtime.invoke('echo', {});
    if (!r.ok) throw new Error(r.error.errorMessage);
    const path = /:cpu(?:,cpuacct)?:(\S+)/.exec((r.payload as { cgroup: string }).cgroup)?.[1] ?? '';
    expect(path).toMatch(/^\/local-lambda\/\d+-\d+-echo-\d+$/);
    const { readFileSync } = await import('node:fs');
    expect(Number(readFileSync(`/sys/fs/cgroup/cpu${path}/cpu.cfs_quota_us`, 'utf8'))).toBe(quotaUs(256));
    expect(quotaUs(256)).toBe(14471);
  });

  it.runIf(cg.applied)('throttles a 128 MB function to about 7% of a CPU', async () => {
    await runtime.invoke('spin128', { ms: 10 });
    await runtime.invoke('spin1769', { ms: 10 });
    const slow = await runtime.invoke('spin128', { ms: 1000 });
    const fast = await runtime.invoke('spin1769', { ms: 1000 });
    if (!slow.ok || !fast.ok) throw new Error('spin failed');
    const ratio = (slow.payload as { n: number }).n / (fast.payload as { n: number }).n;
    // 128/1769 = 7.2% of a CPU; the unthrottled one shares two cores with other work.
    expect(ratio).toBeLessThan(0.3);
  });

  it.runIf(cg.applied)(
    'removes the cgroup of every instance, killed at its timeout or at close',
    async () => {
      const other = await startLambdaRuntime({
        functions: [spec('echo', 'echo'), spec('hang', 'hang', { timeoutMs: 500 })],
      });
      await other.invoke('echo', {});
      expect((await other.invoke('hang', {})).ok).toBe(false);
      await other.close();
      // This file's shared runtime is the process's first (`<pid>-1-...`); nothing else may remain.
      const left = readdirSync('/sys/fs/cgroup/cpu/local-lambda').filter(
        (n) => n.startsWith(`${process.pid}-`) && !n.startsWith(`${process.pid}-1-`),
      );
      expect(left).toEqual([]);
    },
  );
});

describe('the packaged artifact', () => {
  it('runs the failover worker from its zip: error names survive minification, a ping checks the config', async () => {
    const template = await ensurePackagedTemplate();
    const fns = readPackagedFunctions(template);
    const worker = fns.find((f) => f.id === 'FailoverWorkerLambdaFunction');
    expect(worker).toBeDefined();
    if (!worker) return;
    expect(existsSync(worker.zipPath)).toBe(true);
    const codeDir = unpackArtifact(worker.zipPath, join(PROJECT_ROOT, '.serverless', '.local-runtime'));
    const rt = await startLambdaRuntime({
      functions: [
        {
          id: worker.id,
          functionName: worker.functionName,
          codeDir,
          handler: worker.handler,
          env: { FAILOVER_CONFIG: '{}', AWS_REGION: 'us-east-1' },
          timeoutMs: worker.timeoutMs,
          memoryMb: worker.memoryMb,
        },
      ],
    });
    try {
      // The warm-up ping loads the configuration, so a broken one shows before a failover needs it;
      // ConfigError keeps its class name through minification (keepNames): Retry/Catch match names.
      const ping = await rt.invoke(worker.id, { ping: true });
      expect(ping.report.cold).toBe(true);
      expect(ping.ok).toBe(false);
      if (!ping.ok) {
        expect(ping.error.errorType).toBe('ConfigError');
        expect(ping.error.errorMessage).toContain('FAILOVER_CONFIG');
      }
      const wrong = await rt.invoke(worker.id, { task: 'NoSuchState', input: {} });
      expect(wrong.report.cold).toBe(false);
      expect(wrong.ok).toBe(false);
      if (!wrong.ok) {
        expect(wrong.error.errorType).toBe('TypeError');
        expect(wrong.error.errorMessage).toContain("no Task state named 'NoSuchState'");
      }
      const begin = await rt.invoke(worker.id, { task: 'BeginFailover', input: {} });
      expect(begin.ok).toBe(false);
      if (!begin.ok) expect(begin.error.errorType).toBe('ConfigError');
    } finally {
      await rt.close();
    }
  });
});
