import { connect, createServer, type Server, type Socket } from 'node:net';
import { AssignPrivateIpAddressesCommand, EC2Client, ReplaceRouteCommand } from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Ec2Emulator, startEc2Emulator } from '../../infra/local-cloud/ec2-emulator.ts';
import {
  startVipForwarder,
  type VipForwarder,
  vipBackendFromEc2,
  vipBackendFromRoute,
} from '../../infra/local-cloud/vip-forwarder.ts';

const CREDS = {
  accessKeyId: 'AKIAFORWARDERTEST001',
  secretAccessKey: 'forwarder-test-secret-0123456789abcdef',
};
const hexId = (prefix: string, n: number) => `${prefix}-${n.toString(16).padStart(17, '0')}`;
const ENI_A = hexId('eni', 0xa);
const ENI_B = hexId('eni', 0xb);
const RTB = hexId('rtb', 0x1);
const VIP = '10.0.1.50';
const OVERLAY = '198.51.100.10/32';

/** A backend that greets with its name and then echoes, like a database greeting packet. */
async function startBackend(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.write(`${name}\n`);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0 };
}

/** Connects through the forwarder and resolves with the socket and the greeting line. */
function dial(port: number): Promise<{ socket: Socket; greeting: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buf = '';
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed before greeting (${buf})`)));
    socket.on('data', function onData(chunk) {
      buf += chunk.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        socket.off('data', onData);
        socket.removeAllListeners('close');
        socket.removeAllListeners('error');
        socket.on('error', () => {});
        resolve({ socket, greeting: buf.slice(0, nl) });
      }
    });
  });
}

function closed(socket: Socket, ms = 3000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed || socket.readableEnded) return resolve();
    const t = setTimeout(() => reject(new Error('socket stayed open')), ms);
    socket.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

let emu: Ec2Emulator;
let backendA: { server: Server; port: number };
let backendB: { server: Server; port: number };
let forwarder: VipForwarder | undefined;
const sockets: Socket[] = [];

beforeEach(async () => {
  emu = await startEc2Emulator({ credentials: CREDS, propagationMs: 50 });
  emu.model.addSubnet({
    subnetId: 'subnet-1',
    vpcId: 'vpc-1',
    cidrBlock: '10.0.1.0/24',
    availabilityZone: 'us-east-1a',
  });
  emu.model.addNetworkInterface({
    networkInterfaceId: ENI_A,
    subnetId: 'subnet-1',
    privateIpAddress: '10.0.1.11',
    secondaryPrivateIpAddresses: [VIP],
  });
  emu.model.addNetworkInterface({
    networkInterfaceId: ENI_B,
    subnetId: 'subnet-1',
    privateIpAddress: '10.0.1.12',
  });
  emu.model.addRouteTable({
    routeTableId: RTB,
    vpcId: 'vpc-1',
    routes: [{ destinationCidrBlock: OVERLAY, networkInterfaceId: ENI_A }],
  });
  backendA = await startBackend('A');
  backendB = await startBackend('B');
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await forwarder?.close();
  forwarder = undefined;
  await emu.close();
  await new Promise((r) => backendA.server.close(r));
  await new Promise((r) => backendB.server.close(r));
});

function backends() {
  return {
    [ENI_A]: { host: '127.0.0.1', port: backendA.port },
    [ENI_B]: { host: '127.0.0.1', port: backendB.port },
  };
}

function sdk(): EC2Client {
  return new EC2Client({ region: 'us-east-1', endpoint: emu.url, credentials: CREDS, maxAttempts: 1 });
}

describe('startVipForwarder', () => {
  it('sends clients to the VIP holder and cuts their connections when the secondary IP moves', async () => {
    forwarder = await startVipForwarder(vipBackendFromEc2(emu.model, VIP, backends()));
    const before = await dial(forwarder.port);
    sockets.push(before.socket);
    expect(before.greeting).toBe('A');

    await sdk().send(
      new AssignPrivateIpAddressesCommand({
        NetworkInterfaceId: ENI_B,
        PrivateIpAddresses: [VIP],
        AllowReassignment: true,
      }),
    );
    await closed(before.socket);

    const after = await dial(forwarder.port);
    sockets.push(after.socket);
    expect(after.greeting).toBe('B');
    const echoed = new Promise<string>((r) => after.socket.once('data', (d) => r(d.toString())));
    after.socket.write('ping\n');
    expect(await echoed).toBe('ping\n');
  });

  it('follows a route-table overlay IP when ReplaceRoute repoints it', async () => {
    forwarder = await startVipForwarder(vipBackendFromRoute(emu.model, RTB, OVERLAY, backends()));
    const before = await dial(forwarder.port);
    sockets.push(before.socket);
    expect(before.greeting).toBe('A');

    await sdk().send(
      new ReplaceRouteCommand({
        RouteTableId: RTB,
        DestinationCidrBlock: OVERLAY,
        NetworkInterfaceId: ENI_B,
      }),
    );
    await closed(before.socket);
    const after = await dial(forwarder.port);
    sockets.push(after.socket);
    expect(after.greeting).toBe('B');
  });

  it('refuses connections while no node holds the VIP', async () => {
    forwarder = await startVipForwarder(vipBackendFromEc2(emu.model, '10.0.1.99', backends()));
    await expect(dial(forwarder.port)).rejects.toThrow();
  });
});
