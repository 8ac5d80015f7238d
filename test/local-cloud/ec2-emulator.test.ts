import {
  AssignPrivateIpAddressesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeRouteTablesCommand,
  EC2Client,
  paginateDescribeNetworkInterfaces,
  ReplaceRouteCommand,
  UnassignPrivateIpAddressesCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type Ec2ChangeEvent,
  type Ec2Emulator,
  startEc2Emulator,
} from '../../infra/local-cloud/ec2-emulator.ts';

const CREDS = {
  accessKeyId: 'AKIAEMULATORTEST0001',
  secretAccessKey: 'emulator/Secret+Key/0123456789abcdefghij',
};
const hexId = (prefix: string, n: number) => `${prefix}-${n.toString(16).padStart(17, '0')}`;
const ENI_A = hexId('eni', 0xa1);
const ENI_B = hexId('eni', 0xb2);
const ENI_OTHER_SUBNET = hexId('eni', 0xc3);
const RTB_1 = hexId('rtb', 1);
const VIP = '10.0.1.50';
const OVERLAY = '198.51.100.10/32';

let emu: Ec2Emulator;

function client(overrides: Partial<ConstructorParameters<typeof EC2Client>[0]> = {}): EC2Client {
  return new EC2Client({
    region: 'us-east-1',
    endpoint: emu.url,
    credentials: CREDS,
    maxAttempts: 1,
    ...overrides,
  });
}

/** A client whose form body is rewritten before signing, for requests the SDK would never build. */
function rewritingClient(rewrite: (body: string) => string): EC2Client {
  const c = client();
  c.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { body?: unknown; headers: Record<string, string> };
      if (typeof req.body === 'string') {
        req.body = rewrite(req.body);
        req.headers['content-length'] = String(Buffer.byteLength(req.body as string));
      }
      return next(args);
    },
    { step: 'build', name: 'rewriteBody' },
  );
  return c;
}

async function rejection(
  p: Promise<unknown>,
): Promise<{ name: string; message: string; status: number | undefined }> {
  try {
    await p;
  } catch (err) {
    const e = err as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, message: e.message, status: e.$metadata?.httpStatusCode };
  }
  throw new Error('expected a rejection');
}

async function waitFor(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeEach(async () => {
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
    networkInterfaceId: ENI_A,
    subnetId: 'subnet-1',
    privateIpAddress: '10.0.1.11',
    instanceId: 'i-0000000000000000a',
    secondaryPrivateIpAddresses: [VIP],
  });
  emu.model.addNetworkInterface({
    networkInterfaceId: ENI_B,
    subnetId: 'subnet-1',
    privateIpAddress: '10.0.1.12',
  });
  emu.model.addNetworkInterface({
    networkInterfaceId: ENI_OTHER_SUBNET,
    subnetId: 'subnet-2',
    privateIpAddress: '10.0.2.13',
  });
  emu.model.addRouteTable({
    routeTableId: RTB_1,
    vpcId: 'vpc-1',
    routes: [{ destinationCidrBlock: OVERLAY, networkInterfaceId: ENI_A }],
  });
});

afterEach(async () => {
  await emu.close();
});

describe('startEc2Emulator', () => {
  describe('authentication', () => {
    it('answers a request signed with the configured secret', async () => {
      const out = await client().send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [ENI_A] }));
      expect(out.NetworkInterfaces?.[0]?.NetworkInterfaceId).toBe(ENI_A);
      expect(out.NetworkInterfaces?.[0]?.Attachment?.InstanceId).toBe('i-0000000000000000a');
      expect(out.NetworkInterfaces?.[0]?.PrivateIpAddresses).toEqual([
        { PrivateIpAddress: '10.0.1.11', Primary: true },
        { PrivateIpAddress: VIP, Primary: false },
      ]);
      expect(out.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('rejects a signature made with the wrong secret with SignatureDoesNotMatch', async () => {
      const c = client({
        credentials: { accessKeyId: CREDS.accessKeyId, secretAccessKey: 'not-the-secret' },
      });
      const err = await rejection(c.send(new DescribeNetworkInterfacesCommand({})));
      expect(err).toMatchObject({ name: 'SignatureDoesNotMatch', status: 403 });
      expect(emu.faults.calls('DescribeNetworkInterfaces')).toBe(0);
    });

    it('rejects an unknown access key with AuthFailure', async () => {
      const c = client({
        credentials: { accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: CREDS.secretAccessKey },
      });
      const err = await rejection(c.send(new DescribeNetworkInterfacesCommand({})));
      expect(err.name).toBe('AuthFailure');
      expect(err.message).toBe('AWS was not able to validate the provided access credentials');
    });

    it('rejects a request whose clock is more than 15 minutes off with RequestExpired', async () => {
      const c = client({ systemClockOffset: -20 * 60 * 1000 });
      const err = await rejection(c.send(new DescribeNetworkInterfacesCommand({})));
      expect(err.name).toBe('RequestExpired');
    });

    it('rejects an unsigned request and a malformed Authorization header', async () => {
      const body = 'Action=DescribeNetworkInterfaces&Version=2016-11-15';
      const headers = { 'content-type': 'application/x-www-form-urlencoded' };
      const unsigned = await fetch(emu.url, { method: 'POST', body, headers });
      expect(unsigned.status).toBe(401);
      expect(await unsigned.text()).toContain('<Code>MissingAuthenticationToken</Code>');
      const malformed = await fetch(emu.url, {
        method: 'POST',
        body,
        headers: {
          ...headers,
          authorization: 'AWS4-HMAC-SHA256 Credential=x',
          'x-amz-date': '20250101T000000Z',
        },
      });
      expect(malformed.status).toBe(400);
      expect(await malformed.text()).toContain('<Code>IncompleteSignature</Code>');
    });

    it('rejects a body changed after signing', async () => {
      const c = client();
      c.middlewareStack.add(
        (next) => async (args) => {
          const req = args.request as { body?: unknown };
          req.body = String(req.body).replace(ENI_A, ENI_B);
          return next(args);
        },
        { step: 'finalizeRequest', priority: 'low', name: 'tamper' },
      );
      const err = await rejection(
        c.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [ENI_A] })),
      );
      expect(err.name).toBe('SignatureDoesNotMatch');
    });
  });

  describe('request validation', () => {
    it('answers MissingParameter naming the parameter as EC2 does', async () => {
      const err = await rejection(
        client().send(
          new AssignPrivateIpAddressesCommand({
            NetworkInterfaceId: undefined as unknown as string,
            PrivateIpAddresses: [VIP],
          }),
        ),
      );
      expect(err).toMatchObject({
        name: 'MissingParameter',
        message: 'The request must contain the parameter NetworkInterfaceId',
        status: 400,
      });
    });

    it('answers InvalidAction for an action it does not know', async () => {
      const c = rewritingClient((b) => b.replace('Action=DescribeNetworkInterfaces', 'Action=LaunchRockets'));
      const err = await rejection(c.send(new DescribeNetworkInterfacesCommand({})));
      expect(err).toMatchObject({
        name: 'InvalidAction',
        message: 'The action LaunchRockets is not valid for this web service.',
      });
    });

    it('answers InvalidNetworkInterfaceID.NotFound for an unknown ENI and .Malformed for a bad id', async () => {
      const unknown = hexId('eni', 0xdead);
      const notFound = await rejection(
        client().send(
          new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: unknown, PrivateIpAddresses: [VIP] }),
        ),
      );
      expect(notFound).toMatchObject({
        name: 'InvalidNetworkInterfaceID.NotFound',
        message: `The networkInterface ID '${unknown}' does not exist`,
      });
      const malformed = await rejection(
        client().send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: ['eni-nothex'] })),
      );
      expect(malformed.name).toBe('InvalidNetworkInterfaceID.Malformed');
    });

    it('refuses an address outside the ENI subnet with InvalidParameterValue', async () => {
      const err = await rejection(
        client().send(
          new AssignPrivateIpAddressesCommand({
            NetworkInterfaceId: ENI_OTHER_SUBNET,
            PrivateIpAddresses: [VIP],
            AllowReassignment: true,
          }),
        ),
      );
      expect(err).toMatchObject({
        name: 'InvalidParameterValue',
        message: `Address ${VIP} does not fall within the subnet's address range`,
      });
      expect(emu.model.holderOf(VIP)).toBe(ENI_A);
    });

    it('refuses to take an address another ENI holds unless AllowReassignment is set', async () => {
      const refused = await rejection(
        client().send(
          new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: ENI_B, PrivateIpAddresses: [VIP] }),
        ),
      );
      expect(refused).toMatchObject({ name: 'InvalidIPAddress.InUse', message: `Address ${VIP} is in use.` });

      const out = await client().send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: ENI_B,
          PrivateIpAddresses: [VIP],
          AllowReassignment: true,
        }),
      );
      expect(out.NetworkInterfaceId).toBe(ENI_B);
      expect(out.AssignedPrivateIpAddresses).toEqual([{ PrivateIpAddress: VIP }]);
    });
  });

  describe('secondary private addresses', () => {
    it('shows a reassignment only after the propagation delay, then fires onChange', async () => {
      const events: Ec2ChangeEvent[] = [];
      emu.model.onChange((e) => events.push(e));
      // Long enough that a loaded machine still reads before it lands.
      emu.model.propagationMs = 1000;
      await client().send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: ENI_B,
          PrivateIpAddresses: [VIP],
          AllowReassignment: true,
        }),
      );
      const filter = { Filters: [{ Name: 'addresses.private-ip-address', Values: [VIP] }] };
      const early = await client().send(new DescribeNetworkInterfacesCommand(filter));
      expect(early.NetworkInterfaces?.map((n) => n.NetworkInterfaceId)).toEqual([ENI_A]);

      await waitFor(() => emu.model.holderOf(VIP) === ENI_B, 5000);
      const late = await client().send(new DescribeNetworkInterfacesCommand(filter));
      expect(late.NetworkInterfaces?.map((n) => n.NetworkInterfaceId)).toEqual([ENI_B]);
      expect(events).toEqual([{ kind: 'address', address: VIP, holder: ENI_B, previous: ENI_A }]);
    });

    it('unassigns an address and refuses to unassign one the ENI does not hold', async () => {
      const refused = await rejection(
        client().send(
          new UnassignPrivateIpAddressesCommand({ NetworkInterfaceId: ENI_B, PrivateIpAddresses: [VIP] }),
        ),
      );
      expect(refused.name).toBe('InvalidParameterValue');
      await client().send(
        new UnassignPrivateIpAddressesCommand({ NetworkInterfaceId: ENI_A, PrivateIpAddresses: [VIP] }),
      );
      await waitFor(() => emu.model.holderOf(VIP) === undefined);
    });

    it('pages DescribeNetworkInterfaces with MaxResults and NextToken', async () => {
      for (let i = 0; i < 5; i++) {
        emu.model.addNetworkInterface({
          networkInterfaceId: hexId('eni', 0x100 + i),
          subnetId: 'subnet-1',
          privateIpAddress: `10.0.1.${100 + i}`,
        });
      }
      const first = await client().send(new DescribeNetworkInterfacesCommand({ MaxResults: 5 }));
      expect(first.NetworkInterfaces).toHaveLength(5);
      expect(first.NextToken).toBeTruthy();
      const second = await client().send(
        new DescribeNetworkInterfacesCommand({ MaxResults: 5, NextToken: first.NextToken }),
      );
      expect(second.NetworkInterfaces).toHaveLength(3);
      expect(second.NextToken).toBeUndefined();

      const ids: string[] = [];
      for await (const page of paginateDescribeNetworkInterfaces({ client: client(), pageSize: 5 }, {})) {
        ids.push(...(page.NetworkInterfaces ?? []).map((n) => n.NetworkInterfaceId ?? ''));
      }
      expect(new Set(ids).size).toBe(8);

      const filtered = await client().send(
        new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'subnet-id', Values: ['subnet-2'] }] }),
      );
      expect(filtered.NetworkInterfaces?.map((n) => n.NetworkInterfaceId)).toEqual([ENI_OTHER_SUBNET]);
      const badToken = await rejection(
        client().send(new DescribeNetworkInterfacesCommand({ NextToken: 'garbage' })),
      );
      expect(badToken.name).toBe('InvalidPaginationToken');
    });
  });

  describe('route tables', () => {
    it('replaces a route and shows the new target in DescribeRouteTables after propagation', async () => {
      await client().send(
        new ReplaceRouteCommand({
          RouteTableId: RTB_1,
          DestinationCidrBlock: OVERLAY,
          NetworkInterfaceId: ENI_B,
        }),
      );
      await waitFor(() => emu.model.routeTargetOf(RTB_1, OVERLAY) === ENI_B);
      const out = await client().send(
        new DescribeRouteTablesCommand({
          Filters: [{ Name: 'route.destination-cidr-block', Values: [OVERLAY] }],
        }),
      );
      expect(out.RouteTables?.map((t) => t.RouteTableId)).toEqual([RTB_1]);
      expect(out.RouteTables?.[0]?.Routes).toEqual([
        { DestinationCidrBlock: OVERLAY, NetworkInterfaceId: ENI_B, State: 'active', Origin: 'CreateRoute' },
      ]);
    });

    it('answers InvalidRouteTableID.NotFound and InvalidRoute.NotFound', async () => {
      const missingTable = hexId('rtb', 0xfff);
      const noTable = await rejection(
        client().send(
          new ReplaceRouteCommand({
            RouteTableId: missingTable,
            DestinationCidrBlock: OVERLAY,
            NetworkInterfaceId: ENI_B,
          }),
        ),
      );
      expect(noTable).toMatchObject({
        name: 'InvalidRouteTableID.NotFound',
        message: `The routeTable ID '${missingTable}' does not exist`,
      });
      const noRoute = await rejection(
        client().send(
          new ReplaceRouteCommand({
            RouteTableId: RTB_1,
            DestinationCidrBlock: '203.0.113.9/32',
            NetworkInterfaceId: ENI_B,
          }),
        ),
      );
      expect(noRoute.name).toBe('InvalidRoute.NotFound');
    });
  });

  describe('fault injection', () => {
    it('throttles, fails with 5xx and with a permanent error as configured, counting calls', async () => {
      const describe = () => client().send(new DescribeNetworkInterfacesCommand({}));
      emu.faults.set('DescribeNetworkInterfaces', { throttleNext: 1 });
      emu.faults.set('*', { serverErrorNext: 1 });
      expect(await rejection(describe())).toMatchObject({ name: 'RequestLimitExceeded', status: 503 });
      expect(await rejection(describe())).toMatchObject({ name: 'InternalError', status: 500 });
      await describe();
      emu.faults.set('DescribeNetworkInterfaces', {
        permanentError: { code: 'UnauthorizedOperation', message: 'You are not authorized', status: 403 },
      });
      expect(await rejection(describe())).toMatchObject({ name: 'UnauthorizedOperation', status: 403 });
      expect(emu.faults.calls('DescribeNetworkInterfaces')).toBe(4);
      expect(emu.faults.calls('*')).toBe(4);
    });

    it('holds a hung request until the fault is cleared, and adds latency', async () => {
      emu.faults.set('DescribeRouteTables', { hang: true });
      let done = false;
      const pending = client()
        .send(new DescribeRouteTablesCommand({}))
        .then((r) => {
          done = true;
          return r;
        });
      await new Promise((r) => setTimeout(r, 200));
      expect(done).toBe(false);
      emu.faults.clear('DescribeRouteTables');
      expect((await pending).RouteTables).toHaveLength(1);

      emu.faults.set('DescribeRouteTables', { latencyMs: 150 });
      const t0 = Date.now();
      await client().send(new DescribeRouteTablesCommand({}));
      expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    });
  });
});
