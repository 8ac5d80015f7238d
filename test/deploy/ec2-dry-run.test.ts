/**
 * The EC2 emulator answers DryRun and authorization as EC2 does, through the real SDK: a DryRun
 * that the policy allows is DryRunOperation (412) and changes nothing; one it does not allow is
 * UnauthorizedOperation (403), and so is the real call. `check` relies on both answers.
 */
import {
  AssignPrivateIpAddressesCommand,
  DescribeInstancesCommand,
  DescribeRouteTablesCommand,
  EC2Client,
  ReplaceRouteCommand,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Ec2Emulator, startEc2Emulator } from '../../infra/local-cloud/ec2-emulator.ts';

const CREDS = {
  accessKeyId: 'AKIADRYRUNTEST000001',
  secretAccessKey: 'dryrun/Secret+Key/0123456789abcdefghij',
};
const I_A = 'i-0a000000000000a01';
const I_B = 'i-0a000000000000b02';
const RTB = 'rtb-0a000000000000001';

async function rejection(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    return err as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
  }
  throw new Error('expected a rejection');
}

describe('EC2 emulator DryRun and authorization', () => {
  let emu: Ec2Emulator;
  let ec2: EC2Client;
  beforeEach(async () => {
    emu = await startEc2Emulator({ credentials: CREDS });
    emu.model.addSubnet({
      subnetId: 'subnet-0a000000000000001',
      vpcId: 'vpc-0a000000000000001',
      cidrBlock: '10.0.1.0/24',
      availabilityZone: 'us-east-1a',
    });
    for (const [i, instanceId] of [I_A, I_B].entries())
      emu.model.addNetworkInterface({
        networkInterfaceId: `eni-0a00000000000001${i}`,
        subnetId: 'subnet-0a000000000000001',
        privateIpAddress: `10.0.1.${11 + i}`,
        instanceId,
      });
    emu.model.addRouteTable({
      routeTableId: RTB,
      vpcId: 'vpc-0a000000000000001',
      routes: [{ destinationCidrBlock: '172.31.255.10/32', networkInterfaceId: 'eni-0a000000000000010' }],
    });
    ec2 = new EC2Client({ region: 'us-east-1', endpoint: emu.url, credentials: CREDS, maxAttempts: 1 });
  });
  afterEach(async () => {
    ec2.destroy();
    await emu.close();
  });

  it('StopInstances DryRun on a tagged instance: DryRunOperation, and the instance keeps running', async () => {
    const err = await rejection(
      ec2.send(new StopInstancesCommand({ InstanceIds: [I_A], Force: true, DryRun: true })),
    );
    expect(err.name).toBe('DryRunOperation');
    expect(err.$metadata?.httpStatusCode).toBe(412);
    expect(emu.model.instance(I_A)?.state).toBe('running');
  });

  it('an untagged instance: UnauthorizedOperation for the DryRun and for the real call, and it keeps running', async () => {
    emu.model.setInstanceTags(I_B, { Name: 'db2' });
    const dry = await rejection(ec2.send(new StopInstancesCommand({ InstanceIds: [I_B], DryRun: true })));
    expect(dry.name).toBe('UnauthorizedOperation');
    expect(dry.$metadata?.httpStatusCode).toBe(403);
    expect(dry.message).toContain(`ec2:StopInstances on resource: arn:aws:ec2:us-east-1:`);
    const real = await rejection(ec2.send(new StopInstancesCommand({ InstanceIds: [I_B], Force: true })));
    expect(real.name).toBe('UnauthorizedOperation');
    expect(emu.model.instance(I_B)?.state).toBe('running');
    // DescribeInstances shows the tags as they are.
    const d = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [I_B] }));
    expect(d.Reservations?.[0]?.Instances?.[0]?.Tags).toEqual([{ Key: 'Name', Value: 'db2' }]);
  });

  it('AssignPrivateIpAddresses to an untagged ENI: UnauthorizedOperation, nothing moves', async () => {
    emu.model.setNetworkInterfaceTags('eni-0a000000000000011', {});
    const err = await rejection(
      ec2.send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: 'eni-0a000000000000011',
          PrivateIpAddresses: ['10.0.1.50'],
          AllowReassignment: true,
        }),
      ),
    );
    expect(err.name).toBe('UnauthorizedOperation');
    expect(emu.model.networkInterface('eni-0a000000000000011')?.secondary).toEqual([]);
  });

  it('ReplaceRoute DryRun: DryRunOperation without moving the route; refused tables answer UnauthorizedOperation', async () => {
    const move = () =>
      ec2.send(
        new ReplaceRouteCommand({
          RouteTableId: RTB,
          DestinationCidrBlock: '172.31.255.10/32',
          NetworkInterfaceId: 'eni-0a000000000000011',
          DryRun: true,
        }),
      );
    expect((await rejection(move())).name).toBe('DryRunOperation');
    const t = await ec2.send(new DescribeRouteTablesCommand({ RouteTableIds: [RTB] }));
    const route = t.RouteTables?.[0]?.Routes?.find((r) => r.DestinationCidrBlock === '172.31.255.10/32');
    expect(route?.NetworkInterfaceId).toBe('eni-0a000000000000010');
    emu.model.authorize = (req) => req.action !== 'ReplaceRoute';
    expect((await rejection(move())).name).toBe('UnauthorizedOperation');
  });
});
