/**
 * The power actions STONITH uses, through the real SDKs against the emulators: EC2 StopInstances /
 * DescribeInstances (@aws-sdk/client-ec2, SigV4) and Alibaba ECS StopInstance /
 * DescribeInstanceStatus / DescribeInstances (@alicloud/pop-core), and the adapters on top.
 */
import RPCClient from '@alicloud/pop-core';
import { DescribeInstancesCommand, EC2Client, StopInstancesCommand } from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AliyunEmulator, startAliyunEmulator } from '../../infra/local-cloud/aliyun/emulator.ts';
import { type Ec2Emulator, startEc2Emulator } from '../../infra/local-cloud/ec2-emulator.ts';
import { AliyunStonith, Ec2Stonith } from '../../lib/adapters/stonith.ts';
import { createEc2Client } from '../../lib/adapters/vip/aws-secondary-ip.ts';

const AWS_CREDS = {
  accessKeyId: 'AKIASTONITHTEST00001',
  secretAccessKey: 'stonith/Secret+Key/0123456789abcdefghij',
};
const ALI_CREDS = {
  accessKeyId: 'LTAI5tStonithTestKey01',
  accessKeySecret: 'stonithSecret+/AbCdEf0123456789xyz',
};
const I_A = 'i-0a000000000000a01';
const I_B = 'i-0a000000000000b02';

async function rejection(p: Promise<unknown>): Promise<{ name: string; message: string; code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as { name: string; message: string; code?: string };
  }
  throw new Error('expected a rejection');
}

describe('EC2 emulator power actions', () => {
  let emu: Ec2Emulator;
  let ec2: EC2Client;

  beforeEach(async () => {
    emu = await startEc2Emulator({ credentials: AWS_CREDS, stopMs: 300, forceStopMs: 80 });
    emu.model.addSubnet({
      subnetId: 'subnet-0a000000000000001',
      vpcId: 'vpc-0a000000000000001',
      cidrBlock: '10.0.1.0/24',
      availabilityZone: 'us-east-1a',
    });
    for (const [i, instanceId] of [I_A, I_B].entries()) {
      emu.model.addNetworkInterface({
        networkInterfaceId: `eni-0a00000000000001${i}`,
        subnetId: 'subnet-0a000000000000001',
        privateIpAddress: `10.0.1.${11 + i}`,
        instanceId,
      });
    }
    ec2 = new EC2Client({ region: 'us-east-1', endpoint: emu.url, credentials: AWS_CREDS, maxAttempts: 1 });
  });

  afterEach(async () => {
    ec2.destroy();
    await emu.close();
  });

  const stateOf = async (id: string) => {
    const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    return out.Reservations?.[0]?.Instances?.[0]?.State;
  };

  it('lists the instances the ENIs are attached to as running, with filters', async () => {
    const all = await ec2.send(new DescribeInstancesCommand({}));
    const ids = all.Reservations?.flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId);
    expect(ids).toEqual([I_A, I_B]);
    expect(await stateOf(I_A)).toEqual({ Code: 16, Name: 'running' });
    const byEni = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [{ Name: 'network-interface.network-interface-id', Values: ['eni-0a000000000000011'] }],
      }),
    );
    expect(byEni.Reservations?.[0]?.Instances?.[0]?.InstanceId).toBe(I_B);
  });

  it('moves a forced stop from running through stopping to stopped after the force delay, powering it off first', async () => {
    const poweredOff: string[] = [];
    emu.model.powerOff = async (id) => {
      await new Promise((r) => setTimeout(r, 30));
      poweredOff.push(id);
    };
    const out = await ec2.send(new StopInstancesCommand({ InstanceIds: [I_A], Force: true }));
    expect(out.StoppingInstances).toEqual([
      {
        InstanceId: I_A,
        CurrentState: { Code: 64, Name: 'stopping' },
        PreviousState: { Code: 16, Name: 'running' },
      },
    ]);
    expect((await stateOf(I_A))?.Name).toBe('stopping');
    await new Promise((r) => setTimeout(r, 200));
    expect(poweredOff).toEqual([I_A]);
    const inst = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [I_A] }))).Reservations?.[0]
      ?.Instances?.[0];
    expect(inst?.State).toEqual({ Code: 80, Name: 'stopped' });
    expect(inst?.StateReason?.Code).toBe('Client.UserInitiatedShutdown');
    expect((await stateOf(I_B))?.Name).toBe('running');
    // Stopping a stopped instance succeeds and reports it stopped, as EC2 does.
    const again = await ec2.send(new StopInstancesCommand({ InstanceIds: [I_A], Force: true }));
    expect(again.StoppingInstances?.[0]?.CurrentState?.Name).toBe('stopped');
  });

  it('takes the longer delay without Force', async () => {
    await ec2.send(new StopInstancesCommand({ InstanceIds: [I_B] }));
    await new Promise((r) => setTimeout(r, 150));
    expect((await stateOf(I_B))?.Name).toBe('stopping');
    await new Promise((r) => setTimeout(r, 250));
    expect((await stateOf(I_B))?.Name).toBe('stopped');
  });

  it('answers NotFound, Malformed and IncorrectInstanceState as EC2 does', async () => {
    const missing = await rejection(
      ec2.send(new StopInstancesCommand({ InstanceIds: ['i-0ffffffffffffffff'], Force: true })),
    );
    expect(missing.name).toBe('InvalidInstanceID.NotFound');
    expect(missing.message).toBe("The instance ID 'i-0ffffffffffffffff' does not exist");
    const malformed = await rejection(ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-xyz'] })));
    expect(malformed.name).toBe('InvalidInstanceID.Malformed');
    emu.model.setInstanceState(I_B, 'terminated');
    const terminated = await rejection(ec2.send(new StopInstancesCommand({ InstanceIds: [I_B] })));
    expect(terminated.name).toBe('IncorrectInstanceState');
    expect((await stateOf(I_B))?.Name).toBe('terminated');
  });

  it('lets Ec2Stonith stop an instance and confirm it, and fail typed on a missing one', async () => {
    const client = createEc2Client({ region: 'us-east-1', endpoint: emu.url, credentials: AWS_CREDS });
    const stonith = new Ec2Stonith({ nodes: { db1: I_A, db9: 'i-0ffffffffffffffff' }, client, pollMs: 20 });
    emu.faults.set('StopInstances', { throttleNext: 1 });
    const r = await stonith.stop('db1', { deadline: Date.now() + 5000 });
    expect(r).toMatchObject({ instanceId: I_A, state: 'stopped' });
    expect(r.apiCalls).toBeGreaterThanOrEqual(3);
    expect(emu.faults.calls('StopInstances')).toBe(2);
    const err = await rejection(stonith.stop('db9', { deadline: Date.now() + 2000 }));
    expect(err.name).toBe('StonithFailedError');
    expect(err.message).toContain('InvalidInstanceID.NotFound');
    expect(err.message).not.toContain(AWS_CREDS.secretAccessKey);
    client.destroy();
  });
});

describe('Alibaba ECS emulator power actions', () => {
  let emu: AliyunEmulator;
  const ecs = () => new RPCClient({ ...ALI_CREDS, endpoint: emu.url, apiVersion: '2014-05-26' }) as RPCClient;

  beforeEach(async () => {
    emu = await startAliyunEmulator({ credentials: ALI_CREDS, regionId: 'cn-hangzhou', transitionMs: 60 });
    emu.model.addVSwitch({ vSwitchId: 'vsw-bp1stonith0001' });
    emu.model.addInstance({
      instanceId: 'i-bp1stonith000001',
      vSwitchId: 'vsw-bp1stonith0001',
      privateIpAddress: '10.0.1.11',
    });
  });

  afterEach(async () => {
    await emu.close();
  });

  const status = async () =>
    (
      await ecs().request<{ InstanceStatuses: { InstanceStatus: Array<{ Status: string }> } }>(
        'DescribeInstanceStatus',
        { RegionId: 'cn-hangzhou', 'InstanceId.1': 'i-bp1stonith000001' },
        { method: 'POST' },
      )
    ).InstanceStatuses.InstanceStatus[0]?.Status;

  it('stops an instance with ForceStop through pop-core and refuses a second stop', async () => {
    const poweredOff: string[] = [];
    emu.model.powerOff = (id) => {
      poweredOff.push(id);
    };
    const res = await ecs().request<{ RequestId: string }>(
      'StopInstance',
      { InstanceId: 'i-bp1stonith000001', ForceStop: 'true' },
      { method: 'POST' },
    );
    expect(res.RequestId).toMatch(/.+/);
    expect(await status()).toBe('Stopping');
    await new Promise((r) => setTimeout(r, 150));
    expect(await status()).toBe('Stopped');
    expect(poweredOff).toEqual(['i-bp1stonith000001']);
    const described = await ecs().request<{ Instances: { Instance: Array<{ Status: string }> } }>(
      'DescribeInstances',
      { RegionId: 'cn-hangzhou', InstanceIds: JSON.stringify(['i-bp1stonith000001']) },
      { method: 'POST' },
    );
    expect(described.Instances.Instance.map((i) => i.Status)).toEqual(['Stopped']);
    const again = (await rejection(
      ecs().request('StopInstance', { InstanceId: 'i-bp1stonith000001' }, { method: 'POST' }),
    )) as { code?: string; data?: { Code?: string } };
    expect(again.data?.Code).toBe('IncorrectInstanceStatus');
    const missing = (await rejection(
      ecs().request('StopInstance', { InstanceId: 'i-bp1nothere000001' }, { method: 'POST' }),
    )) as { data?: { Code?: string } };
    expect(missing.data?.Code).toBe('InvalidInstanceId.NotFound');
  });

  it('lets AliyunStonith stop an instance, accept one already stopped, and keep secrets out of errors', async () => {
    const stonith = new AliyunStonith({
      nodes: { db1: 'i-bp1stonith000001', db9: 'i-bp1nothere000001' },
      regionId: 'cn-hangzhou',
      endpoint: emu.url,
      ...ALI_CREDS,
      pollMs: 20,
    });
    const r = await stonith.stop('db1', { deadline: Date.now() + 5000 });
    expect(r).toMatchObject({ instanceId: 'i-bp1stonith000001', state: 'Stopped' });
    const again = await stonith.stop('db1', { deadline: Date.now() + 5000 });
    expect(again.state).toBe('Stopped');
    const err = await rejection(stonith.stop('db9', { deadline: Date.now() + 2000 }));
    expect(err.name).toBe('StonithFailedError');
    expect(err.message).toContain('InvalidInstanceId.NotFound');
    expect(err.message).not.toContain(ALI_CREDS.accessKeyId);
    expect(err.message).not.toContain('Signature');
  });
});
