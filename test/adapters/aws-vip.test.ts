import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Ec2Emulator, startEc2Emulator } from '../../infra/local-cloud/ec2-emulator.ts';
import { AwsRouteTableVipMover } from '../../lib/adapters/vip/aws-route-table.ts';
import { AwsSecondaryIpVipMover, createEc2Client } from '../../lib/adapters/vip/aws-secondary-ip.ts';
import {
  FailoverError,
  ProviderThrottledError,
  ProviderTransientError,
  VipMoveFailedError,
  VipNotVerifiedError,
} from '../../lib/errors.ts';

const SECRET = 'adapterTestSecret/Key+0123456789ABCDEFGHIJ';
const CREDS = { accessKeyId: 'AKIAADAPTERTEST00001', secretAccessKey: SECRET };
const hexId = (prefix: string, n: number) => `${prefix}-${n.toString(16).padStart(17, '0')}`;
const ENI_1 = hexId('eni', 0x1);
const ENI_2 = hexId('eni', 0x2);
const RTB_A = hexId('rtb', 0xa);
const RTB_B = hexId('rtb', 0xb);
const VIP = '10.0.1.50';
const OVERLAY = '198.51.100.10';
const NODES = { db1: ENI_1, db2: ENI_2 };

let emu: Ec2Emulator;
let logs: Record<string, unknown>[];

beforeEach(async () => {
  logs = [];
  emu = await startEc2Emulator({ credentials: CREDS, propagationMs: 50 });
  emu.model.addSubnet({
    subnetId: 'subnet-1',
    vpcId: 'vpc-1',
    cidrBlock: '10.0.1.0/24',
    availabilityZone: 'us-east-1a',
  });
  emu.model.addSubnet({
    subnetId: 'subnet-2',
    vpcId: 'vpc-1',
    cidrBlock: '10.0.2.0/24',
    availabilityZone: 'us-east-1b',
  });
  emu.model.addNetworkInterface({
    networkInterfaceId: ENI_1,
    subnetId: 'subnet-1',
    privateIpAddress: '10.0.1.11',
    secondaryPrivateIpAddresses: [VIP],
  });
  emu.model.addNetworkInterface({
    networkInterfaceId: ENI_2,
    subnetId: 'subnet-1',
    privateIpAddress: '10.0.1.12',
  });
  for (const routeTableId of [RTB_A, RTB_B]) {
    emu.model.addRouteTable({
      routeTableId,
      vpcId: 'vpc-1',
      routes: [{ destinationCidrBlock: `${OVERLAY}/32`, networkInterfaceId: ENI_1 }],
    });
  }
});

afterEach(async () => {
  await emu.close();
});

function client(credentials = CREDS) {
  return createEc2Client({ region: 'us-east-1', endpoint: emu.url, credentials });
}

const fast = { pollMs: 20, retryBaseMs: 20, retryMaxMs: 100, verifyTimeoutMs: 2000 };

function secondaryIp(extra: Partial<ConstructorParameters<typeof AwsSecondaryIpVipMover>[0]> = {}) {
  return new AwsSecondaryIpVipMover({
    address: VIP,
    nodes: NODES,
    client: client(),
    log: (e) => logs.push(e),
    ...fast,
    ...extra,
  });
}

function routeTable(extra: Partial<ConstructorParameters<typeof AwsRouteTableVipMover>[0]> = {}) {
  return new AwsRouteTableVipMover({
    address: OVERLAY,
    routeTableIds: [RTB_A, RTB_B],
    nodes: NODES,
    client: client(),
    log: (e) => logs.push(e),
    ...fast,
    ...extra,
  });
}

async function failure(p: Promise<unknown>): Promise<FailoverError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(FailoverError);
    return err as FailoverError;
  }
  throw new Error('expected the move to fail');
}

/** Everything a failure exposes to logs and state records, as text. */
function exposed(err: FailoverError): string {
  const cause = err.cause as { message?: string; name?: string } | undefined;
  return [err.message, JSON.stringify(err.details), cause?.name, cause?.message, JSON.stringify(logs)].join(
    '\n',
  );
}

const soon = (ms: number) => Date.now() + ms;

describe('AwsSecondaryIpVipMover', () => {
  it('moves the VIP to the target ENI and verifies it through DescribeNetworkInterfaces', async () => {
    const mover = secondaryIp();
    expect(await mover.currentHolder()).toBe('db1');
    emu.faults.resetCalls();
    const result = await mover.moveTo('db2', { deadline: soon(5000) });
    expect(result).toMatchObject({
      provider: 'aws-secondary-ip',
      address: VIP,
      holder: 'db2',
      alreadyThere: false,
    });
    expect(emu.model.holderOf(VIP)).toBe(ENI_2);
    expect(emu.faults.calls('AssignPrivateIpAddresses')).toBe(1);
    expect(result.apiCalls).toBe(emu.faults.calls('*'));
    expect(await mover.currentHolder()).toBe('db2');
  });

  it('with mutateFirst, sends the assignment before any read and still verifies the new holder', async () => {
    const mover = secondaryIp();
    // Every read hangs: only a move that does not read first gets its assignment out.
    emu.faults.set('DescribeNetworkInterfaces', { hang: true });
    const moving = mover.moveTo('db2', { deadline: soon(5000), fromNodeId: 'db1', mutateFirst: true });
    await vi.waitFor(() => expect(emu.faults.calls('AssignPrivateIpAddresses')).toBe(1), { timeout: 2000 });
    expect(emu.model.intendedHolder(VIP)?.eni).toBe(ENI_2);
    emu.faults.clear('DescribeNetworkInterfaces');
    const result = await moving;
    expect(result).toMatchObject({ holder: 'db2', alreadyThere: false });
    // Verified: the old holder has lost the address when the move returns.
    expect(emu.model.holderOf(VIP)).toBe(ENI_2);
  });

  it('with mutateFirst, a refused assignment is a no-op only when the target holds the VIP already', async () => {
    const mover = secondaryIp();
    await mover.moveTo('db2', { deadline: soon(5000) });
    emu.faults.set('AssignPrivateIpAddresses', {
      permanentError: { code: 'InvalidParameterValue', message: 'The address is already assigned' },
    });
    const again = await mover.moveTo('db2', { deadline: soon(5000), mutateFirst: true });
    expect(again).toMatchObject({ holder: 'db2', alreadyThere: true });
    const err = await failure(mover.moveTo('db1', { deadline: soon(5000), mutateFirst: true }));
    expect(err.name).toBe('VipMoveFailedError');
    expect(emu.model.holderOf(VIP)).toBe(ENI_2);
  });

  it('reports alreadyThere without an Assign call when the target already holds the VIP', async () => {
    const mover = secondaryIp();
    await mover.moveTo('db2', { deadline: soon(5000) });
    const again = await mover.moveTo('db2', { deadline: soon(5000) });
    expect(again).toMatchObject({ holder: 'db2', alreadyThere: true, apiCalls: 1 });
    expect(emu.faults.calls('AssignPrivateIpAddresses')).toBe(1);
  });

  it('retries a throttled Assign until it succeeds', async () => {
    emu.faults.set('AssignPrivateIpAddresses', { throttleNext: 3 });
    const result = await secondaryIp().moveTo('db2', { deadline: soon(5000) });
    expect(result.holder).toBe('db2');
    expect(emu.faults.calls('AssignPrivateIpAddresses')).toBe(4);
    expect(logs.filter((l) => l.msg === 'retrying EC2 call')).toHaveLength(3);
  });

  it('gives up with ProviderThrottledError when throttling outlasts the deadline', async () => {
    emu.faults.set('AssignPrivateIpAddresses', { throttleNext: 1000 });
    const t0 = Date.now();
    const err = await failure(secondaryIp().moveTo('db2', { deadline: soon(1000) }));
    expect(err).toBeInstanceOf(ProviderThrottledError);
    expect(err.transient).toBe(true);
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(emu.faults.calls('AssignPrivateIpAddresses')).toBeGreaterThan(1);
  });

  it('retries 5xx answers', async () => {
    emu.faults.set('DescribeNetworkInterfaces', { serverErrorNext: 2 });
    const result = await secondaryIp().moveTo('db2', { deadline: soon(5000) });
    expect(result.holder).toBe('db2');
  });

  it('turns a permanent EC2 error into VipMoveFailedError naming the operation', async () => {
    emu.faults.set('AssignPrivateIpAddresses', {
      permanentError: { code: 'InvalidParameterValue', message: 'Address is reserved' },
    });
    const err = await failure(secondaryIp().moveTo('db2', { deadline: soon(5000) }));
    expect(err).toBeInstanceOf(VipMoveFailedError);
    expect(err.message).toBe(
      `Failed to move VIP ${VIP} to ${ENI_2} (AssignPrivateIpAddresses): InvalidParameterValue: Address is reserved`,
    );
    expect((err.cause as Error).name).toBe('InvalidParameterValue');
    expect(emu.faults.calls('AssignPrivateIpAddresses')).toBe(1);
  });

  it('bounds a hung Assign by the deadline', async () => {
    emu.faults.set('AssignPrivateIpAddresses', { hang: true });
    const t0 = Date.now();
    const err = await failure(
      secondaryIp({ attemptTimeoutMs: 10_000 }).moveTo('db2', { deadline: soon(1200) }),
    );
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(ProviderTransientError);
    expect(err.message).toContain('(AssignPrivateIpAddresses): Timeout');
    expect(took).toBeGreaterThanOrEqual(1100);
    expect(took).toBeLessThan(2000);
  });

  it('retries after a hung attempt times out and succeeds within the deadline', async () => {
    emu.faults.set('AssignPrivateIpAddresses', { hang: true });
    setTimeout(() => emu.faults.clear(), 400);
    const result = await secondaryIp({ attemptTimeoutMs: 300 }).moveTo('db2', { deadline: soon(5000) });
    expect(result.holder).toBe('db2');
    expect(emu.faults.calls('AssignPrivateIpAddresses')).toBeGreaterThanOrEqual(2);
  });

  it('treats a refused connection as transient and gives up with ProviderTransientError at the deadline', async () => {
    const url = emu.url;
    await emu.close();
    const mover = secondaryIp({
      client: createEc2Client({ region: 'us-east-1', endpoint: url, credentials: CREDS }),
    });
    const err = await failure(mover.moveTo('db2', { deadline: soon(400) }));
    expect(err).toBeInstanceOf(ProviderTransientError);
    expect(err.message).toContain('(DescribeNetworkInterfaces): ');
    emu = await startEc2Emulator({ credentials: CREDS });
  });

  it('throws VipNotVerifiedError when EC2 never shows the new holder in time', async () => {
    emu.model.propagationMs = 10_000;
    const err = await failure(secondaryIp({ verifyTimeoutMs: 500 }).moveTo('db2', { deadline: soon(5000) }));
    expect(err).toBeInstanceOf(VipNotVerifiedError);
    expect(err.message).toContain(`shows ${ENI_1}`);
  });

  it('re-issues the assignment once when EC2 accepted it but never shows it, then verifies', async () => {
    // The first remap is "lost" (it would land after a minute); the re-drive at half the
    // verification budget propagates normally.
    emu.model.propagationMs = 60_000;
    setTimeout(() => {
      emu.model.propagationMs = 20;
    }, 200);
    const result = await secondaryIp({ verifyTimeoutMs: 1000 }).moveTo('db2', { deadline: soon(3000) });
    expect(result).toMatchObject({ holder: 'db2', alreadyThere: false });
    expect(emu.faults.calls('AssignPrivateIpAddresses')).toBe(2);
    expect(emu.model.holderOf(VIP)).toBe(ENI_2);
    expect(logs.some((l) => String(l.msg).startsWith('VIP not visible on target yet'))).toBe(true);
  });

  it('rejects bad credentials without leaking the secret', async () => {
    const wrongSecret = secondaryIp({ client: client({ ...CREDS, secretAccessKey: `${SECRET}x` }) });
    const err = await failure(wrongSecret.moveTo('db2', { deadline: soon(3000) }));
    expect(err).toBeInstanceOf(VipMoveFailedError);
    expect(err.message).toContain('(DescribeNetworkInterfaces): SignatureDoesNotMatch');

    const unknownKey = secondaryIp({
      client: client({ accessKeyId: 'AKIANOBODY0000000000', secretAccessKey: SECRET }),
    });
    const err2 = await failure(unknownKey.moveTo('db2', { deadline: soon(3000) }));
    expect(err2.message).toContain('AuthFailure');
    for (const e of [err, err2]) expect(exposed(e)).not.toContain(SECRET);
    expect(emu.model.holderOf(VIP)).toBe(ENI_1);
  });
});

describe('AwsRouteTableVipMover', () => {
  const cidr = `${OVERLAY}/32`;

  it('replaces the route in every table and verifies it through DescribeRouteTables', async () => {
    const mover = routeTable();
    expect(await mover.currentHolder()).toBe('db1');
    const result = await mover.moveTo('db2', { deadline: soon(5000) });
    expect(result).toMatchObject({
      provider: 'aws-route-table',
      address: OVERLAY,
      holder: 'db2',
      alreadyThere: false,
    });
    expect(emu.model.routeTargetOf(RTB_A, cidr)).toBe(ENI_2);
    expect(emu.model.routeTargetOf(RTB_B, cidr)).toBe(ENI_2);
    expect(emu.faults.calls('ReplaceRoute')).toBe(2);
    expect(await mover.currentHolder()).toBe('db2');
  });

  it('reports alreadyThere without ReplaceRoute when every table already points at the target', async () => {
    const mover = routeTable();
    await mover.moveTo('db2', { deadline: soon(5000) });
    const again = await mover.moveTo('db2', { deadline: soon(5000) });
    expect(again).toMatchObject({ alreadyThere: true, apiCalls: 1 });
    expect(emu.faults.calls('ReplaceRoute')).toBe(2);
  });

  it('only replaces the routes of tables that point elsewhere', async () => {
    emu.model.propagationMs = 0;
    emu.model.replaceRoute(RTB_A, cidr, ENI_2);
    const mover = routeTable();
    expect(await mover.currentHolder()).toBeUndefined();
    await mover.moveTo('db2', { deadline: soon(5000) });
    expect(emu.faults.calls('ReplaceRoute')).toBe(1);
  });

  it('retries a throttled ReplaceRoute until it succeeds', async () => {
    emu.faults.set('ReplaceRoute', { throttleNext: 2 });
    const result = await routeTable().moveTo('db2', { deadline: soon(5000) });
    expect(result.holder).toBe('db2');
    expect(emu.faults.calls('ReplaceRoute')).toBe(4);
  });

  it('turns a missing route into VipMoveFailedError naming the table', async () => {
    const mover = routeTable({ address: '203.0.113.77' });
    const err = await failure(mover.moveTo('db2', { deadline: soon(5000) }));
    expect(err).toBeInstanceOf(VipMoveFailedError);
    expect(err.message).toMatch(
      new RegExp(
        `^Failed to move VIP 203\\.0\\.113\\.77/32 to ${ENI_2} in ${RTB_A} \\(ReplaceRoute\\): InvalidRoute\\.NotFound: `,
      ),
    );
  });

  it('bounds a hung ReplaceRoute by the deadline', async () => {
    emu.faults.set('ReplaceRoute', { hang: true });
    const t0 = Date.now();
    const err = await failure(routeTable().moveTo('db2', { deadline: soon(1000) }));
    expect(err).toBeInstanceOf(ProviderTransientError);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(Date.now() - t0).toBeLessThan(1800);
  });

  it('re-issues ReplaceRoute once for the tables that never show the new target', async () => {
    emu.model.propagationMs = 60_000;
    setTimeout(() => {
      emu.model.propagationMs = 20;
    }, 200);
    const result = await routeTable({ verifyTimeoutMs: 1000 }).moveTo('db2', { deadline: soon(3000) });
    expect(result).toMatchObject({ holder: 'db2', alreadyThere: false });
    expect(emu.faults.calls('ReplaceRoute')).toBe(4);
    for (const t of [RTB_A, RTB_B]) expect(emu.model.routeTargetOf(t, cidr)).toBe(ENI_2);
  });

  it('rejects bad credentials without leaking the secret', async () => {
    const mover = routeTable({ client: client({ ...CREDS, secretAccessKey: 'wrong-secret-value' }) });
    const err = await failure(mover.moveTo('db2', { deadline: soon(3000) }));
    expect(err).toBeInstanceOf(VipMoveFailedError);
    expect(err.message).toContain('SignatureDoesNotMatch');
    expect(exposed(err)).not.toContain(SECRET);
    expect(exposed(err)).not.toContain('wrong-secret-value');
  });
});
