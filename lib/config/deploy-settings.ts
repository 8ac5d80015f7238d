import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { clustersOfShard, MAX_SHARDS } from '../health/shards.ts';
import { formatIssues, parseConfig } from './load-config.ts';
import type { FailoverConfig } from './schema.ts';

/**
 * The deployment's settings (config/deploy.<stage>.json): where the functions run and what the
 * role may touch. Everything here ends up in the CloudFormation template, nothing in the code.
 */
export const DeploySettingsSchema = z
  .object({
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'an AWS region like us-east-1'),
    subnetIds: z
      .array(z.string().regex(/^subnet-(?:[0-9a-f]{8}|[0-9a-f]{17})$/, 'a subnet id like subnet-0123abcd'))
      .min(1),
    securityGroupIds: z
      .array(z.string().regex(/^sg-(?:[0-9a-f]{8}|[0-9a-f]{17})$/, 'a security group id like sg-0123abcd'))
      .min(1),
    /** Subscribed to the alert topic (confirm the e-mail AWS sends). Empty: no subscription. */
    alertEmail: z.union([z.literal(''), z.email()]).default(''),
    /** Secrets the functions may read (wildcards allowed); must cover every secretsManager reference. */
    secretArns: z
      .array(z.string().regex(/^arn:aws[a-z-]*:secretsmanager:/, 'a Secrets Manager ARN'))
      .default([]),
    /** Customer-managed KMS keys the secrets are encrypted with (kms:Decrypt through Secrets Manager). */
    kmsKeyArns: z
      .array(z.string().regex(/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[0-9a-f-]+$/, 'a KMS key ARN'))
      .default([]),
    /** The bus for Failover Started/Succeeded/Failed events: both EVENT_BUS_NAME and the IAM statement. */
    eventBusName: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,256}$/, 'an EventBridge bus name')
      .default('default'),
    /**
     * Reserved concurrency of healthCheck. Opt-in: reserving fails on accounts still at the default
     * concurrency quota (Lambda keeps 10 unreserved). The single prober per cluster is the lease's job.
     */
    healthCheckReservedConcurrency: z.number().int().min(1).max(100).optional(),
    /**
     * How many health-check shards the schedule fans out to: one EventBridge rule per shard, each
     * invoking healthCheck with `{"shard": i, "of": K}` (lib/health/shards.ts). 1 (the default) is
     * one rule without a shard: every cluster in one invocation.
     */
    healthCheckShards: z.number().int().min(1).max(MAX_SHARDS).default(1),
    /**
     * healthCheck's MemorySize, and so its CPU share (1769 MB = 1 vCPU). It runs all the time, so
     * it is most of a small deployment's bill ($4.75 a month a shard at 128 MB). Unset (the
     * default): sized by the clusters of the busiest shard ({@link defaultHealthCheckMemoryMb}:
     * 128 MB up to 6, 256 MB up to 18, 384 MB up to 30, ...), priced the same way by
     * infra/bench/cost-model.ts.
     */
    healthCheckMemoryMb: z.number().int().min(128).max(10_240).optional(),
    /** X-Ray tracing of the functions and both state machines. */
    tracing: z.boolean().default(false),
    /**
     * The CloudWatch dashboard (lib/config/dashboard.ts): $3.00 a month, free while the account
     * has at most 3 dashboards. Off (the default): the template has no dashboard; the alarms,
     * metrics, logs and `serverless invoke -f status` are the same either way.
     */
    dashboard: z
      .boolean({ error: 'true (deploy the dashboard, $3.00 a month) or false (none), without quotes' })
      .default(false),
  })
  .strict();

export type DeploySettings = z.infer<typeof DeploySettingsSchema>;

/** Where the bundled config goes, relative to the service directory and to the Lambda task root. */
export const BUNDLED_CONFIG = '.build/failover-config.json';

export interface ResolveOptions {
  /** The project root (serverless.yml's directory). */
  root: string;
  stage: string;
  /** The serverless command: `deploy` refuses what `package` accepts (missing files, examples). */
  command: string;
  /** Where the per-stage files live (default <root>/config; FAILOVER_CONFIG_DIR for tests). */
  configDir?: string;
}

export interface ResolvedSettings
  extends Omit<DeploySettings, 'healthCheckReservedConcurrency' | 'healthCheckMemoryMb'> {
  /** The reserved concurrency, or null (serverless.yml leaves it unset). */
  healthCheckReservedConcurrency: number | null;
  /** healthCheck's MemorySize as deployed: the setting, or sized by the busiest shard. */
  healthCheckMemoryMb: number;
  clusterCount: number;
  clustersFile: string;
  deployFile: string;
  /**
   * healthCheck's `events`: one `rate(1 minute)` schedule per shard, with `{shard, of}` as its input
   * when there is more than one (serverless.yml takes the list as is).
   */
  healthCheckEvents: Array<{ schedule: { rate: string; input?: { shard: number; of: number } } }>;
  /** Whether the example files stand in (package only). */
  usingExamples: boolean;
  /** Things that package but should be changed, each with what to set (printed at package time). */
  warnings: string[];
  /** IAM statements that depend on the config (route tables, secrets, keys, bus). */
  iam: { failover: object[]; readOnly: object[]; check: object[] };
}

// Values only the examples contain: a deployment holding one of them is not the operator's.
const PLACEHOLDERS = [/111122223333/, /0a1b2c3d4e5f6/, /i-bp1a2b3c4d5e6f7g8h/, /havip-bp1a2b3c4d5e6f7g8h9i/];

/**
 * Resolves the deploy-time settings of one stage for serverless.yml: validates
 * config/clusters.<stage>.json and config/deploy.<stage>.json (`package` falls back to the
 * examples so CI works offline; `deploy` refuses missing files and example values, naming the file
 * to create from which example), cross-checks them, writes the validated config to
 * {@link BUNDLED_CONFIG} (packaged with every function) and builds the config-dependent IAM statements.
 *
 * @throws ConfigError naming the file and the key, before anything reaches AWS.
 */
export function resolveDeploySettings(opts: ResolveOptions): ResolvedSettings {
  const dir = opts.configDir ?? join(opts.root, 'config');
  const strict = opts.command === 'deploy';
  const rel = (p: string) => relative(process.cwd(), p) || p;
  const pick = (kind: 'clusters' | 'deploy', example: string) => {
    const own = join(dir, `${kind}.${opts.stage}.json`);
    if (existsSync(own)) return { file: own, example: false };
    const ex = join(dir, example);
    if (strict)
      throw new ConfigError(
        `serverless deploy --stage ${opts.stage}: ${rel(own)} is missing. Create it from ${rel(ex)} with your own values (the examples are placeholders and are never deployed).`,
      );
    return { file: ex, example: true };
  };
  const clusters = pick('clusters', 'clusters.example.json');
  const deploy = pick('deploy', 'deploy.example.json');
  const clustersRaw = readJson(clusters.file);
  const deployRaw = readJson(deploy.file);
  if (strict) {
    refusePlaceholders(clustersRaw, rel(clusters.file), 'clusters.example.json');
    refusePlaceholders(deployRaw, rel(deploy.file), 'deploy.example.json');
  }
  const config = parseConfig(clustersRaw, rel(clusters.file));
  const parsed = DeploySettingsSchema.safeParse(deployRaw);
  if (!parsed.success)
    throw new ConfigError(
      `Invalid deploy settings in ${rel(deploy.file)}:\n${formatIssues(parsed.error.issues)}`,
    );
  const settings = parsed.data;
  checkSecretsCovered(config, settings, rel(clusters.file), rel(deploy.file));

  const out = join(opts.root, BUNDLED_CONFIG);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(clustersRaw));

  const { healthCheckReservedConcurrency, healthCheckMemoryMb, ...rest } = settings;
  return {
    ...rest,
    healthCheckReservedConcurrency: healthCheckReservedConcurrency ?? null,
    healthCheckMemoryMb:
      healthCheckMemoryMb ??
      defaultHealthCheckMemoryMb(busiestShard(config.clusters, settings.healthCheckShards)),
    healthCheckEvents: healthCheckEvents(settings.healthCheckShards),
    clusterCount: config.clusters.length,
    clustersFile: rel(clusters.file),
    deployFile: rel(deploy.file),
    usingExamples: clusters.example || deploy.example,
    warnings: [healthCheckSizingWarning(config.clusters, settings)].flatMap((w) => (w ? [w] : [])),
    iam: buildIamStatements(config, settings),
  };
}

/**
 * Clusters the first 128 MB of healthCheckMemoryMb holds. Measured with the scale bench at 128 MB:
 * 10 clusters used 61 % of the CPU limit (round p99 488 ms) and 118 MB RSS with Lambda's heap cap,
 * too close to the 128 MB a sandbox may use before Lambda kills it; 6 keeps the shard within
 * about half its CPU and well inside its memory.
 */
export const CLUSTERS_IN_FIRST_128MB = 6;
/**
 * Clusters each further 128 MB holds. Most of a shard's memory and part of its CPU is the runtime
 * itself (about 90 MB RSS with one cluster), so a larger size holds more per 128 MB. Measured with
 * the scale bench on one shard, at this rule's sizes: 18 clusters at 256 MB used 38 % of the CPU
 * limit (round p99 103 ms, 133 MB RSS); 30 at 384 MB used 33-39 % (p99 124-213 ms in 3 runs, 162-170 MB RSS).
 */
export const CLUSTERS_PER_FURTHER_128MB = 12;

/** How many clusters a health-check shard of `memoryMb` is measured to hold. */
export function clustersHeldBy(memoryMb: number): number {
  return CLUSTERS_IN_FIRST_128MB + CLUSTERS_PER_FURTHER_128MB * Math.floor(Math.max(0, memoryMb - 128) / 128);
}

/** The most clusters one of `of` shards watches (lib/health/shards.ts assigns them). */
export function busiestShard(clusters: readonly { name: string }[], of: number): number {
  return Math.max(
    0,
    ...Array.from({ length: of }, (_, shard) => clustersOfShard(clusters, { shard, of }).length),
  );
}

/**
 * healthCheck's MemorySize when the deploy settings leave it unset: the smallest multiple of
 * 128 MB that holds the busiest shard's clusters ({@link clustersHeldBy}: 128 MB up to 6, 256 MB
 * up to 18, 384 MB up to 30, ...), so a shard is never deployed smaller than it is measured to
 * hold. The cost model (infra/bench/cost-model.ts) prices the same size.
 */
export function defaultHealthCheckMemoryMb(clustersPerShard: number): number {
  const further = Math.max(
    0,
    Math.ceil((clustersPerShard - CLUSTERS_IN_FIRST_128MB) / CLUSTERS_PER_FURTHER_128MB),
  );
  return Math.min(10_240, 128 * (1 + further));
}

/**
 * A warning when the busiest shard holds more clusters than its size (set explicitly) is measured
 * to hold: its rounds slow down (detection too) and it may run out of memory, which Lambda answers
 * with a kill. Without the setting the size follows the clusters, so it warns only past Lambda's
 * largest size (954 clusters a shard).
 */
export function healthCheckSizingWarning(
  clusters: readonly { name: string }[],
  settings: Pick<DeploySettings, 'healthCheckShards' | 'healthCheckMemoryMb'>,
): string | undefined {
  const busiest = busiestShard(clusters, settings.healthCheckShards);
  const mb = settings.healthCheckMemoryMb ?? defaultHealthCheckMemoryMb(busiest);
  const holds = clustersHeldBy(mb);
  if (busiest <= holds) return undefined;
  const shardsNeeded = Math.min(MAX_SHARDS, Math.ceil((clusters.length * 1.3) / holds));
  return `healthCheck: a shard watches up to ${busiest} clusters, but ${mb} MB holds about ${holds}. Its rounds slow down and it may run out of memory. Set "healthCheckShards" to about ${shardsNeeded} or "healthCheckMemoryMb" to ${defaultHealthCheckMemoryMb(busiest)} in the deploy settings, or leave "healthCheckMemoryMb" out to size it by the clusters.`;
}

function healthCheckEvents(shards: number): ResolvedSettings['healthCheckEvents'] {
  if (shards === 1) return [{ schedule: { rate: 'rate(1 minute)' } }];
  return Array.from({ length: shards }, (_, shard) => ({
    schedule: { rate: 'rate(1 minute)', input: { shard, of: shards } },
  }));
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`Cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
}

function refusePlaceholders(raw: unknown, file: string, example: string): void {
  const hits: string[] = [];
  const walk = (v: unknown, path: string) => {
    if (typeof v === 'string') {
      if (PLACEHOLDERS.some((re) => re.test(v))) hits.push(`${path || '(top level)'} = "${v}"`);
    } else if (Array.isArray(v)) {
      for (const [i, x] of v.entries()) walk(x, `${path}[${i}]`);
    } else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
  };
  walk(raw, '');
  if (hits.length > 0)
    throw new ConfigError(
      `${file} still holds the example's placeholder values (from config/${example}); put your own there before deploying:\n${hits.slice(0, 10).join('\n')}${hits.length > 10 ? `\n... and ${hits.length - 10} more` : ''}`,
    );
}

/** `arn:...:secret:failover/*` style patterns, as IAM matches them. */
function matches(pattern: string, arn: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  // A secret ARN from the config may omit the random -AbCdEf suffix Secrets Manager appends.
  return re.test(arn) || re.test(`${arn}-XXXXXX`);
}

function checkSecretsCovered(
  config: FailoverConfig,
  settings: DeploySettings,
  clustersFile: string,
  deployFile: string,
): void {
  const missing: string[] = [];
  config.clusters.forEach((c, i) => {
    const refs: Array<[string, unknown]> = [
      ['credentials.admin.password', c.credentials.admin.password],
      ['credentials.replication.password', c.credentials.replication.password],
    ];
    if (c.vip.provider === 'aliyun-havip')
      refs.push(['vip.accessKeyId', c.vip.accessKeyId], ['vip.accessKeySecret', c.vip.accessKeySecret]);
    for (const [path, ref] of refs) {
      const arn = (ref as { secretsManager?: string }).secretsManager;
      if (arn && !settings.secretArns.some((p) => matches(p, arn)))
        missing.push(`clusters[${i}].${path}.secretsManager: ${arn}`);
    }
  });
  if (missing.length > 0)
    throw new ConfigError(
      `${clustersFile} refers to secrets the functions' role may not read; add them (or a wildcard) to secretArns in ${deployFile}:\n${missing.slice(0, 10).join('\n')}${missing.length > 10 ? `\n... and ${missing.length - 10} more` : ''}`,
    );
}

const sub = (s: string) => ({ 'Fn::Sub': s });

/**
 * The statements that depend on the config. The static ones (table, topic, state machines) are
 * in serverless.yml's resources; these are listed here because a statement with an empty
 * Resource list is invalid and YAML cannot drop one conditionally.
 */
function buildIamStatements(config: FailoverConfig, s: DeploySettings): ResolvedSettings['iam'] {
  const routeTables = [
    ...new Set(
      config.clusters.flatMap((c) => (c.vip.provider === 'aws-route-table' ? c.vip.routeTableIds : [])),
    ),
  ];
  const stonith = config.clusters.some(
    (c) => c.failover.stonith.enabled && c.vip.provider !== 'aliyun-havip',
  );
  const hooks = config.clusters.some((c) => c.failover.hooks?.pre || c.failover.hooks?.post);
  const read: object[] = [];
  if (s.secretArns.length > 0)
    read.push({ Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: s.secretArns });
  if (s.kmsKeyArns.length > 0)
    read.push({
      Effect: 'Allow',
      Action: ['kms:Decrypt'],
      Resource: s.kmsKeyArns,
      // Only to decrypt secrets, never as a general decryption oracle.
      Condition: { StringEquals: { 'kms:ViaService': sub(`secretsmanager.\${AWS::Region}.amazonaws.com`) } },
    });
  // Describe* cannot be scoped to resources in EC2's IAM model.
  read.push({
    Effect: 'Allow',
    Action: ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeRouteTables', 'ec2:DescribeInstances'],
    Resource: '*',
  });
  // Only instances tagged mysql-failover=managed can be stopped.
  const stop = {
    Effect: 'Allow',
    Action: ['ec2:StopInstances'],
    Resource: sub(`arn:\${AWS::Partition}:ec2:\${AWS::Region}:\${AWS::AccountId}:instance/*`),
    Condition: { StringEquals: { 'aws:ResourceTag/mysql-failover': 'managed' } },
  };
  const replaceRoute = {
    Effect: 'Allow',
    Action: ['ec2:ReplaceRoute'],
    Resource: routeTables.map((id) =>
      sub(`arn:\${AWS::Partition}:ec2:\${AWS::Region}:\${AWS::AccountId}:route-table/${id}`),
    ),
  };
  const failover: object[] = [
    ...read,
    {
      Effect: 'Allow',
      Action: ['events:PutEvents'],
      Resource: sub(
        `arn:\${AWS::Partition}:events:\${AWS::Region}:\${AWS::AccountId}:event-bus/${s.eventBusName}`,
      ),
    },
  ];
  // The secondary IP moves only between ENIs tagged mysql-failover=managed.
  if (config.clusters.some((c) => c.vip.provider === 'aws-secondary-ip'))
    failover.push({
      Effect: 'Allow',
      Action: ['ec2:AssignPrivateIpAddresses'],
      Resource: sub(`arn:\${AWS::Partition}:ec2:\${AWS::Region}:\${AWS::AccountId}:network-interface/*`),
      Condition: { StringEquals: { 'aws:ResourceTag/mysql-failover': 'managed' } },
    });
  if (stonith) failover.push(stop);
  if (routeTables.length > 0) failover.push(replaceRoute);
  const hookFunctions = sub(
    `arn:\${AWS::Partition}:lambda:\${AWS::Region}:\${AWS::AccountId}:function:mysql-failover-hook-*`,
  );
  failover.push({ Effect: 'Allow', Action: ['lambda:InvokeFunction'], Resource: hookFunctions });
  // check's DryRuns are evaluated against check's own role: IAM cannot grant a DryRun without the
  // action, so check carries the failover role's StopInstances and ReplaceRoute statements (only
  // when a cluster needs them) and nothing else that writes.
  const check: object[] = [...read];
  if (stonith) check.push(stop);
  if (routeTables.length > 0) check.push(replaceRoute);
  if (hooks) check.push({ Effect: 'Allow', Action: ['lambda:GetFunction'], Resource: hookFunctions });
  return { failover, readOnly: read, check };
}
