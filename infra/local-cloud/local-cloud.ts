/**
 * The local cloud: everything the functions talk to in AWS, on loopback, driven by the real
 * SDKs with only the endpoints changed (AWS_ENDPOINT_URL_<SERVICE>):
 *   - DynamoDB: dynalite, with the state table as serverless.yml declares it
 *   - the VIP, per `provider` (vip-provider.ts): EC2 secondary IP (default), EC2 route table with an
 *     overlay /32, or an Alibaba HaVip on the Alibaba VPC + ECS Cloud Assistant emulator; the EC2
 *     emulator runs in every case (one ENI per database node)
 *   - the VIP data path: a TCP forwarder following whichever node the emulated provider routes to
 *   - Step Functions: the packaged state machine run by aws-local-stepfunctions, each Task
 *     mapped to the project's own handler
 *   - EventBridge: a scheduler firing healthCheck at the packaged schedule, with the packaged timeout
 *   - Lambda: by default every function runs from the packaged zip in its own Node 22 process,
 *     CPU-limited by its MemorySize (lambda-runtime/); `runtime: 'inprocess'` calls the TypeScript
 *     handlers in this process instead (fast tests)
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { resetFailoverIntegrations } from '../../lib/failover/integrations.ts';
import { resetRuntime } from '../../lib/runtime.ts';
import type { MariaDbCluster } from '../cluster/mariadb-cluster.ts';
import type { AliyunEmulator } from './aliyun/emulator.ts';
import { type DynamoFaults, startDynamoFaultProxy } from './dynamo-fault-proxy.ts';
import { type Ec2Emulator, startEc2Emulator } from './ec2-emulator.ts';
import { type EventBridgeEmulator, startEventBridgeEmulator } from './eventbridge-emulator.ts';
import type { FaultInjector } from './fault-injection.ts';
import { type LambdaEmulator, startLambdaEmulator } from './lambda-emulator.ts';
import { type PackagedFunction, readPackagedFunctions, unpackArtifact } from './lambda-runtime/artifact.ts';
import {
  type InvocationReport,
  LambdaFunctionError,
  type LambdaRuntime,
  type LambdaRuntimeOptions,
  startLambdaRuntime,
} from './lambda-runtime/runtime.ts';
import { type LatencyMode, latencyProfile } from './latency-profiles.ts';
import {
  ensurePackagedTemplate,
  PROJECT_ROOT,
  readSchedule,
  type ScheduledRule,
} from './packaged-functions.ts';
import { loadPackagedEventRules, loadPackagedStateMachines } from './packaged-template.ts';
import { type SfnEndpoint, startSfnEndpoint } from './sfn-endpoint.ts';
import { startVipForwarder, type VipForwarder } from './vip-forwarder.ts';
import { type LocalCloudProvider, setUpVipProvider } from './vip-provider.ts';

export {
  ALIYUN_CREDENTIALS,
  HAVIP_ID,
  LOCAL_CLOUD_PROVIDERS,
  type LocalCloudProvider,
  OVERLAY_ADDRESS,
  ROUTE_TABLE_IDS,
  VIP_ADDRESS,
} from './vip-provider.ts';

export const LOCAL_CREDENTIALS = {
  accessKeyId: 'AKIALOCALCLOUD000001',
  secretAccessKey: 'local-cloud-secret-key-0000000000000000',
};
export const LOCAL_REGION = 'us-east-1';
const TABLE = 'mysql-failover-local-state';

export interface LocalCloudOptions {
  cluster: MariaDbCluster;
  clusterName?: string;
  /** Overrides of the cluster's detection/failover config (tests use shorter block periods, etc.). */
  clusterOverrides?: Record<string, unknown>;
  /** Per-node config overrides, e.g. { db1: { probeHost, probePort } } to route the prober elsewhere. */
  nodeOverrides?: Record<string, Record<string, unknown>>;
  /** Scheduler: fire healthCheck at the packaged rate (default) or this many ms. */
  scheduleRateMs?: number;
  /** Invocation timeout given to healthCheck (default: the packaged function timeout). */
  healthCheckTimeoutMs?: number;
  /** Start the scheduler now (default true). */
  schedule?: boolean;
  /** Which provider API moves the VIP (default aws-secondary-ip). */
  provider?: LocalCloudProvider;
  /** Emulated provider latencies (latency-profiles.ts); default 'none' (fast, for tests). */
  latency?: LatencyMode;
  /**
   * The VIP data path: 'loopback' (default) is a TCP forwarder on 127.0.0.1 following the provider's
   * holder; 'netns' (root, a cluster started with `netns`) makes the VIP a real address in the lab
   * (its .50) that really moves between the nodes' namespaces, with no forwarder (infra/netns).
   */
  network?: 'loopback' | 'netns';
  /** Merged into the generated `vip` config, e.g. { verifyTimeoutMs: 3000 }. */
  vipOverrides?: Record<string, unknown>;
  /**
   * Execution-level timeouts in ms by state machine logical id (e.g. { FailoverStateMachine: 3000 }),
   * shortening the definitions' TimeoutSeconds so a test reaches TIMED_OUT in seconds.
   */
  executionTimeoutMs?: Record<string, number>;
  log?: (line: string) => void;
  /** Receives every structured log entry of the functions. */
  onLog?: (entry: Record<string, unknown>) => void;
  /**
   * 'packaged' (default): run the zips `serverless package` wrote, each function in its own Node 22
   * process as Lambda runs it. 'inprocess': call the TypeScript handlers in this process (fast tests).
   */
  runtime?: 'packaged' | 'inprocess';
  /**
   * Run another packaged artifact: a directory holding `cloudformation-template-update-stack.json`
   * and its zips, as `serverless package` writes .serverless/ (default: .serverless, packaged first
   * when missing or stale).
   */
  artifactDir?: string;
  /** Options of the packaged runtime (idle reclaim, CPU limit, init-phase throttling). */
  lambda?: Pick<LambdaRuntimeOptions, 'idleMs' | 'cpuLimit' | 'initCpu' | 'initTimeoutMs'> & {
    /** MemorySize overrides by logical id (e.g. { HealthCheckLambdaFunction: 512 }), to measure sizes. */
    memoryMb?: Record<string, number>;
    /** Extra environment of every function (e.g. HEALTH_ROUND_LOG=1 for the bench). */
    env?: Record<string, string>;
  };
  /**
   * Fire the warm-up schedules of the template (failoverWorker's ping) at start and at their rate
   * (default true). False leaves every function cold until a failover needs it.
   */
  warmUp?: boolean;
}

export interface LocalCloud {
  clusterName: string;
  configFile: string;
  ec2: Ec2Emulator;
  sfn: SfnEndpoint;
  /** Where clients connect: the forwarder, or in netns mode the VIP address itself on the nodes' port. */
  vip: VipForwarder;
  provider: LocalCloudProvider;
  /** The address the provider moves (the overlay IP for aws-route-table). */
  vipAddress: string;
  /** ENI id of each node. */
  eniOf: Record<string, string>;
  /** ECS instance id of each node (aliyun-havip). */
  instanceOf: Record<string, string>;
  /** The route tables holding the overlay route (aws-route-table). */
  routeTableIds: string[];
  /** The Alibaba VPC + ECS emulator (aliyun-havip). */
  aliyun: AliyunEmulator | undefined;
  /**
   * Fault injector of the API that moves the VIP (EC2 or Alibaba). With latency 'realistic' it
   * also holds the per-action latencies, which `clear(action)` drops along with the faults.
   */
  faults: FaultInjector;
  /**
   * Node id behind the VIP per the emulated provider's API state: the ENI holding the secondary
   * IP, the ENI every route table points at, or the HaVip's MasterInstanceId.
   */
  vipHolder(): string | undefined;
  /** ARN of the failover state machine. */
  stateMachineArn: string;
  /** Every state machine's ARN by CloudFormation logical id. */
  stateMachineArns: Record<string, string>;
  /** EventBridge PutEvents recorder (the failover's Started/Succeeded/Failed events). */
  eventBridge: EventBridgeEmulator;
  /** Lambda Invoke endpoint: register hook functions by name. */
  lambda: LambdaEmulator;
  /** Faults for the state table: DynamoDB 5xx, throttling or hung requests (a proxy before dynalite). */
  dynamoFaults: DynamoFaults;
  /** Which runtime runs the functions. */
  runtime: 'packaged' | 'inprocess';
  /** The packaged runtime (cold starts, init durations, instances); undefined in-process. */
  lambdaRuntime: LambdaRuntime | undefined;
  /** Fires the warm-up schedules once now and waits for them (failoverWorker's ping). */
  warmUp(): Promise<void>;
  /** The invocations Task states made (packaged runtime only; empty in-process), oldest first. */
  taskReports(): InvocationReport[];
  /**
   * Invokes a function of the template by logical id (e.g. PlanLambdaFunction), as
   * `serverless invoke` would: its payload, or an Error named after the Lambda errorType.
   */
  invoke(functionId: string, event: unknown): Promise<unknown>;
  dynamoEndpoint: string;
  tableName: string;
  /** Fires healthCheck once more now (as a schedule tick would: every packaged rule, with its input). */
  tick(): Promise<void>;
  /** healthCheck's packaged schedules (one per shard when fanned out), with their inputs. */
  healthCheckSchedules: ScheduledRule[];
  startScheduler(): void;
  stop(): Promise<void>;
}

/** Starts the local cloud for `cluster` and points this process's SDK clients at it. */
export async function startLocalCloud(opts: LocalCloudOptions): Promise<LocalCloud> {
  const log = opts.log ?? (() => {});
  const clusterName = opts.clusterName ?? 'local';
  const cluster = opts.cluster;
  const stops: Array<() => Promise<void> | void> = [];
  let stopping = false;
  const stop = async () => {
    stopping = true;
    for (const s of stops.reverse()) await Promise.resolve(s()).catch(() => {});
    stops.length = 0;
  };
  try {
    const templatePath =
      opts.artifactDir === undefined
        ? await ensurePackagedTemplate(log)
        : join(opts.artifactDir, 'cloudformation-template-update-stack.json');

    // DynamoDB
    const dyn = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
    await new Promise<void>((res) => dyn.listen(0, '127.0.0.1', () => res()));
    stops.push(() => new Promise<void>((res) => dyn.close(() => res())));
    const dynAddr = dyn.address() as { port: number };
    const dynamoProxy = await startDynamoFaultProxy(`http://127.0.0.1:${dynAddr.port}`);
    stops.push(() => dynamoProxy.close());
    const dynamoEndpoint = dynamoProxy.url;

    // EC2 with one ENI per node, the VIP on the primary's ENI
    const ec2 = await startEc2Emulator({ credentials: LOCAL_CREDENTIALS, region: LOCAL_REGION });
    stops.push(() => ec2.close());
    const netns = opts.network === 'netns' ? cluster.netns : undefined;
    if (opts.network === 'netns' && netns === undefined)
      throw new Error(
        "network: 'netns' needs a cluster started with startCluster({ netns: await startNetnsLab(...) })",
      );
    const vipSetup = await setUpVipProvider({
      provider: opts.provider ?? 'aws-secondary-ip',
      latency: opts.latency ?? 'none',
      cluster,
      ec2,
      region: LOCAL_REGION,
      ...(netns === undefined ? {} : { netns, log }),
    });
    stops.push(() => vipSetup.close());
    // A stopped instance runs nothing: STONITH's stop (EC2 StopInstances, ECS StopInstance) kills
    // that node's mariadbd before the emulated API shows the instance stopped.
    const onInstanceStopped = async (instanceId: string): Promise<void> => {
      const nodeId = cluster.nodes.find(
        (n) =>
          ec2.model.networkInterface(vipSetup.eniOf[n.id] ?? '')?.instanceId === instanceId ||
          vipSetup.instanceOf[n.id] === instanceId,
      )?.id;
      if (nodeId !== undefined) await cluster.crash(nodeId);
    };
    ec2.model.powerOff = onInstanceStopped;
    if (vipSetup.aliyun) vipSetup.aliyun.model.powerOff = onInstanceStopped;
    const vip: VipForwarder =
      netns === undefined
        ? await startVipForwarder(vipSetup.source)
        : { host: vipSetup.address, port: cluster.nodes[0]!.port, close: async () => {} };
    stops.push(() => vip.close());

    // The cluster's configuration, as an operator would write it.
    const configFile = join(cluster.dir, 'failover-config.json');
    const creds = cluster.credentials;
    const overrides = opts.clusterOverrides ?? {};
    const config = {
      version: 1,
      clusters: [
        {
          name: clusterName,
          primary: cluster.nodes[0]!.id,
          nodes: cluster.nodes.map((n) => ({
            id: n.id,
            host: n.host,
            port: n.port,
            ...vipSetup.nodeFields[n.id],
            ...opts.nodeOverrides?.[n.id],
          })),
          credentials: {
            admin: { user: creds.admin.user, password: { file: creds.admin.passwordFile } },
            replication: { user: creds.replication.user, password: { file: creds.replication.passwordFile } },
          },
          vip: { ...vipSetup.vipConfig, ...opts.vipOverrides },
          clientEndpoint: { host: vip.host, port: vip.port },
          ...overrides,
        },
      ],
    };
    writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);

    // Point the SDKs (and the functions, in this process or in the runtime's) at the local cloud.
    const envBefore = { ...process.env };
    const localEnv: Record<string, string> = {};
    const setEnv = (vars: Record<string, string>) => {
      Object.assign(localEnv, vars);
      Object.assign(process.env, vars);
    };
    setEnv({
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_REGION: LOCAL_REGION,
      AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
      AWS_ENDPOINT_URL_EC2: ec2.url,
      FAILOVER_CONFIG_FILE: configFile,
      STATE_TABLE: TABLE,
      ...vipSetup.env,
    });
    delete process.env.FAILOVER_CONFIG;
    delete process.env.AWS_PROFILE;
    stops.push(() => {
      for (const k of Object.keys(process.env)) if (!(k in envBefore)) delete process.env[k];
      Object.assign(process.env, envBefore);
      resetRuntime();
    });

    await createStateTable(templatePath);

    // EventBridge (PutEvents recorder) and Lambda (Invoke for hook functions).
    const eventBridge = await startEventBridgeEmulator();
    stops.push(() => eventBridge.close());
    const lambda = await startLambdaEmulator();
    stops.push(() => lambda.close());
    setEnv({
      AWS_ENDPOINT_URL_EVENTBRIDGE: eventBridge.url,
      AWS_ENDPOINT_URL_LAMBDA: lambda.url,
      EVENT_BUS_NAME: 'default',
    });
    resetFailoverIntegrations();
    stops.push(() => resetFailoverIntegrations());

    // Step Functions, running every packaged definition; each Task invokes the function its
    // Resource names (packaged or in-process), after the Standard workflow's own latencies.
    const machines = Object.values(
      loadPackagedStateMachines(templatePath, { region: LOCAL_REGION, accountId: '000000000000' }),
    );
    if (machines.length === 0) throw new Error(`No state machine in ${templatePath}`);
    for (const m of machines) checkTaskNames(m.logicalId, m.definition);
    const packagedFunctions = readPackagedFunctions(templatePath);
    const mode = opts.runtime ?? 'packaged';
    let lambdaRuntime: LambdaRuntime | undefined;
    const sfnLatency = latencyProfile(opts.latency ?? 'none').sfn;
    const taskReports: InvocationReport[] = [];
    let configSeen = statSync(configFile).mtimeMs;
    const invokeFunction = async (
      id: string,
      event: unknown,
      context?: InvokeContext,
      reports?: InvocationReport[],
    ): Promise<unknown> => {
      if (lambdaRuntime) {
        // Changing the configuration is a deployment in AWS: instances started before it are
        // replaced, so a warm instance never runs with the old configuration.
        const configMtime = statSync(configFile).mtimeMs;
        if (configMtime !== configSeen) {
          configSeen = configMtime;
          await lambdaRuntime.reclaimIdle();
        }
        const r = await lambdaRuntime.invoke(id, event);
        reports?.push(r.report);
        if (!r.ok) throw new LambdaFunctionError(r.error);
        return r.payload;
      }
      const fn = packagedFunctions.find((f) => f.id === id);
      if (!fn) throw new Error(`No function ${id} in ${templatePath}`);
      return inProcessInvoke(fn, event, context);
    };
    const sfn = await startSfnEndpoint({
      region: LOCAL_REGION,
      accountId: '000000000000',
      // Step Functions publishes every status change to the default bus (and its rules).
      onStatusChange: (event) => eventBridge.deliver(event),
      stateMachines: machines.map((m) => ({
        name: m.name ?? m.logicalId,
        ...(opts.executionTimeoutMs?.[m.logicalId] === undefined
          ? {}
          : { executionTimeoutMs: opts.executionTimeoutMs[m.logicalId] }),
        definition: m.definition,
        taskHandlers: Object.fromEntries(
          Object.entries(m.taskResources).map(([state, resource]) => {
            const id = functionIdOfArn(resource);
            const first = (m.definition as { StartAt?: string }).StartAt === state;
            const overheadMs =
              sfnLatency.stateTransitionMs +
              sfnLatency.lambdaInvokeMs +
              (first ? sfnLatency.executionStartMs : 0);
            return [
              state,
              async (input: unknown) => {
                if (overheadMs > 0) await new Promise((r) => setTimeout(r, overheadMs));
                return invokeFunction(id, input, undefined, taskReports);
              },
            ];
          }),
        ),
      })),
      log,
    });
    stops.push(() => sfn.close());
    process.env.AWS_ENDPOINT_URL_SFN = sfn.url;
    localEnv.AWS_ENDPOINT_URL_SFN = sfn.url;
    // The packaged EventBridge rules with event patterns, each delivering to its function's handler.
    for (const rule of loadPackagedEventRules(templatePath, {
      region: LOCAL_REGION,
      accountId: '000000000000',
    })) {
      for (const fn of rule.targetFunctions) {
        if (!packagedFunctions.some((f) => f.id === fn))
          throw new Error(
            `EventBridge rule ${rule.logicalId} targets ${fn}, which is not in ${templatePath}`,
          );
        eventBridge.addRule({
          name: rule.logicalId,
          pattern: rule.pattern,
          target: (e) => invokeFunction(fn, e),
        });
      }
    }
    // Deliveries still running (a cleanup) finish before the servers they use go away.
    stops.push(() => eventBridge.idle());
    // Each machine's ARN in the variable serverless.yml gives the functions: <LogicalId>Arn ->
    // FAILOVER_STATE_MACHINE -> STATE_MACHINE_ARN; others as <LOGICAL_ID>_ARN.
    const arns: Record<string, string> = {};
    for (const m of machines) {
      const arn = sfn.stateMachineArn(m.name ?? m.logicalId);
      arns[m.logicalId] = arn;
      setEnv({ [`${m.logicalId.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}_ARN`]: arn });
    }
    const stateMachineArn =
      arns.FailoverStateMachine ?? sfn.stateMachineArn(machines[0]!.name ?? machines[0]!.logicalId);
    setEnv({ STATE_MACHINE_ARN: stateMachineArn });
    if (mode === 'inprocess' && opts.lambda?.env) setEnv(opts.lambda.env);
    if (mode === 'packaged') {
      lambdaRuntime = await startPackagedRuntime(packagedFunctions, localEnv, opts, log);
      stops.push(() => lambdaRuntime?.close());
    }
    resetRuntime();
    if (opts.onLog) {
      const { createRuntime } = await import('../../lib/runtime.ts');
      resetRuntime(createRuntime(process.env, { log: opts.onLog }));
    }

    // EventBridge: the packaged schedule and timeout.
    const healthCheckId = 'HealthCheckLambdaFunction';
    const schedule = readSchedule(templatePath, 'HealthCheck');
    const rateMs = opts.scheduleRateMs ?? schedule.rateMs;
    const timeoutMs = opts.healthCheckTimeoutMs ?? schedule.timeoutMs;
    const running = new Set<Promise<void>>();
    const abort = new AbortController();
    stops.unshift(async () => {
      abort.abort();
      await Promise.allSettled([...running]);
    });
    // Every packaged rule fires, with its own input as EventBridge sends it (one per shard when
    // healthCheckShards > 1); a rule without input sends the scheduled event.
    const tick = async () => {
      await Promise.all(schedule.rules.map((rule) => fire(rule.input)));
    };
    const fire = async (input: unknown) => {
      if (abort.signal.aborted) return;
      const started = Date.now();
      const event = input ?? { source: 'aws.events', 'detail-type': 'Scheduled Event' };
      // A shorter timeout than the packaged one (tests) runs a copy of the function with it.
      const id =
        lambdaRuntime && timeoutMs !== schedule.timeoutMs
          ? ensureTimeoutVariant(lambdaRuntime, healthCheckId, timeoutMs)
          : healthCheckId;
      const p = invokeFunction(id, event, {
        awsRequestId: randomUUID(),
        getRemainingTimeInMillis: () => timeoutMs - (Date.now() - started),
        signal: abort.signal,
      })
        .then(() => undefined)
        .catch((err: Error) => {
          if (!stopping) log(`healthCheck invocation failed: ${err.name}: ${err.message}`);
        });
      running.add(p);
      await p;
      running.delete(p);
    };
    let timer: NodeJS.Timeout | undefined;
    const startScheduler = () => {
      if (timer) return;
      void tick();
      timer = setInterval(() => void tick(), rateMs);
      stops.unshift(() => clearInterval(timer));
    };
    if (opts.schedule !== false) startScheduler();

    // Warm-up schedules: every function with a scheduled rule whose input is {"ping": true}.
    const pings = warmUpSchedules(templatePath);
    const warmUp = async () => {
      await Promise.all(
        pings.map((p) =>
          invokeFunction(p.functionId, p.input).catch((err: Error) => {
            if (!stopping) log(`${p.functionId} warm-up failed: ${err.name}: ${err.message}`);
          }),
        ),
      );
    };
    if (opts.warmUp !== false && pings.length > 0) {
      const warmTimer = setInterval(() => void warmUp(), Math.min(...pings.map((p) => p.rateMs)));
      warmTimer.unref();
      stops.unshift(() => clearInterval(warmTimer));
      void warmUp();
    }

    return {
      clusterName,
      configFile,
      ec2,
      sfn,
      vip,
      provider: vipSetup.provider,
      vipAddress: vipSetup.address,
      eniOf: vipSetup.eniOf,
      instanceOf: vipSetup.instanceOf,
      routeTableIds: vipSetup.routeTableIds,
      aliyun: vipSetup.aliyun,
      faults: vipSetup.faults,
      vipHolder: vipSetup.holder,
      stateMachineArn,
      stateMachineArns: arns,
      eventBridge,
      lambda,
      dynamoFaults: dynamoProxy.faults,
      runtime: mode,
      lambdaRuntime,
      warmUp,
      taskReports: () => taskReports.map((r) => ({ ...r })),
      invoke: (id, event) => invokeFunction(id, event),
      dynamoEndpoint,
      tableName: TABLE,
      tick,
      healthCheckSchedules: schedule.rules,
      startScheduler,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Creates the state table from the packaged template's definition (keys, TTL attribute). */
async function createStateTable(templatePath: string): Promise<void> {
  const { readFileSync } = await import('node:fs');
  const t = JSON.parse(readFileSync(templatePath, 'utf8')) as {
    Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  };
  const table = t.Resources.StateTable;
  if (!table) throw new Error('StateTable missing from the packaged template');
  const client = new DynamoDBClient({});
  await client.send(
    new CreateTableCommand({
      TableName: TABLE,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: table.Properties.AttributeDefinitions as never,
      KeySchema: table.Properties.KeySchema as never,
    }),
  );
  client.destroy();
}

interface InvokeContext {
  awsRequestId: string;
  getRemainingTimeInMillis(): number;
  signal?: AbortSignal;
}

/** `arn:aws:lambda:<r>:<acct>:function:HealthCheckLambdaFunction` -> `HealthCheckLambdaFunction`. */
function functionIdOfArn(arn: string): string {
  const m = /:function:([^:]+)/.exec(arn);
  if (!m) throw new Error(`Task Resource ${arn} is not a Lambda function ARN`);
  return m[1]!;
}

// In-process: the handler's source module, by the packaged Handler path (functions/x.handler ->
// functions/x.ts), called through its plain export as the tests do.
const inProcessModules = new Map<string, Promise<Record<string, unknown>>>();
async function inProcessInvoke(
  fn: PackagedFunction,
  event: unknown,
  context?: InvokeContext,
): Promise<unknown> {
  const file = fn.handler.slice(0, fn.handler.lastIndexOf('.'));
  let mod = inProcessModules.get(file);
  if (!mod) {
    mod = import(join(PROJECT_ROOT, `${file}.ts`)) as Promise<Record<string, unknown>>;
    inProcessModules.set(file, mod);
  }
  const plain = (await mod).plain as (e: unknown, c?: unknown, s?: AbortSignal) => Promise<unknown>;
  if (typeof plain !== 'function') throw new Error(`${file}.ts exports no plain handler`);
  const ctx = context ?? { awsRequestId: randomUUID(), getRemainingTimeInMillis: () => fn.timeoutMs };
  return plain(JSON.parse(JSON.stringify(event ?? null)), ctx, context?.signal);
}

/**
 * The packaged runtime: every function of the template, unzipped, with its packaged environment.
 * Intrinsic values (Ref/GetAtt: the table, the state machines, the topic) resolve to the local
 * cloud's own (`localEnv`); one the local cloud does not emulate is left out and said so.
 */
async function startPackagedRuntime(
  functions: PackagedFunction[],
  localEnv: Record<string, string>,
  opts: LocalCloudOptions,
  log: (line: string) => void,
): Promise<LambdaRuntime> {
  const cacheRoot = join(PROJECT_ROOT, '.serverless', '.local-runtime');
  const unresolved = new Set<string>();
  const specs = functions.map((fn) => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(fn.env)) {
      if (typeof v === 'string') env[k] = v;
      else if (!(k in localEnv)) unresolved.add(k);
    }
    Object.assign(env, localEnv, opts.lambda?.env);
    // The local cloud hands the configuration over as a file (FAILOVER_CONFIG_FILE).
    delete env.FAILOVER_CONFIG;
    return {
      id: fn.id,
      functionName: fn.functionName,
      codeDir: unpackArtifact(fn.zipPath, cacheRoot),
      handler: fn.handler,
      env,
      timeoutMs: fn.timeoutMs,
      memoryMb: opts.lambda?.memoryMb?.[fn.id] ?? fn.memoryMb,
    };
  });
  if (unresolved.size > 0)
    log(`lambda: not emulated, left unset in the functions: ${[...unresolved].sort().join(', ')}`);
  const { memoryMb: _sizes, env: _env, ...runtimeOptions } = opts.lambda ?? {};
  const runtime = await startLambdaRuntime({
    functions: specs,
    log,
    ...(opts.onLog ? { onLog: opts.onLog } : {}),
    ...runtimeOptions,
  });
  log(
    `lambda: packaged runtime (Node 22), CPU limit ${runtime.cpuLimit.applied ? 'applied' : 'NOT applied'}: ${runtime.cpuLimit.detail}`,
  );
  return runtime;
}

// A copy of a function with another timeout, for tests that shorten the health check's invocation.
function ensureTimeoutVariant(runtime: LambdaRuntime, id: string, timeoutMs: number): string {
  const variant = `${id}@${timeoutMs}`;
  const base = runtime.functions.get(id);
  if (base && !runtime.functions.has(variant))
    (runtime.functions as Map<string, typeof base>).set(variant, { ...base, id: variant, timeoutMs });
  return variant;
}

/** Scheduled rules of the template whose constant input is a ping: the warm-up schedules. */
function warmUpSchedules(
  templatePath: string,
): Array<{ functionId: string; input: unknown; rateMs: number }> {
  const t = JSON.parse(readFileSync(templatePath, 'utf8')) as {
    Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  };
  const out: Array<{ functionId: string; input: unknown; rateMs: number }> = [];
  for (const r of Object.values(t.Resources)) {
    if (r.Type !== 'AWS::Events::Rule') continue;
    for (const target of (r.Properties.Targets ?? []) as Array<{ Arn?: unknown; Input?: unknown }>) {
      if (typeof target.Input !== 'string') continue;
      const input = JSON.parse(target.Input) as { ping?: unknown };
      if (input.ping !== true) continue;
      const ref = JSON.stringify(target.Arn ?? '');
      const id = /"([A-Za-z0-9]+LambdaFunction)"/.exec(ref)?.[1];
      const m = /^rate\((\d+) (minute|minutes|hour|hours)\)$/.exec(String(r.Properties.ScheduleExpression));
      if (!id || !m) continue;
      out.push({
        functionId: id,
        input,
        rateMs: Number(m[1]) * (m[2]!.startsWith('minute') ? 60_000 : 3_600_000),
      });
    }
  }
  return out;
}

/**
 * The failover worker runs the Task named in `Parameters.task`: it must be the state's own name,
 * or a step would run another step's code.
 */
function checkTaskNames(machine: string, definition: object): void {
  const walk = (states: Record<string, Record<string, unknown>>) => {
    for (const [name, state] of Object.entries(states)) {
      const task = (state.Parameters as { task?: unknown } | undefined)?.task;
      if (state.Type === 'Task' && task !== undefined && task !== name)
        throw new Error(`${machine}: Task state ${name} passes task '${String(task)}': it must be '${name}'`);
      for (const b of (state.Branches ?? []) as Array<{ States: Record<string, Record<string, unknown>> }>)
        walk(b.States);
      const it = (state.ItemProcessor ?? state.Iterator) as
        | { States?: Record<string, Record<string, unknown>> }
        | undefined;
      if (it?.States) walk(it.States);
    }
  };
  walk((definition as { States: Record<string, Record<string, unknown>> }).States);
}
