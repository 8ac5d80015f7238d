import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ExecutionError,
  ExecutionTimeoutError,
  type RunOptions,
  StateMachine,
  type StateMachineDefinition,
  type StateMachineOptions,
} from 'aws-local-stepfunctions';
import { collectTaskResources } from './packaged-template.ts';

/** A local stand-in for the Lambda function behind a Task state. Receives and returns JSON. */
export type TaskHandler = (input: unknown) => Promise<unknown>;

type Overrides = NonNullable<RunOptions['overrides']>;

/** One state machine served by the endpoint. */
export interface SfnStateMachineSpec {
  /** State machine name; its ARN is `arn:aws:states:<region>:<account>:stateMachine:<name>`. */
  name: string;
  /** Amazon States Language definition with string `Resource`s (see loadPackagedStateMachines). */
  definition: object;
  /** Task STATE NAME -> handler. Every Task state, nested ones included, needs one. */
  taskHandlers: Record<string, TaskHandler>;
  /** Shorten Wait states / retry intervals (milliseconds, by state name); real durations otherwise. */
  waitTimeOverrides?: Overrides['waitTimeOverrides'];
  retryIntervalOverrides?: Overrides['retryIntervalOverrides'];
  /**
   * The execution-level timeout in ms; default the definition's `TimeoutSeconds`. Tests shorten it
   * to reach a TIMED_OUT execution in seconds; the endpoint enforces it either way.
   */
  executionTimeoutMs?: number;
  validationOptions?: NonNullable<StateMachineOptions['validationOptions']>;
}

export interface StartSfnEndpointOptions {
  /** 0 or absent: an ephemeral port. */
  port?: number;
  /** Defaults to 127.0.0.1; keep it on loopback. */
  host?: string;
  stateMachines: SfnStateMachineSpec[];
  region?: string;
  accountId?: string;
  log?: (line: string) => void;
  /**
   * Receives every execution status change (RUNNING, then how it ended) as the
   * "Step Functions Execution Status Change" event Step Functions publishes to EventBridge.
   */
  onStatusChange?: (event: ExecutionStatusChangeEvent) => void;
}

/** The EventBridge event Step Functions publishes on each execution status change (its real shape). */
export interface ExecutionStatusChangeEvent {
  version: '0';
  id: string;
  'detail-type': 'Step Functions Execution Status Change';
  source: 'aws.states';
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: {
    executionArn: string;
    stateMachineArn: string;
    name: string;
    status: ExecutionStatus;
    /** Epoch milliseconds. */
    startDate: number;
    stopDate: number | null;
    input: string;
    inputDetails: { included: boolean };
    output: string | null;
    outputDetails: { included: boolean } | null;
    error: string | null;
    cause: string | null;
  };
}

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

/** One visit of a state, as the execution walked the definition. */
export interface StateVisit {
  name: string;
  type: string;
  /** Map iteration index, for states inside a Map. */
  iteration: number | undefined;
  enteredAt: Date;
  exitedAt: Date | undefined;
  /** 1 + the number of retries. */
  attempts: number;
  /** Errors the state raised, in order (retried, caught or final). */
  errors: Array<{ error: string; cause: string }>;
  /** `caught`: a Catch routed the error onwards; `failed`: the error ended the execution. */
  outcome: 'running' | 'exited' | 'caught' | 'failed';
}

export interface ExecutionRecord {
  executionArn: string;
  stateMachineArn: string;
  stateMachineName: string;
  name: string;
  status: ExecutionStatus;
  /** The input JSON string as StartExecution received it. */
  input: string;
  /** Output JSON string once SUCCEEDED. */
  output: string | undefined;
  error: string | undefined;
  cause: string | undefined;
  startDate: Date;
  stopDate: Date | undefined;
  /** States in the order they were entered: the path the execution took. */
  states: StateVisit[];
}

export interface SfnEndpoint {
  /** Base URL for `new SFNClient({ endpoint: url })`. */
  url: string;
  stateMachineArn(name: string): string;
  /** Snapshots of every execution, oldest first. */
  executions(): ExecutionRecord[];
  /** Resolves with the execution once it is no longer RUNNING; rejects after timeoutMs. */
  waitForExecution(executionArn: string, timeoutMs: number): Promise<ExecutionRecord>;
  /** Aborts running executions and stops the server. */
  close(): Promise<void>;
}

type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
type EventLog = ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer E> ? E : never;

interface ServedStateMachine {
  arn: string;
  spec: SfnStateMachineSpec;
  /** The definition's TimeoutSeconds in ms; the endpoint, not the library, enforces it. */
  timeoutMs: number | undefined;
  machine: StateMachine;
  createdAt: Date;
}

interface Execution {
  record: ExecutionRecord;
  events: EventLog[];
  abort: () => void;
  done: Promise<void>;
  markDone: () => void;
}

const ERROR_NAMESPACE = 'com.amazonaws.swf.service.v2.model#';
const EXECUTION_NAME = /^[0-9A-Za-z_-]{1,80}$/;
// Shape of a SigV4 Authorization header for this service; the signature itself is not recomputed.
const SIGV4 =
  /^AWS4-HMAC-SHA256 Credential=[^/\s]+\/\d{8}\/([a-z0-9-]+)\/states\/aws4_request, ?SignedHeaders=[a-z0-9;-]+, ?Signature=[0-9a-f]{64}$/;
const MAX_REQUEST_BYTES = 1024 * 1024;

/** An error answered to the client as `{"__type": ..., "message": ...}`. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly namespaced = true,
  ) {
    super(message);
    this.name = code;
  }
}

/**
 * Starts a local AWS Step Functions endpoint speaking the AWS JSON 1.0 protocol as
 * `@aws-sdk/client-sfn` sends it, running every execution with aws-local-stepfunctions and the
 * given local task handlers (keyed by Task state name).
 *
 * Supported operations: StartExecution, DescribeExecution, ListExecutions, GetExecutionHistory,
 * StopExecution, DescribeStateMachine, ListStateMachines. StartExecution follows the service:
 * the same name and input while that execution is RUNNING returns it again without a second
 * run; a name already used otherwise (different input, or the execution has closed) is
 * `ExecutionAlreadyExists`.
 *
 * Needs the `Promise.withResolvers` polyfill (infra/polyfills.ts) loaded first on Node 20.
 *
 * @throws Error before listening if a definition is invalid, a name is duplicated or a Task
 *   state has no handler (all missing state names are listed).
 */
export async function startSfnEndpoint(opts: StartSfnEndpointOptions): Promise<SfnEndpoint> {
  const region = opts.region ?? 'us-east-1';
  const accountId = opts.accountId ?? '000000000000';
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? (() => {});
  const publish = (record: ExecutionRecord): void => {
    if (!opts.onStatusChange) return;
    try {
      opts.onStatusChange(statusChangeEvent(record, region, accountId));
    } catch (error) {
      log(`sfn: status change listener failed: ${String(error)}`);
    }
  };
  const machines = prepareStateMachines(opts.stateMachines, region, accountId, log);
  const executions = new Map<string, Execution>();

  const operations: Record<string, (body: Record<string, unknown>) => unknown> = {
    StartExecution: (body) => startExecution(body),
    DescribeExecution: (body) => describeExecution(findExecution(body.executionArn).record),
    ListExecutions: (body) => listExecutions(body),
    GetExecutionHistory: (body) => getExecutionHistory(body),
    StopExecution: (body) => stopExecution(body),
    DescribeStateMachine: (body) => describeStateMachine(findStateMachine(body.stateMachineArn)),
    ListStateMachines: () => ({
      stateMachines: [...machines.values()].map((m) => ({
        stateMachineArn: m.arn,
        name: m.spec.name,
        type: 'STANDARD',
        creationDate: epochSeconds(m.createdAt),
      })),
    }),
  };

  function findStateMachine(arn: unknown): ServedStateMachine {
    const value = requireString(arn, 'stateMachineArn');
    if (!value.startsWith('arn:')) throw new ApiError(400, 'InvalidArn', `Invalid Arn: '${value}'`);
    const found = machines.get(value);
    if (found === undefined) {
      throw new ApiError(400, 'StateMachineDoesNotExist', `State Machine Does Not Exist: '${value}'`);
    }
    return found;
  }

  function findExecution(arn: unknown): Execution {
    const value = requireString(arn, 'executionArn');
    if (!value.startsWith('arn:')) throw new ApiError(400, 'InvalidArn', `Invalid Arn: '${value}'`);
    const found = executions.get(value);
    if (found === undefined) {
      throw new ApiError(400, 'ExecutionDoesNotExist', `Execution Does Not Exist: '${value}'`);
    }
    return found;
  }

  function startExecution(body: Record<string, unknown>): unknown {
    const served = findStateMachine(body.stateMachineArn);
    const name = body.name === undefined ? randomUUID() : requireString(body.name, 'name');
    if (!EXECUTION_NAME.test(name)) throw new ApiError(400, 'InvalidName', `Invalid Name: '${name}'`);
    const input = body.input === undefined ? '{}' : requireString(body.input, 'input');
    let parsedInput: JsonValue;
    try {
      parsedInput = JSON.parse(input) as JsonValue;
    } catch {
      throw new ApiError(400, 'InvalidExecutionInput', `Invalid State Machine Execution Input: '${input}'`);
    }
    const executionArn = `arn:aws:states:${region}:${accountId}:execution:${served.spec.name}:${name}`;
    const existing = executions.get(executionArn);
    if (existing !== undefined) {
      // The service answers a retried StartExecution idempotently only while that execution runs.
      if (existing.record.status === 'RUNNING' && existing.record.input === input) {
        return { executionArn, startDate: epochSeconds(existing.record.startDate) };
      }
      throw new ApiError(400, 'ExecutionAlreadyExists', `Execution Already Exists: '${executionArn}'`);
    }
    const execution = runExecution(served, executionArn, name, input, parsedInput);
    executions.set(executionArn, execution);
    log(`sfn: started ${served.spec.name}/${name}`);
    publish(execution.record);
    return { executionArn, startDate: epochSeconds(execution.record.startDate) };
  }

  function runExecution(
    served: ServedStateMachine,
    executionArn: string,
    name: string,
    input: string,
    parsedInput: JsonValue,
  ): Execution {
    const record: ExecutionRecord = {
      executionArn,
      stateMachineArn: served.arn,
      stateMachineName: served.spec.name,
      name,
      status: 'RUNNING',
      input,
      output: undefined,
      error: undefined,
      cause: undefined,
      startDate: new Date(),
      stopDate: undefined,
      states: [],
    };
    const overrides: Overrides = { taskResourceLocalHandlers: wrapHandlers(served.spec.taskHandlers) };
    if (served.spec.waitTimeOverrides) overrides.waitTimeOverrides = served.spec.waitTimeOverrides;
    if (served.spec.retryIntervalOverrides)
      overrides.retryIntervalOverrides = served.spec.retryIntervalOverrides;
    const run = served.machine.run(parsedInput, {
      overrides,
      context: {
        Execution: { Id: executionArn, Name: name, RoleArn: roleArn(served.spec.name) },
        StateMachine: { Id: served.arn, Name: served.spec.name },
      },
    });
    let markDone!: () => void;
    const done = new Promise<void>((resolve) => {
      markDone = resolve;
    });
    const execution: Execution = {
      record,
      events: [],
      abort: () => {
        clearTimeout(timeout);
        run.abort();
      },
      done,
      markDone,
    };
    const drained = (async () => {
      for await (const event of run.eventLogs) {
        execution.events.push(event);
        applyEvent(record, event);
      }
    })();
    const settle = async (update: Partial<ExecutionRecord>): Promise<void> => {
      // The library resolves its result before the last events are read; wait for them briefly.
      await Promise.race([drained, delay(1000)]);
      if (record.status !== 'RUNNING') return; // already stopped by StopExecution or close()
      Object.assign(record, update, { stopDate: new Date() });
      for (const visit of record.states) if (visit.outcome === 'running') visit.outcome = 'failed';
      log(`sfn: ${served.spec.name}/${name} ${record.status}: ${formatExecutionPath(record)}`);
      clearTimeout(timeout);
      markDone();
      publish(record);
    };
    // The execution-level TimeoutSeconds, as the service applies it: the execution ends TIMED_OUT
    // wherever it is, no Catch runs, and a task already running is not stopped (a Lambda runs on).
    const timeoutMs = served.spec.executionTimeoutMs ?? served.timeoutMs;
    const timeout =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            if (record.status !== 'RUNNING') return;
            Object.assign(record, {
              status: 'TIMED_OUT',
              stopDate: new Date(),
              error: 'States.Timeout',
              cause: `The execution timed out after ${timeoutMs} ms`,
            });
            for (const visit of record.states) if (visit.outcome === 'running') visit.outcome = 'failed';
            run.abort();
            log(`sfn: ${served.spec.name}/${name} TIMED_OUT: ${formatExecutionPath(record)}`);
            markDone();
            publish(record);
          }, timeoutMs);
    timeout?.unref();
    run.result.then(
      (output) => settle({ status: 'SUCCEEDED', output: JSON.stringify(output ?? null) }),
      (error: unknown) => settle(failureOf(error)),
    );
    return execution;
  }

  function stopExecution(body: Record<string, unknown>): unknown {
    const execution = findExecution(body.executionArn);
    const { record } = execution;
    if (record.status === 'RUNNING') {
      record.status = 'ABORTED';
      record.stopDate = new Date();
      record.error = body.error === undefined ? undefined : requireString(body.error, 'error');
      record.cause = body.cause === undefined ? undefined : requireString(body.cause, 'cause');
      // As the service does: the execution ends here, no Catch runs, a running task is not waited for.
      execution.abort();
      execution.markDone();
      log(`sfn: ${record.stateMachineName}/${record.name} ABORTED: ${formatExecutionPath(record)}`);
      publish(record);
    }
    return { stopDate: epochSeconds(record.stopDate ?? new Date()) };
  }

  function listExecutions(body: Record<string, unknown>): unknown {
    const served = findStateMachine(body.stateMachineArn);
    const statusFilter =
      body.statusFilter === undefined ? undefined : requireString(body.statusFilter, 'statusFilter');
    const matching = [...executions.values()]
      .map((e) => e.record)
      .filter(
        (r) => r.stateMachineArn === served.arn && (statusFilter === undefined || r.status === statusFilter),
      )
      .reverse(); // newest first, as the service lists them
    const { items, nextToken } = paginate(matching, body.maxResults, body.nextToken);
    return {
      executions: items.map((r) => ({
        executionArn: r.executionArn,
        stateMachineArn: r.stateMachineArn,
        name: r.name,
        status: r.status,
        startDate: epochSeconds(r.startDate),
        ...(r.stopDate ? { stopDate: epochSeconds(r.stopDate) } : {}),
      })),
      ...(nextToken ? { nextToken } : {}),
    };
  }

  function getExecutionHistory(body: Record<string, unknown>): unknown {
    const execution = findExecution(body.executionArn);
    const includeData = body.includeExecutionData !== false;
    const events = toHistoryEvents(execution.events, roleArn(execution.record.stateMachineName), includeData);
    if (body.reverseOrder === true) events.reverse();
    const { items, nextToken } = paginate(events, body.maxResults, body.nextToken);
    return { events: items, ...(nextToken ? { nextToken } : {}) };
  }

  function describeStateMachine(served: ServedStateMachine): unknown {
    return {
      stateMachineArn: served.arn,
      name: served.spec.name,
      status: 'ACTIVE',
      definition: JSON.stringify(served.spec.definition),
      roleArn: roleArn(served.spec.name),
      type: 'STANDARD',
      creationDate: epochSeconds(served.createdAt),
    };
  }

  function roleArn(stateMachineName: string): string {
    return `arn:aws:iam::${accountId}:role/${stateMachineName}-role`;
  }

  const server = createServer((req, res) => {
    handleRequest(req, res, region, operations).catch((error: unknown) => {
      log(`sfn: internal error: ${String(error)}`);
      if (!res.headersSent) sendError(res, new ApiError(500, 'InternalServerError', 'Internal error', false));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log(`sfn: listening on ${url} with ${[...machines.values()].map((m) => m.spec.name).join(', ')}`);

  return {
    url,
    stateMachineArn(name) {
      return stateMachineArnOf(region, accountId, name);
    },
    executions() {
      return [...executions.values()].map((e) => structuredClone(e.record));
    },
    async waitForExecution(executionArn, timeoutMs) {
      const execution = executions.get(executionArn);
      if (execution === undefined) throw new Error(`No execution ${executionArn} on this endpoint`);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Execution ${executionArn} still RUNNING after ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      try {
        await Promise.race([execution.done, timeout]);
      } finally {
        clearTimeout(timer);
      }
      return structuredClone(execution.record);
    },
    async close() {
      for (const execution of executions.values()) {
        if (execution.record.status !== 'RUNNING') continue;
        Object.assign(execution.record, {
          status: 'ABORTED',
          stopDate: new Date(),
          error: 'States.Aborted',
          cause: 'The local Step Functions endpoint was closed',
        });
        execution.abort();
        execution.markDone();
      }
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function statusChangeEvent(
  record: ExecutionRecord,
  region: string,
  accountId: string,
): ExecutionStatusChangeEvent {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Step Functions Execution Status Change',
    source: 'aws.states',
    account: accountId,
    time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region,
    resources: [record.executionArn],
    detail: {
      executionArn: record.executionArn,
      stateMachineArn: record.stateMachineArn,
      name: record.name,
      status: record.status,
      startDate: record.startDate.getTime(),
      stopDate: record.stopDate ? record.stopDate.getTime() : null,
      input: record.input,
      inputDetails: { included: true },
      output: record.output ?? null,
      outputDetails: record.output === undefined ? null : { included: true },
      error: record.error ?? null,
      cause: record.cause ?? null,
    },
  };
}

function describeExecution(record: ExecutionRecord): unknown {
  return {
    executionArn: record.executionArn,
    stateMachineArn: record.stateMachineArn,
    name: record.name,
    status: record.status,
    startDate: epochSeconds(record.startDate),
    ...(record.stopDate ? { stopDate: epochSeconds(record.stopDate) } : {}),
    input: record.input,
    inputDetails: { included: true },
    ...(record.output === undefined ? {} : { output: record.output, outputDetails: { included: true } }),
    ...(record.error === undefined ? {} : { error: record.error }),
    ...(record.cause === undefined ? {} : { cause: record.cause }),
    redriveCount: 0,
  };
}

/**
 * The states an execution entered, in order, for logs: `ProbeNode (3 attempts) -> Report (caught)`.
 */
export function formatExecutionPath(record: Pick<ExecutionRecord, 'states'>): string {
  return record.states
    .map((visit) => {
      const notes: string[] = [];
      if (visit.iteration !== undefined) notes.push(`#${visit.iteration}`);
      if (visit.attempts > 1) notes.push(`${visit.attempts} attempts`);
      if (visit.outcome !== 'exited') notes.push(visit.outcome);
      return notes.length > 0 ? `${visit.name} (${notes.join(', ')})` : visit.name;
    })
    .join(' -> ');
}

function prepareStateMachines(
  specs: SfnStateMachineSpec[],
  region: string,
  accountId: string,
  log: (line: string) => void,
): Map<string, ServedStateMachine> {
  const problems: string[] = [];
  const machines = new Map<string, ServedStateMachine>();
  for (const spec of specs) {
    if (!/^[0-9A-Za-z_-]{1,80}$/.test(spec.name)) {
      problems.push(`state machine name '${spec.name}' is invalid`);
      continue;
    }
    const arn = stateMachineArnOf(region, accountId, spec.name);
    if (machines.has(arn)) {
      problems.push(`state machine '${spec.name}' is given twice`);
      continue;
    }
    let machine: StateMachine;
    try {
      const options: StateMachineOptions = spec.validationOptions
        ? { validationOptions: spec.validationOptions }
        : {};
      // Without TimeoutSeconds: the endpoint applies it itself (shortened on request, and with
      // the status change the service publishes).
      const { TimeoutSeconds: _timeout, ...definition } = spec.definition as { TimeoutSeconds?: number };
      machine = new StateMachine(definition as StateMachineDefinition, options);
    } catch (error) {
      problems.push(
        `state machine '${spec.name}': ${error instanceof Error ? error.message : String(error)}`,
      );
      continue;
    }
    const taskStates = Object.keys(collectTaskResources(spec.definition));
    const missing = taskStates.filter((state) => typeof spec.taskHandlers[state] !== 'function');
    if (missing.length > 0) {
      problems.push(
        `state machine '${spec.name}' has no task handler for Task state(s): ${missing.join(', ')}`,
      );
    }
    const unused = Object.keys(spec.taskHandlers).filter((state) => !taskStates.includes(state));
    if (unused.length > 0) log(`sfn: ${spec.name}: handlers for no Task state: ${unused.join(', ')}`);
    const seconds = (spec.definition as { TimeoutSeconds?: unknown }).TimeoutSeconds;
    const timeoutMs = typeof seconds === 'number' ? seconds * 1000 : undefined;
    machines.set(arn, { arn, spec, machine, createdAt: new Date(), timeoutMs });
  }
  if (problems.length > 0)
    throw new Error(`Cannot start the Step Functions endpoint: ${problems.join('; ')}`);
  return machines;
}

// A Lambda task sees JSON in and out, and reports an error as {errorType, errorMessage, trace}
// in the Cause, which is what a Catch's ResultPath receives on AWS. Keep the name for Retry/Catch.
function wrapHandlers(
  handlers: Record<string, TaskHandler>,
): NonNullable<Overrides['taskResourceLocalHandlers']> {
  const wrapped: NonNullable<Overrides['taskResourceLocalHandlers']> = {};
  for (const [stateName, handler] of Object.entries(handlers)) {
    wrapped[stateName] = async (input) => {
      let output: unknown;
      try {
        output = await handler(JSON.parse(JSON.stringify(input ?? null)));
      } catch (error) {
        throw toLambdaError(error);
      }
      return JSON.parse(JSON.stringify(output ?? null)) as JsonValue;
    };
  }
  return wrapped;
}

function toLambdaError(error: unknown): Error {
  const original = error instanceof Error ? error : new Error(String(error));
  const payload = {
    errorType: original.name,
    errorMessage: original.message,
    trace: (original.stack ?? '').split('\n').map((line) => line.trim()),
  };
  const lambdaError = new Error(JSON.stringify(payload), { cause: original });
  lambdaError.name = original.name;
  return lambdaError;
}

function failureOf(error: unknown): Partial<ExecutionRecord> {
  if (error instanceof ExecutionTimeoutError) {
    return { status: 'TIMED_OUT', error: 'States.Timeout', cause: 'The execution timed out' };
  }
  const reason = error instanceof ExecutionError && error.cause instanceof Error ? error.cause : error;
  if (reason instanceof Error) return { status: 'FAILED', error: reason.name, cause: reason.message };
  return { status: 'FAILED', error: 'States.Runtime', cause: String(reason) };
}

function applyEvent(record: ExecutionRecord, event: EventLog): void {
  if (!('state' in event)) return;
  const at = new Date(event.timestamp);
  const iteration = event.index;
  const open = (): StateVisit | undefined =>
    record.states.findLast(
      (v) => v.name === event.state.name && v.iteration === iteration && v.exitedAt === undefined,
    );
  switch (event.type) {
    case 'StateEntered':
      record.states.push({
        name: event.state.name,
        type: event.state.type,
        iteration,
        enteredAt: at,
        exitedAt: undefined,
        attempts: 1,
        errors: [],
        outcome: 'running',
      });
      break;
    case 'StateFailed':
      open()?.errors.push({ error: event.Error, cause: describeCause(event.Cause) });
      break;
    case 'StateRetried': {
      const visit = open();
      if (visit) visit.attempts += 1;
      break;
    }
    case 'StateCaught': {
      const visit = open();
      if (visit) visit.outcome = 'caught';
      break;
    }
    case 'StateExited': {
      const visit = open();
      if (visit) {
        visit.exitedAt = at;
        if (visit.outcome === 'running') visit.outcome = 'exited';
      }
      break;
    }
  }
}

const HISTORY_STATE_TYPES: Record<string, string> = {
  Task: 'Task',
  Choice: 'Choice',
  Wait: 'Wait',
  Pass: 'Pass',
  Succeed: 'Succeed',
  Fail: 'Fail',
  Parallel: 'Parallel',
  Map: 'Map',
};

// Translates the library's event log into the service's HistoryEvent shapes (the subset that
// says which states ran, when, and how the execution ended).
function toHistoryEvents(events: EventLog[], role: string, includeData: boolean): Record<string, unknown>[] {
  const history: Record<string, unknown>[] = [];
  const data = (value: unknown) => (includeData ? { ...jsonField(value) } : {});
  const push = (type: string, timestamp: number, details: Record<string, unknown>) => {
    const id = history.length + 1;
    history.push({ timestamp: timestamp / 1000, type, id, previousEventId: id - 1, ...details });
  };
  for (const event of events) {
    switch (event.type) {
      case 'ExecutionStarted':
        push('ExecutionStarted', event.timestamp, {
          executionStartedEventDetails: { ...withKey('input', data(event.input)), roleArn: role },
        });
        break;
      case 'StateEntered':
        push(`${HISTORY_STATE_TYPES[event.state.type] ?? 'Pass'}StateEntered`, event.timestamp, {
          stateEnteredEventDetails: { name: event.state.name, ...withKey('input', data(event.state.input)) },
        });
        break;
      case 'StateExited':
        push(`${HISTORY_STATE_TYPES[event.state.type] ?? 'Pass'}StateExited`, event.timestamp, {
          stateExitedEventDetails: { name: event.state.name, ...withKey('output', data(event.state.output)) },
        });
        break;
      case 'StateFailed':
        if (event.state.type === 'Task') {
          push('TaskFailed', event.timestamp, {
            taskFailedEventDetails: {
              resourceType: 'lambda',
              resource: 'invoke',
              error: event.Error,
              cause: describeCause(event.Cause),
            },
          });
        }
        break;
      case 'MapIterationStarted':
      case 'MapIterationSucceeded':
      case 'MapIterationFailed': {
        const key = `mapIteration${event.type.slice('MapIteration'.length)}EventDetails`;
        push(event.type, event.timestamp, { [key]: { name: event.parentState.name, index: event.index } });
        break;
      }
      case 'ExecutionSucceeded':
        push('ExecutionSucceeded', event.timestamp, {
          executionSucceededEventDetails: withKey('output', data(event.output)),
        });
        break;
      case 'ExecutionFailed':
        push('ExecutionFailed', event.timestamp, {
          executionFailedEventDetails: { error: event.Error, cause: describeCause(event.Cause) },
        });
        break;
      case 'ExecutionAborted':
        push('ExecutionAborted', event.timestamp, { executionAbortedEventDetails: {} });
        break;
      case 'ExecutionTimeout':
        push('ExecutionTimedOut', event.timestamp, {
          executionTimedOutEventDetails: { error: 'States.Timeout' },
        });
        break;
      default:
        break;
    }
  }
  return history;
}

function jsonField(value: unknown): { value?: string } {
  return value === undefined ? {} : { value: JSON.stringify(value) };
}

function withKey(key: string, field: { value?: string }): Record<string, unknown> {
  return field.value === undefined ? {} : { [key]: field.value, [`${key}Details`]: { truncated: false } };
}

function describeCause(cause: unknown): string {
  if (typeof cause === 'string') return cause;
  if (cause instanceof Error) return cause.message;
  return JSON.stringify(cause) ?? '';
}

async function handleRequest(
  req: IncomingMessage,
  res: ServerResponse,
  region: string,
  operations: Record<string, (body: Record<string, unknown>) => unknown>,
): Promise<void> {
  const raw = await readBody(req);
  try {
    if (req.method !== 'POST')
      throw new ApiError(400, 'UnknownOperationException', 'Only POST is served', false);
    checkAuthorization(req, region);
    const target = req.headers['x-amz-target'];
    const operation = typeof target === 'string' ? target.replace(/^AWSStepFunctions\./, '') : '';
    const run =
      typeof target === 'string' && target.startsWith('AWSStepFunctions.')
        ? operations[operation]
        : undefined;
    if (run === undefined) {
      throw new ApiError(400, 'UnknownOperationException', `Unknown operation ${String(target)}`, false);
    }
    const contentType = req.headers['content-type'] ?? '';
    if (!contentType.startsWith('application/x-amz-json-1.0')) {
      throw new ApiError(400, 'SerializationException', `Unexpected Content-Type '${contentType}'`, false);
    }
    let body: unknown;
    try {
      body = raw.length === 0 ? {} : JSON.parse(raw);
    } catch {
      throw new ApiError(400, 'SerializationException', 'The request body is not valid JSON', false);
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new ApiError(400, 'SerializationException', 'The request body must be a JSON object', false);
    }
    sendJson(res, 200, run(body as Record<string, unknown>));
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    sendError(res, error);
  }
}

function checkAuthorization(req: IncomingMessage, region: string): void {
  const header = req.headers.authorization;
  if (header === undefined) {
    throw new ApiError(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token', false);
  }
  const match = SIGV4.exec(header);
  if (match === null || req.headers['x-amz-date'] === undefined) {
    throw new ApiError(400, 'IncompleteSignatureException', 'Malformed SigV4 Authorization header', false);
  }
  if (match[1] !== region) {
    throw new ApiError(
      403,
      'InvalidSignatureException',
      `Credential should be scoped to a valid region, not '${match[1]}'`,
      false,
    );
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_REQUEST_BYTES) throw new Error('Request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res: ServerResponse, status: number, payload: unknown): void {
  const text = JSON.stringify(payload ?? {});
  res.writeHead(status, {
    'Content-Type': 'application/x-amz-json-1.0',
    'Content-Length': Buffer.byteLength(text),
    'x-amzn-RequestId': randomUUID(),
  });
  res.end(text);
}

function sendError(res: ServerResponse, error: ApiError): void {
  const type = error.namespaced ? `${ERROR_NAMESPACE}${error.code}` : error.code;
  sendJson(res, error.status, { __type: type, message: error.message });
}

function requireString(value: unknown, field: string): string {
  if (typeof value !== 'string') {
    throw new ApiError(
      400,
      'ValidationException',
      `1 validation error detected: '${field}' must be a string`,
    );
  }
  return value;
}

function paginate<T>(items: T[], maxResults: unknown, token: unknown): { items: T[]; nextToken?: string } {
  const limit = typeof maxResults === 'number' && maxResults > 0 ? Math.min(maxResults, 1000) : 100;
  let offset = 0;
  if (token !== undefined) {
    offset = Number.parseInt(Buffer.from(requireString(token, 'nextToken'), 'base64url').toString(), 10);
    if (!Number.isInteger(offset) || offset < 0) throw new ApiError(400, 'InvalidToken', 'Invalid Token');
  }
  const page = items.slice(offset, offset + limit);
  const next = offset + limit;
  return next < items.length
    ? { items: page, nextToken: Buffer.from(String(next)).toString('base64url') }
    : { items: page };
}

function stateMachineArnOf(region: string, accountId: string, name: string): string {
  return `arn:aws:states:${region}:${accountId}:stateMachine:${name}`;
}

function epochSeconds(date: Date): number {
  return date.getTime() / 1000;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
