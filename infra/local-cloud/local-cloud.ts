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
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { plain as healthCheck } from '../../functions/health-check.ts';
import { ruleTargetHandlers, taskHandlers } from '../../functions/tasks.ts';
import { resetFailoverIntegrations } from '../../lib/failover/integrations.ts';
import { resetRuntime } from '../../lib/runtime.ts';
import type { MariaDbCluster } from '../cluster/mariadb-cluster.ts';
import type { AliyunEmulator } from './aliyun/emulator.ts';
import { type DynamoFaults, startDynamoFaultProxy } from './dynamo-fault-proxy.ts';
import { type Ec2Emulator, startEc2Emulator } from './ec2-emulator.ts';
import { type EventBridgeEmulator, startEventBridgeEmulator } from './eventbridge-emulator.ts';
import type { FaultInjector } from './fault-injection.ts';
import { type LambdaEmulator, startLambdaEmulator } from './lambda-emulator.ts';
import type { LatencyMode } from './latency-profiles.ts';
import { ensurePackagedTemplate, readSchedule } from './packaged-functions.ts';
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
  dynamoEndpoint: string;
  tableName: string;
  /** Fires healthCheck once more now (as a schedule tick would). */
  tick(): Promise<void>;
  startScheduler(): void;
  stop(): Promise<void>;
}

/** Starts the local cloud for `cluster` and points this process's SDK clients at it. */
export async function startLocalCloud(opts: LocalCloudOptions): Promise<LocalCloud> {
  const log = opts.log ?? (() => {});
  const clusterName = opts.clusterName ?? 'local';
  const cluster = opts.cluster;
  const stops: Array<() => Promise<void> | void> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await Promise.resolve(s()).catch(() => {});
    stops.length = 0;
  };
  try {
    const templatePath = await ensurePackagedTemplate(log);

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

    // Point the SDKs (and the functions, which run in this process) at the local cloud.
    const envBefore = { ...process.env };
    Object.assign(process.env, {
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
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_EVENTBRIDGE: eventBridge.url,
      AWS_ENDPOINT_URL_LAMBDA: lambda.url,
      EVENT_BUS_NAME: 'default',
    });
    resetFailoverIntegrations();
    stops.push(() => resetFailoverIntegrations());

    // Step Functions, running every packaged definition with our handlers.
    const machines = Object.values(
      loadPackagedStateMachines(templatePath, { region: LOCAL_REGION, accountId: '000000000000' }),
    );
    if (machines.length === 0) throw new Error(`No state machine in ${templatePath}`);
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
          Object.keys(m.taskResources).map((state) => [
            state,
            taskHandlers[state] as (input: unknown) => Promise<unknown>,
          ]),
        ),
      })),
      log,
    });
    stops.push(() => sfn.close());
    process.env.AWS_ENDPOINT_URL_SFN = sfn.url;
    // The packaged EventBridge rules with event patterns, each delivering to its function's handler.
    for (const rule of loadPackagedEventRules(templatePath, {
      region: LOCAL_REGION,
      accountId: '000000000000',
    })) {
      for (const fn of rule.targetFunctions) {
        const handler = ruleTargetHandlers[fn] as ((event: unknown) => Promise<unknown>) | undefined;
        if (!handler)
          throw new Error(`EventBridge rule ${rule.logicalId} targets ${fn}, which has no local handler`);
        eventBridge.addRule({ name: rule.logicalId, pattern: rule.pattern, target: (e) => handler(e) });
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
      process.env[`${m.logicalId.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}_ARN`] = arn;
    }
    const stateMachineArn =
      arns.FailoverStateMachine ?? sfn.stateMachineArn(machines[0]!.name ?? machines[0]!.logicalId);
    process.env.STATE_MACHINE_ARN = stateMachineArn;
    resetRuntime();
    if (opts.onLog) {
      const { createRuntime } = await import('../../lib/runtime.ts');
      resetRuntime(createRuntime(process.env, { log: opts.onLog }));
    }

    // EventBridge: the packaged schedule and timeout.
    const schedule = readSchedule(templatePath, 'HealthCheck');
    const rateMs = opts.scheduleRateMs ?? schedule.rateMs;
    const timeoutMs = opts.healthCheckTimeoutMs ?? schedule.timeoutMs;
    const running = new Set<Promise<void>>();
    const abort = new AbortController();
    stops.unshift(async () => {
      abort.abort();
      await Promise.allSettled([...running]);
    });
    const tick = async () => {
      if (abort.signal.aborted) return;
      const started = Date.now();
      const p = healthCheck(
        { source: 'aws.events', 'detail-type': 'Scheduled Event' },
        {
          awsRequestId: randomUUID(),
          getRemainingTimeInMillis: () => timeoutMs - (Date.now() - started),
        },
        abort.signal,
      )
        .then(() => undefined)
        .catch((err: Error) => log(`healthCheck invocation failed: ${err.name}: ${err.message}`));
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
      dynamoEndpoint,
      tableName: TABLE,
      tick,
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
