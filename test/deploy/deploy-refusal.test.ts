import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../infra/local-cloud/packaged-functions.ts';
import { resolveDeploySettings } from '../../lib/config/deploy-settings.ts';
import { runServerless } from './serverless-cli.ts';

const FIXTURES = join(PROJECT_ROOT, 'test/deploy/fixtures/all-features');
const dirs: string[] = [];
const configDir = (files: Record<string, string | object>): string => {
  const dir = mkdtempSync(join(tmpdir(), 'deploy-config-'));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    if (typeof content === 'string') copyFileSync(content, join(dir, name));
    else writeFileSync(join(dir, name), JSON.stringify(content));
  }
  return dir;
};
const examples = {
  'clusters.example.json': join(PROJECT_ROOT, 'config/clusters.example.json'),
  'deploy.example.json': join(PROJECT_ROOT, 'config/deploy.example.json'),
};
const good = () => ({
  ...examples,
  'clusters.prod.json': join(FIXTURES, 'clusters.features.json'),
  'deploy.prod.json': join(FIXTURES, 'deploy.features.json'),
});
const readFixture = (name: string) => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8'));

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// The refusals happen while osls resolves serverless.yml's variables: before it packages, looks for
// credentials or calls AWS. The runs have no credentials at all, so a deploy that got further would
// end in a different error; the control shows that a valid config does get further.
describe('serverless deploy', () => {
  it('refuses a stage whose config files are missing, naming the file to create from which example', async () => {
    const dir = configDir(examples);
    const r = await runServerless(['deploy', '--stage', 'prod'], { FAILOVER_CONFIG_DIR: dir });
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(
      /ConfigError: serverless deploy --stage prod: \S*clusters\.prod\.json is missing/,
    );
    expect(r.output).toMatch(/Create it from \S*clusters\.example\.json/);
    expect(r.output).not.toContain('Deploying mysql-failover');
  });

  it('refuses the examples copied as the stage config (placeholder ARNs, subnets, ENIs)', async () => {
    const dir = configDir({
      ...examples,
      'clusters.prod.json': examples['clusters.example.json'],
      'deploy.prod.json': examples['deploy.example.json'],
    });
    const r = await runServerless(['deploy', '--stage', 'prod'], { FAILOVER_CONFIG_DIR: dir });
    expect(r.code).not.toBe(0);
    expect(r.output).toContain("clusters.prod.json still holds the example's placeholder values");
    expect(r.output).toContain('clusters[0].nodes[0].networkInterfaceId = "eni-0a1b2c3d4e5f60011"');
    expect(r.output).not.toContain('Deploying mysql-failover');
  });

  it('refuses deploy settings left at the example values', async () => {
    const dir = configDir({
      ...examples,
      'clusters.prod.json': join(FIXTURES, 'clusters.features.json'),
      'deploy.prod.json': examples['deploy.example.json'],
    });
    const r = await runServerless(['deploy', '--stage', 'prod'], { FAILOVER_CONFIG_DIR: dir });
    expect(r.code).not.toBe(0);
    expect(r.output).toContain('deploy.prod.json still holds the example');
    expect(r.output).toContain('subnetIds[0] = "subnet-0a1b2c3d4e5f60001"');
  });

  it('gets past the validation with a real config (control: the refusals above are the validation)', async () => {
    // An empty --package directory stops the deploy right after variable resolution, offline.
    const pkg = mkdtempSync(join(tmpdir(), 'deploy-pkg-'));
    dirs.push(pkg);
    const r = await runServerless(['deploy', '--stage', 'prod', '--package', pkg], {
      FAILOVER_CONFIG_DIR: configDir(good()),
    });
    expect(r.output).toContain('Deploying mysql-failover to stage prod (eu-west-1)');
    expect(r.output).not.toContain('ConfigError');
  });
});

describe('serverless package', () => {
  it('fails on a bad cluster config, naming the key', async () => {
    const bad = readFixture('clusters.features.json');
    bad.clusters[1].nodes[0].port = 'three';
    const pkg = mkdtempSync(join(tmpdir(), 'deploy-pkg-'));
    dirs.push(pkg);
    const r = await runServerless(['package', '--stage', 'prod', '--package', pkg], {
      FAILOVER_CONFIG_DIR: configDir({ ...good(), 'clusters.prod.json': bad }),
    });
    expect(r.code).not.toBe(0);
    expect(r.output).toContain('Invalid failover configuration in');
    expect(r.output).toContain('clusters[1].nodes[0].port:');
  });

  it('fails on a dashboard setting that is not a boolean, naming the key and the values it takes', async () => {
    const settings = { ...readFixture('deploy.features.json'), dashboard: 'yes' };
    const pkg = mkdtempSync(join(tmpdir(), 'deploy-pkg-'));
    dirs.push(pkg);
    const r = await runServerless(['package', '--stage', 'prod', '--package', pkg], {
      FAILOVER_CONFIG_DIR: configDir({ ...good(), 'deploy.prod.json': settings }),
    });
    expect(r.code).not.toBe(0);
    expect(r.output).toContain('Invalid deploy settings in');
    expect(r.output).toMatch(/dashboard: true \(deploy the dashboard, \$3\.00 a month\) or false \(none\)/);
  });
});

describe('resolveDeploySettings', () => {
  const resolve = (files: Record<string, string | object>, command = 'package') =>
    resolveDeploySettings({
      root: mkdtempSync(join(tmpdir(), 'root-')),
      stage: 'prod',
      command,
      configDir: configDir(files),
    });

  it('falls back to the examples for package, and says so', () => {
    const s = resolve(examples);
    expect(s.usingExamples).toBe(true);
    expect(s.clusterCount).toBe(1);
    expect(s.healthCheckReservedConcurrency).toBeNull();
    expect(s.eventBusName).toBe('default');
    // No dashboard unless asked for ($3.00 a month).
    expect(s.dashboard).toBe(false);
  });

  it('uses the stage files for deploy and builds the config-dependent IAM', () => {
    const s = resolve(good(), 'deploy');
    expect(s.usingExamples).toBe(false);
    expect(s.clusterCount).toBe(3);
    expect(s.healthCheckReservedConcurrency).toBe(2);
    expect(s.dashboard).toBe(true);
    const text = JSON.stringify(s.iam.failover);
    expect(text).toContain('route-table/rtb-07e1c0de00000001');
    expect(text).toContain('event-bus/dba-events');
    expect(text).toContain('kms:Decrypt');
    expect(text).not.toContain('UnassignPrivateIpAddresses');
    // The read-only role cannot move the VIP, stop instances or invoke hooks.
    const ro = JSON.stringify(s.iam.readOnly);
    for (const action of [
      'AssignPrivateIpAddresses',
      'ReplaceRoute',
      'StopInstances',
      'InvokeFunction',
      'PutEvents',
    ])
      expect(ro).not.toContain(action);
  });

  it('rejects a hook name the IAM pattern would deny', () => {
    const bad = readFixture('clusters.features.json');
    bad.clusters[0].failover.hooks.pre = 'drain-connections';
    expect(() => resolve({ ...good(), 'clusters.prod.json': bad })).toThrow(
      /clusters\[0\]\.failover\.hooks\.pre: .*mysql-failover-hook-/,
    );
  });

  it('rejects secrets the role may not read, naming the key', () => {
    const settings = readFixture('deploy.features.json');
    settings.secretArns = ['arn:aws:secretsmanager:eu-west-1:444455556666:secret:failover/orders*'];
    expect(() => resolve({ ...good(), 'deploy.prod.json': settings })).toThrow(
      /clusters\[1\]\.credentials\.admin\.password\.secretsManager: arn:aws:secretsmanager:eu-west-1:444455556666:secret:failover\/billing/,
    );
  });

  it('rejects a dashboard setting that is not a boolean, naming the key', () => {
    for (const dashboard of ['true', 1, null]) {
      const settings = { ...readFixture('deploy.features.json'), dashboard };
      expect(() => resolve({ ...good(), 'deploy.prod.json': settings }), String(dashboard)).toThrow(
        /deploy\.prod\.json:\ndashboard: true \(deploy the dashboard, \$3\.00 a month\) or false \(none\), without quotes/,
      );
    }
  });

  it('rejects unknown deploy settings keys', () => {
    const settings = { ...readFixture('deploy.features.json'), reservedConcurrency: 2 };
    expect(() => resolve({ ...good(), 'deploy.prod.json': settings })).toThrow(
      /reservedConcurrency: unknown key/,
    );
  });
});
