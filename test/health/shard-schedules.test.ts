import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import { type LocalCloud, startLocalCloud } from '../../infra/local-cloud/local-cloud.ts';
import { PROJECT_ROOT, packagingTmpDir, readSchedule } from '../../infra/local-cloud/packaged-functions.ts';
import { shardOf } from '../../lib/health/shards.ts';

/**
 * The fan-out as deployed: `healthCheckShards: 3` in the stage's deploy settings packages three
 * EventBridge rules on healthCheck, each with its `{shard, of}` input, and the local cloud's
 * scheduler fires every one of them with that input, as EventBridge would.
 */
describe('health-check schedules fanned out to shards', () => {
  const configDir = mkdtempSync(join(tmpdir(), 'smf-shards-cfg-'));
  const outDir = mkdtempSync(join(tmpdir(), 'smf-shards-pkg-'));
  let cluster: MariaDbCluster | undefined;
  let cloud: LocalCloud | undefined;

  beforeAll(() => {
    copyFileSync(join(PROJECT_ROOT, 'config/clusters.example.json'), join(configDir, 'clusters.shards.json'));
    const deploy = JSON.parse(readFileSync(join(PROJECT_ROOT, 'config/deploy.example.json'), 'utf8'));
    writeFileSync(join(configDir, 'deploy.shards.json'), JSON.stringify({ ...deploy, healthCheckShards: 3 }));
    const tmp = packagingTmpDir();
    const r = spawnSync(
      join(PROJECT_ROOT, 'node_modules/.bin/serverless'),
      ['package', '--stage', 'shards', '--package', outDir],
      {
        cwd: PROJECT_ROOT,
        encoding: 'utf8',
        env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', FAILOVER_CONFIG_DIR: configDir, ...tmp.env },
      },
    );
    tmp.cleanup();
    if (r.status !== 0) throw new Error(`serverless package failed:\n${r.stdout}\n${r.stderr}`);
  }, 240_000);

  afterAll(async () => {
    await cloud?.stop();
    await cluster?.destroy();
    rmSync(configDir, { recursive: true, force: true });
    rmSync(outDir, { recursive: true, force: true });
  });

  it('packages one rate(1 minute) rule per shard with its {shard, of} input', () => {
    const template = join(outDir, 'cloudformation-template-update-stack.json');
    const t = JSON.parse(readFileSync(template, 'utf8')) as {
      Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
    };
    const rules = Object.values(t.Resources).filter(
      (r) =>
        r.Type === 'AWS::Events::Rule' &&
        JSON.stringify(r.Properties.Targets ?? []).includes('"HealthCheckLambdaFunction"'),
    );
    expect(rules.map((r) => r.Properties.ScheduleExpression)).toEqual([
      'rate(1 minute)',
      'rate(1 minute)',
      'rate(1 minute)',
    ]);
    const inputs = rules.flatMap((r) =>
      (r.Properties.Targets as Array<{ Input: string }>).map((x) => JSON.parse(x.Input)),
    );
    expect(inputs).toEqual([
      { shard: 0, of: 3 },
      { shard: 1, of: 3 },
      { shard: 2, of: 3 },
    ]);
    // Each rule may invoke the function (one AWS::Lambda::Permission per rule).
    const perms = Object.values(t.Resources).filter(
      (r) =>
        r.Type === 'AWS::Lambda::Permission' &&
        JSON.stringify(r.Properties.FunctionName).includes('HealthCheckLambdaFunction'),
    );
    expect(perms).toHaveLength(3);
    expect(readSchedule(template, 'HealthCheck').rules).toEqual(
      inputs.map((input) => ({ rateMs: 60_000, input })),
    );
  });

  it('the local cloud fires every packaged rule with its input; the cluster is probed by its shard only', async () => {
    cluster = await startCluster({ nodes: 2 });
    const logs: Array<Record<string, unknown>> = [];
    cloud = await startLocalCloud({
      cluster,
      clusterName: 'sharded',
      artifactDir: outDir,
      runtime: 'inprocess',
      healthCheckTimeoutMs: 7000,
      schedule: false,
      warmUp: false,
      onLog: (e) => logs.push(e),
    });
    expect(cloud.healthCheckSchedules.map((s) => s.input)).toEqual([
      { shard: 0, of: 3 },
      { shard: 1, of: 3 },
      { shard: 2, of: 3 },
    ]);
    await cloud.tick();
    const starts = logs.filter((e) => e.type === 'health-check-start');
    expect(starts.map((e) => [e.shard, e.of]).sort()).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
    ]);
    // The one cluster belongs to exactly one shard, the one its name hashes to.
    const home = shardOf('sharded', 3);
    for (const e of starts) expect(e.clusters).toBe(e.shard === home ? 1 : 0);
  }, 120_000);
});
