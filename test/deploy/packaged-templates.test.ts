import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardCost, pricedResources } from '../../infra/bench/cost-model.ts';
import { PROJECT_ROOT } from '../../infra/local-cloud/packaged-functions.ts';
import {
  busiestShard,
  clustersHeldBy,
  defaultHealthCheckMemoryMb,
} from '../../lib/config/deploy-settings.ts';
import { loadConfig } from '../../lib/config/load-config.ts';
import { runCfnLint, runServerless } from './serverless-cli.ts';

const FIXTURES = join(PROJECT_ROOT, 'test/deploy/fixtures/all-features');
const CLUSTERS = 500;
// Lambda's limit on all of a function's environment variables together (keys and values).
const LAMBDA_ENV_LIMIT = 4096;
// What a CloudFormation intrinsic (Ref / GetAtt: a table name, an ARN) can become at deploy time:
// counted generously, so the measure cannot pass only because references look short here.
const INTRINSIC_SIZE = 256;

interface Template {
  Resources: Record<
    string,
    {
      Type: string;
      Properties: {
        Handler?: string;
        MemorySize?: number;
        Code?: { S3Key?: unknown };
        Environment?: { Variables?: Record<string, unknown> };
      };
    }
  >;
  Outputs?: Record<string, unknown>;
}

const work: string[] = [];
const temp = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  work.push(d);
  return d;
};

async function packageStage(stage: string, configDir: string): Promise<{ dir: string; template: Template }> {
  const dir = temp(`pkg-${stage}-`);
  const r = await runServerless(['package', '--stage', stage, '--package', dir], {
    FAILOVER_CONFIG_DIR: configDir,
  });
  if (r.code !== 0) throw new Error(`serverless package --stage ${stage} failed:\n${r.output.slice(-3000)}`);
  const path = join(dir, 'cloudformation-template-update-stack.json');
  return { dir, template: JSON.parse(readFileSync(path, 'utf8')) as Template };
}

function lambdaFunctions(t: Template) {
  return Object.entries(t.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function');
}

function envSize(vars: Record<string, unknown>): number {
  let size = 0;
  for (const [k, v] of Object.entries(vars))
    size += k.length + (typeof v === 'string' ? Buffer.byteLength(v) : INTRINSIC_SIZE);
  return size;
}

/** A cluster as an operator writes one; every other one on Alibaba (the larger shape). */
function generatedCluster(i: number) {
  const n = String(i).padStart(3, '0');
  const secret = `arn:aws:secretsmanager:eu-west-1:444455556666:secret:failover/c${n}`;
  const aliyun = i % 2 === 1;
  const nodes = [1, 2, 3].map((k) => ({
    id: `db${k}`,
    host: `10.${Math.floor(i / 200)}.${i % 200}.${10 + k}`,
    port: 3306,
    ...(aliyun
      ? { instanceId: `i-uf6c${n}node000${k}` }
      : { networkInterfaceId: `eni-0${n}00000000000${k}`.slice(0, 21) }),
    ...(k === 3 ? { promotionRule: 'must_not' } : {}),
  }));
  return {
    name: `c${n}`,
    primary: 'db1',
    nodes,
    credentials: {
      admin: { user: 'failover_admin', password: { secretsManager: secret, key: 'admin' } },
      replication: { user: 'repl', password: { secretsManager: secret, key: 'replication' } },
    },
    vip: aliyun
      ? {
          provider: 'aliyun-havip',
          address: `10.${Math.floor(i / 200)}.${i % 200}.50`,
          haVipId: `havip-uf6c${n}`,
          regionId: 'cn-shanghai',
          accessKeyId: { secretsManager: `${secret}-aliyun`, key: 'accessKeyId' },
          accessKeySecret: { secretsManager: `${secret}-aliyun`, key: 'accessKeySecret' },
        }
      : { provider: 'aws-secondary-ip', address: `10.${Math.floor(i / 200)}.${i % 200}.50` },
    clientEndpoint: { host: `10.${Math.floor(i / 200)}.${i % 200}.50`, port: 3306 },
  };
}

afterAll(() => {
  for (const d of work) rmSync(d, { recursive: true, force: true });
});

describe('the packaged templates', () => {
  it('pass cfn-lint with zero errors: the default stage and one with every optional feature on', async () => {
    const examples = temp('cfg-default-');
    copyFileSync(join(PROJECT_ROOT, 'config/clusters.example.json'), join(examples, 'clusters.example.json'));
    copyFileSync(join(PROJECT_ROOT, 'config/deploy.example.json'), join(examples, 'deploy.example.json'));
    // One at a time: packaging shares .esbuild/ and .build/ in the project.
    const plain = await packageStage('dev', examples);
    const features = await packageStage('features', FIXTURES);
    // The features stage really has the features on.
    const r = features.template.Resources;
    expect(r.AlertEmailSubscription).toBeDefined();
    const failoverPolicy = JSON.stringify(r.FailoverConfigPolicy);
    for (const want of [
      'ec2:StopInstances',
      'ec2:ReplaceRoute',
      'route-table/rtb-07e1c0de00000001',
      'kms:Decrypt',
      'event-bus/dba-events',
    ])
      expect(failoverPolicy).toContain(want);
    expect(JSON.stringify(r.HealthCheckLambdaFunction)).toContain('"ReservedConcurrentExecutions":2');
    expect(JSON.stringify(r.HealthCheckLambdaFunction)).toContain('"TracingConfig":{"Mode":"Active"}');
    // One setting for the bus: the functions' EVENT_BUS_NAME and the events:PutEvents statement.
    expect(r.FailoverWorkerLambdaFunction?.Properties.Environment?.Variables?.EVENT_BUS_NAME).toBe(
      'dba-events',
    );
    expect(JSON.stringify(r.StateTable)).toContain('"DeletionPolicy":"Retain"');
    // Deploy setting "dashboard" (default false, $3.00 a month): none in the default stage, not
    // even a conditional one, and no output naming it.
    const dashboards = (t: Template) =>
      Object.entries(t.Resources).filter(([, res]) => res.Type === 'AWS::CloudWatch::Dashboard');
    expect(dashboards(plain.template)).toEqual([]);
    expect(plain.template.Outputs).not.toHaveProperty('DashboardName');
    expect(plain.template.Outputs).toHaveProperty('AlertTopicArn');
    // "dashboard": true (the features stage): exactly one, named after the stage, with its output.
    expect(dashboards(features.template).map(([id]) => id)).toEqual(['Dashboard']);
    expect(JSON.stringify(r.Dashboard)).toContain('"DashboardName":"mysql-failover-features"');
    expect(features.template.Outputs?.DashboardName).toEqual({ Value: { Ref: 'Dashboard' } });
    // The cost model prices what each template deploys: $0 without, $3.00 with.
    expect(dashboardCost(pricedResources(plain.template).dashboards).monthlyUsd).toBe(0);
    expect(dashboardCost(pricedResources(features.template).dashboards).monthlyUsd).toBe(3);
    // The dashboard: per-cluster health and probe round time, every alarm, every function's logs.
    const body = String(
      (r.Dashboard!.Properties as { DashboardBody?: { 'Fn::Sub'?: string } }).DashboardBody?.['Fn::Sub'],
    );
    expect(JSON.parse(body).widgets.length).toBeGreaterThan(5);
    for (const want of [
      'stats min(ClusterHealthy)',
      'max(ProbeRoundMs)',
      'ExecutionsFailed',
      'failover-step',
    ])
      expect(body).toContain(want);
    for (const [id, res] of Object.entries(r))
      if (res.Type === 'AWS::CloudWatch::Alarm') expect(body).toContain(`\${${id}.Arn}`);
    for (const [id] of lambdaFunctions(features.template))
      expect(body, id).toContain(
        `/aws/lambda/mysql-failover-features-${id.replace(/LambdaFunction$/, '').replace(/^./, (c) => c.toLowerCase())}'`,
      );
    expect(JSON.stringify(plain.template.Resources.HealthCheckLambdaFunction)).not.toContain(
      'ReservedConcurrentExecutions',
    );
    for (const p of [plain, features]) {
      for (const [id, fn] of lambdaFunctions(p.template)) {
        const vars = fn.Properties.Environment?.Variables ?? {};
        expect(Object.keys(vars), id).not.toContain('FAILOVER_CONFIG');
        expect(vars.FAILOVER_CONFIG_FILE, id).toBe('.build/failover-config.json');
      }
      const lint = await runCfnLint(join(p.dir, 'cloudformation-template-update-stack.json'));
      const errors = lint.output.split('\n').filter((l) => /:E\d{4}:/.test(l));
      expect(errors, lint.output).toEqual([]);
      expect((lint.code ?? 1) & 2, lint.output).toBe(0);
    }
  });
});

describe('500 clusters in one deployment', () => {
  let pkg: { dir: string; template: Template };
  let extracted: Map<string, string>;
  beforeAll(async () => {
    const dir = temp('cfg-scale-');
    const clusters = Array.from({ length: CLUSTERS }, (_, i) => generatedCluster(i));
    writeFileSync(join(dir, 'clusters.scale.json'), JSON.stringify({ version: 1, clusters }, null, 2));
    copyFileSync(join(FIXTURES, 'deploy.features.json'), join(dir, 'deploy.scale.json'));
    pkg = await packageStage('scale', dir);
    // Unzip under the project, as Lambda would under /var/task: the bundles find the AWS SDK
    // (which Lambda's runtime provides) in node_modules above them.
    extracted = new Map();
    const root = join(PROJECT_ROOT, '.serverless-deploy-test');
    work.push(root);
    for (const [, fn] of lambdaFunctions(pkg.template)) {
      const key = JSON.stringify(fn.Properties.Code?.S3Key ?? '');
      const zip = join(pkg.dir, basename(key.replace(/"$/, '').replace(/^"/, '')));
      if (extracted.has(zip)) continue;
      const out = join(root, basename(zip, '.zip'));
      rmSync(out, { recursive: true, force: true });
      mkdirSync(out, { recursive: true });
      execFileSync('python3', ['-m', 'zipfile', '-e', zip, out]);
      extracted.set(zip, out);
    }
  }, 300_000);

  it('sizes healthCheck by the clusters of its busiest shard (healthCheckMemoryMb unset)', () => {
    const clusters = Array.from({ length: CLUSTERS }, (_, i) => generatedCluster(i));
    // deploy.features.json: 3 shards, no healthCheckMemoryMb. About 167 clusters a shard.
    const busiest = busiestShard(clusters, 3);
    const mb = defaultHealthCheckMemoryMb(busiest);
    // The smallest 128 MB step that holds the busiest shard.
    expect(clustersHeldBy(mb)).toBeGreaterThanOrEqual(busiest);
    expect(clustersHeldBy(mb - 128)).toBeLessThan(busiest);
    const health = lambdaFunctions(pkg.template).find(([id]) => id === 'HealthCheckLambdaFunction');
    expect(health?.[1].Properties.MemorySize).toBe(mb);
  });

  it("keeps every function's environment under Lambda's 4 KB", () => {
    const functions = lambdaFunctions(pkg.template);
    // healthCheck, the operator actions, failoverWorker (every Task state) and executionEnded.
    expect(functions.length).toBeGreaterThanOrEqual(9);
    let largest = 0;
    for (const [id, fn] of functions) {
      const size = envSize(fn.Properties.Environment?.Variables ?? {});
      expect(size, `${id} environment ${size} bytes`).toBeLessThan(LAMBDA_ENV_LIMIT);
      largest = Math.max(largest, size);
    }
    console.log(
      `largest function environment with ${CLUSTERS} clusters: ${largest} bytes (intrinsics counted as ${INTRINSIC_SIZE})`,
    );
  });

  it('ships the config in every artifact, and every function loads all 500 clusters from it', () => {
    for (const [id, fn] of lambdaFunctions(pkg.template)) {
      const key = String((fn.Properties.Code?.S3Key as string | undefined) ?? '');
      const root = extracted.get(join(pkg.dir, basename(key)));
      expect(root, `${id}: artifact ${key} unzipped`).toBeDefined();
      const vars = fn.Properties.Environment?.Variables ?? {};
      const config = loadConfig({
        FAILOVER_CONFIG_FILE: String(vars.FAILOVER_CONFIG_FILE),
        LAMBDA_TASK_ROOT: root!,
      });
      expect(config.clusters.length, id).toBe(CLUSTERS);
      expect(config.clusters[CLUSTERS - 1]?.name).toBe('c499');
    }
  });

  it("carries in each function's zip its own bundle and chunks and no other function's", () => {
    const bundles = lambdaFunctions(pkg.template).map(
      ([, fn]) => String(fn.Properties.Handler).split('.')[0]!,
    );
    let chunked = 0;
    for (const [id, fn] of lambdaFunctions(pkg.template)) {
      const root = extracted.get(join(pkg.dir, basename(String(fn.Properties.Code?.S3Key))))!;
      const own = String(fn.Properties.Handler).split('.')[0]!;
      const files = execFileSync('find', ['.', '-type', 'f'], { cwd: root, encoding: 'utf8' })
        .split('\n')
        .filter(Boolean)
        .map((f) => f.slice(2));
      expect(files, id).toContain(`${own}.mjs`);
      for (const f of files) {
        if (f === '.build/failover-config.json' || f === `${own}.mjs`) continue;
        // Code split off behind import() (serverless.yml esbuild.splitting): <bundle>.chunks/.
        expect(f, `${id}: ${f} is not one of its own chunks`).toMatch(
          new RegExp(`^${own}\\.chunks/[^/]+\\.mjs$`),
        );
        chunked++;
      }
      for (const other of bundles.filter((b) => b !== own))
        expect(existsSync(join(root, `${other}.mjs`)), `${id} carries ${other}.mjs`).toBe(false);
    }
    expect(chunked, 'chunks across all zips').toBeGreaterThan(0);
  });

  it('the bundled status handler, run as Lambda runs it, knows all 500 clusters', async () => {
    const [, fn] = lambdaFunctions(pkg.template).find(([id]) => id === 'StatusLambdaFunction')!;
    const root = extracted.get(join(pkg.dir, basename(String(fn.Properties.Code?.S3Key))))!;
    const [file, exported] = String(fn.Properties.Handler).split('.');
    const bundle = [`${file}.mjs`, `${file}.js`].map((f) => join(root, f)).find((f) => existsSync(f));
    expect(bundle, `bundle of ${fn.Properties.Handler}`).toBeDefined();
    const saved = { ...process.env };
    Object.assign(process.env, {
      FAILOVER_CONFIG_FILE: String(fn.Properties.Environment?.Variables?.FAILOVER_CONFIG_FILE),
      LAMBDA_TASK_ROOT: root,
      STATE_TABLE: 'mysql-failover-scale-StateTable',
      AWS_REGION: 'eu-west-1',
      FAILOVER_QUIET: '1',
    });
    try {
      const mod = (await import(pathToFileURL(bundle!).href)) as Record<
        string,
        (e: unknown, c: unknown) => Promise<unknown>
      >;
      const started = performance.now();
      // An unknown cluster: the answer lists every cluster the function loaded, and touches no AWS API.
      const err = (await mod[exported!]!({ cluster: 'no-such-cluster' }, {}).catch((e: Error) => e)) as Error;
      const ms = performance.now() - started;
      expect(err.name).toBe('UnknownClusterError');
      const known = /Known clusters: (.*)\.$/.exec(err.message)?.[1]?.split(', ') ?? [];
      expect(known.length).toBe(CLUSTERS);
      expect(known).toContain('c000');
      expect(known).toContain('c499');
      console.log(
        `bundled status handler: loaded and validated ${CLUSTERS} clusters in ${ms.toFixed(0)} ms (cold)`,
      );
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });
});
