import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCluster } from '../../lib/operator/check.ts';
import { createRuntime, getRuntime, resetRuntime } from '../../lib/runtime.ts';
import { type LiveEnv, startLiveEnv } from '../health/live-env.ts';

// `check` against real servers and the emulated EC2 / Lambda: what only fails at failover time.
describe('check verifies STONITH and hooks before a failover needs them', () => {
  let env: LiveEnv;
  beforeAll(async () => {
    env = await startLiveEnv({ name: 'preflight' });
    // STONITH needs each node's instance id: the emulated ENIs' instances, known once EC2 runs.
    const file = env.cloud.configFile;
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    const cluster = doc.clusters[0];
    for (const n of cluster.nodes) n.instanceId = instanceOf(n.id);
    cluster.failover = {
      stonith: { enabled: true },
      hooks: { pre: 'mysql-failover-hook-drain', post: 'mysql-failover-hook-notify' },
    };
    writeFileSync(file, JSON.stringify(doc, null, 2));
    resetRuntime(createRuntime(process.env, { log: () => {} }));
  });
  afterAll(async () => {
    await env?.close();
  });

  const instanceOf = (nodeId: string) =>
    env.cloud.ec2.model.networkInterface(env.cloud.eniOf[nodeId]!)!.instanceId!;
  const run = async () => {
    const rt = getRuntime();
    return checkCluster(rt, rt.cluster(env.name));
  };

  it('passes when every instance is tagged and every hook exists, and stops nothing', async () => {
    env.cloud.lambda.register('mysql-failover-hook-drain', () => ({ ok: true }));
    env.cloud.lambda.register('mysql-failover-hook-notify', () => ({ ok: true }));
    const r = await run();
    const failing = r.findings.filter((f) => /^(stonith|hook)/.test(f.check));
    expect(failing, r.report).toEqual([]);
    expect(r.passed).toContain('STONITH instances tagged and StopInstances allowed (DryRun)');
    expect(r.passed).toContain('hook mysql-failover-hook-drain exists');
    expect(r.passed).toContain('hook mysql-failover-hook-notify exists');
    for (const n of env.cluster.nodes)
      expect(env.cloud.ec2.model.instance(instanceOf(n.id))?.state).toBe('running');
    // No hook was invoked: GetFunction only.
    expect(env.cloud.lambda.invocations()).toEqual([]);
  });

  it('reports an untagged instance: the tag and the refused StopInstances DryRun, naming the node', async () => {
    const id = instanceOf('db2');
    env.cloud.ec2.model.setInstanceTags(id, { Name: 'db2' });
    try {
      const r = await run();
      expect(r.ok).toBe(false);
      const tag = r.findings.find((f) => f.check === 'stonith-tag');
      expect(tag?.nodeId).toBe('db2');
      expect(tag?.fix).toContain(
        `aws ec2 create-tags --resources ${id} --tags Key=mysql-failover,Value=managed`,
      );
      const perm = r.findings.find((f) => f.check === 'stonith-permission');
      expect(perm?.nodeId).toBe('db2');
      expect(perm?.message).toContain('UnauthorizedOperation');
      expect(r.passed).not.toContain('STONITH instances tagged and StopInstances allowed (DryRun)');
      expect(env.cloud.ec2.model.instance(id)?.state).toBe('running');
    } finally {
      env.cloud.ec2.model.setInstanceTags(id, { 'mysql-failover': 'managed' });
    }
  });

  it('reports a database ENI without the tag the VIP move needs (AssignPrivateIpAddresses has no DryRun)', async () => {
    const eni = env.cloud.eniOf.db3!;
    env.cloud.ec2.model.setNetworkInterfaceTags(eni, {});
    try {
      const r = await run();
      const f = r.findings.find((x) => x.check === 'vip-eni-tag');
      expect(f?.nodeId).toBe('db3');
      expect(f?.fix).toBe(`aws ec2 create-tags --resources ${eni} --tags Key=mysql-failover,Value=managed`);
      expect(r.ok).toBe(false);
    } finally {
      env.cloud.ec2.model.setNetworkInterfaceTags(eni, { 'mysql-failover': 'managed' });
    }
    const again = await run();
    expect(again.passed).toContain('VIP network interfaces tagged');
  });

  it('reports a hook function that does not exist', async () => {
    const r = await run();
    const hooks = r.findings.filter((f) => f.check === 'hook-function');
    // Registered in the first test; the emulator keeps them. Remove one by checking another name.
    expect(hooks).toEqual([]);
    const rt = getRuntime();
    const c = rt.cluster(env.name);
    const missing = {
      ...c,
      failover: { ...c.failover, hooks: { ...c.failover.hooks!, post: 'mysql-failover-hook-gone' } },
    };
    const r2 = await checkCluster(rt, missing);
    const f = r2.findings.find((x) => x.check === 'hook-function');
    expect(f?.message).toContain('hook function mysql-failover-hook-gone does not exist');
    expect(r2.ok).toBe(false);
  });
});
