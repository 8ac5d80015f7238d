import { connect, createServer, type Server } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AliyunEmulator,
  startAliyunEmulator,
  vipBackendFromHaVip,
} from '../../infra/local-cloud/aliyun/emulator.ts';
import { startVipForwarder, type VipForwarder } from '../../infra/local-cloud/vip-forwarder.ts';
import {
  AliyunHaVipVipMover,
  type AliyunHaVipVipMoverOptions,
  type AliyunLogEntry,
} from '../../lib/adapters/vip/aliyun-havip.ts';
import { ProviderTransientError, VipMoveFailedError, VipNotVerifiedError } from '../../lib/errors.ts';
import { waitFor } from '../support/wait-for.ts';

const CREDS = { accessKeyId: 'LTAI5tAdapterTestKey77', accessKeySecret: 'adapterSecret/+=Zq9x8c7v6b5n4m3' };
const REGION = 'cn-shanghai';
const HAVIP = 'havip-uf6adaptertest01';
const VIP = '10.0.1.50';
const NODES = { db1: 'i-uf6db1', db2: 'i-uf6db2', db3: 'i-uf6db3' };

let emu: AliyunEmulator;
let logs: AliyunLogEntry[];
const servers: Server[] = [];
let forwarder: VipForwarder | undefined;

function mover(overrides: Partial<AliyunHaVipVipMoverOptions> = {}): AliyunHaVipVipMover {
  return new AliyunHaVipVipMover({
    address: VIP,
    haVipId: HAVIP,
    regionId: REGION,
    nodes: NODES,
    ...CREDS,
    endpoint: emu.url,
    ecsEndpoint: emu.url,
    pollIntervalMs: 40,
    requestTimeoutMs: 2000,
    verifyTimeoutMs: 4000,
    retryBaseMs: 20,
    retryMaxMs: 200,
    log: (e) => logs.push(e),
    ...overrides,
  });
}

/** Whatever leaves the adapter must not carry credentials or a signed URL. */
function expectNoSecrets(err: unknown): void {
  const texts = [
    JSON.stringify(logs),
    err instanceof Error
      ? `${err.message}\n${JSON.stringify((err as { details?: unknown }).details)}`
      : String(err),
  ];
  for (const t of texts) {
    expect(t).not.toContain(CREDS.accessKeySecret);
    expect(t).not.toContain(encodeURIComponent(CREDS.accessKeySecret));
    expect(t).not.toContain('Signature=');
  }
  if (err instanceof Error) expect(err.cause).toBeUndefined();
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** A TCP server that greets with its name: stands for the MySQL on one instance. */
async function startNamedServer(name: string): Promise<number> {
  const server = createServer((s) => s.end(`${name}\n`));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

function readGreeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    s.on('data', (c) => {
      data += c.toString();
    });
    s.on('close', () => resolve(data.trim()));
    s.on('error', reject);
  });
}

const deadlineIn = (ms: number) => Date.now() + ms;

beforeEach(async () => {
  logs = [];
  emu = await startAliyunEmulator({ credentials: CREDS, regionId: REGION, transitionMs: 80 });
  const m = emu.model;
  m.addVSwitch({ vSwitchId: 'vsw-uf6a', cidrBlock: '10.0.1.0/24' });
  m.addInstance({ instanceId: NODES.db1, vSwitchId: 'vsw-uf6a', privateIpAddress: '10.0.1.11' });
  m.addInstance({ instanceId: NODES.db2, vSwitchId: 'vsw-uf6a', privateIpAddress: '10.0.1.12' });
  m.addInstance({ instanceId: NODES.db3, vSwitchId: 'vsw-uf6a', privateIpAddress: '10.0.1.13' });
  m.addHaVip({
    haVipId: HAVIP,
    vSwitchId: 'vsw-uf6a',
    ipAddress: VIP,
    associatedInstances: [NODES.db1],
    masterInstanceId: NODES.db1,
  });
});

afterEach(async () => {
  await forwarder?.close();
  forwarder = undefined;
  for (const s of servers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()));
  await emu.close();
});

describe('AliyunHaVipVipMover', () => {
  it('moves the HaVip so the new holder becomes MasterInstanceId and the data path follows', async () => {
    const ports: Record<string, number> = {
      [NODES.db1]: await startNamedServer('db1'),
      [NODES.db2]: await startNamedServer('db2'),
    };
    forwarder = await startVipForwarder(
      vipBackendFromHaVip(emu.model, HAVIP, (id) =>
        ports[id] ? { host: '127.0.0.1', port: ports[id] } : undefined,
      ),
    );
    expect(await readGreeting(forwarder.port)).toBe('db1');

    const m = mover();
    expect(await m.currentHolder()).toBe('db1');
    const res = await m.moveTo('db2', {
      fromNodeId: 'db1',
      deadline: deadlineIn(10_000),
      clientToken: 'failover-1',
    });

    expect(res).toMatchObject({ provider: 'aliyun-havip', address: VIP, holder: 'db2', alreadyThere: false });
    expect(res.apiCalls).toBeGreaterThanOrEqual(4);
    expect(emu.model.masterOf(HAVIP)).toBe(NODES.db2);
    expect(await m.currentHolder()).toBe('db2');
    expect(await readGreeting(forwarder.port)).toBe('db2');
    // The live old holder gave the address up, so it is not up on two hosts.
    expect(emu.model.instances.get(NODES.db1)?.configuredAddresses.has(VIP)).toBe(false);
    expect(emu.faults.calls('AssociateHaVip')).toBe(1);
    expect(emu.faults.calls('RunCommand')).toBe(2);
    expectNoSecrets(undefined);
  });

  it('answers a repeated move with alreadyThere and no Associate call', async () => {
    const m = mover();
    await m.moveTo('db2', { fromNodeId: 'db1', deadline: deadlineIn(10_000) });
    emu.faults.resetCalls();
    const again = await m.moveTo('db2', { fromNodeId: 'db1', deadline: deadlineIn(10_000) });
    expect(again).toMatchObject({ holder: 'db2', alreadyThere: true, apiCalls: 1 });
    expect(emu.faults.calls('AssociateHaVip')).toBe(0);
    expect(emu.faults.calls('RunCommand')).toBe(0);
  });

  it('announces once more when the fabric missed the first announcement, then verifies', async () => {
    let dropped = false;
    emu.model.onChange((e) => {
      if (e.kind === 'master' && e.masterInstanceId === NODES.db2 && !dropped) {
        // The fabric "missed" the gratuitous ARP: no master, as if it never arrived.
        dropped = true;
        const hv = emu.model.haVips.get(HAVIP);
        if (hv) hv.masterInstanceId = '';
      }
    });
    const res = await mover({ verifyTimeoutMs: 3000 }).moveTo('db2', {
      fromNodeId: 'db1',
      oldHolderDead: true,
      deadline: deadlineIn(8000),
    });
    expect(dropped).toBe(true);
    expect(res).toMatchObject({ holder: 'db2', alreadyThere: false });
    expect(emu.model.masterOf(HAVIP)).toBe(NODES.db2);
    expect(emu.faults.calls('RunCommand')).toBe(2);
    expect(logs.some((l) => l.msg === 'new holder not MASTER yet: announcing once more')).toBe(true);
  });

  it('moves the HaVip to the candidate first and detaches the dead master afterwards', async () => {
    emu.model.setInstanceStatus(NODES.db1, 'Stopped');
    const res = await mover().moveTo('db2', {
      fromNodeId: 'db1',
      oldHolderDead: true,
      deadline: deadlineIn(10_000),
    });
    expect(res.holder).toBe('db2');
    const hv = emu.model.haVips.get(HAVIP)!;
    // The data path follows the master at once; the detach of the dead one is under way.
    expect(hv.masterInstanceId).toBe(NODES.db2);
    expect(emu.faults.calls('UnassociateHaVip')).toBe(1);
    await waitFor(() => hv.associatedInstances.length === 1, 5000, 'the dead master detached');
    expect(hv.associatedInstances).toEqual([NODES.db2]);
    expect(hv.masterInstanceId).toBe(NODES.db2);
  });

  it('frees a non-master association slot when the HaVip already has two instances', async () => {
    const m = mover();
    await m.moveTo('db2', { fromNodeId: 'db1', deadline: deadlineIn(10_000) });
    const res = await m.moveTo('db3', { fromNodeId: 'db2', deadline: deadlineIn(10_000) });
    expect(res.holder).toBe('db3');
    const hv = emu.model.haVips.get(HAVIP)!;
    expect(hv.masterInstanceId).toBe(NODES.db3);
    expect(hv.associatedInstances).toEqual([NODES.db2, NODES.db3]);
  });

  it('succeeds after retries when the next 3 AssociateHaVip calls are throttled', async () => {
    emu.faults.set('AssociateHaVip', { throttleNext: 3 });
    const res = await mover().moveTo('db2', {
      fromNodeId: 'db1',
      deadline: deadlineIn(10_000),
      clientToken: 'failover-2',
    });
    expect(res.holder).toBe('db2');
    expect(emu.faults.calls('AssociateHaVip')).toBe(4);
    const retries = logs.filter(
      (l) => l.msg === 'retrying Alibaba API call' && l.action === 'AssociateHaVip',
    );
    expect(retries).toHaveLength(3);
    expect(String(retries[0]?.error)).toContain('Throttling.User');
    expectNoSecrets(undefined);
  });

  it('retries a 5xx that pop-core resolved with an empty body', async () => {
    emu.serverErrorBody = 'empty';
    emu.faults.set('DescribeHaVips', { serverErrorNext: 2 });
    const res = await mover().moveTo('db2', { fromNodeId: 'db1', deadline: deadlineIn(10_000) });
    expect(res.holder).toBe('db2');
    expect(logs.filter((l) => String(l.error).startsWith('EmptyResponse'))).toHaveLength(2);
  });

  it('fails with VipMoveFailedError on a permanent error', async () => {
    emu.faults.set('AssociateHaVip', {
      permanentError: {
        code: 'Forbidden.RAM',
        message: 'User not authorized to operate on the specified resource.',
        status: 403,
      },
    });
    const err = await rejection(mover().moveTo('db2', { fromNodeId: 'db1', deadline: deadlineIn(10_000) }));
    expect(err).toBeInstanceOf(VipMoveFailedError);
    expect(err.name).toBe('VipMoveFailedError');
    expect(err.message).toBe(
      `Failed to move VIP ${VIP} to ${NODES.db2} (AssociateHaVip): Forbidden.RAM: User not authorized to operate on the specified resource.`,
    );
    expect((err as VipMoveFailedError).details).toMatchObject({
      code: 'Forbidden.RAM',
      action: 'AssociateHaVip',
    });
    expect(emu.faults.calls('AssociateHaVip')).toBe(1);
    expectNoSecrets(err);
  });

  it('gives up on a hung API call by the deadline', async () => {
    emu.faults.set('DescribeHaVips', { hang: true });
    const started = Date.now();
    const err = await rejection(mover().moveTo('db2', { fromNodeId: 'db1', deadline: deadlineIn(1200) }));
    const took = Date.now() - started;
    expect(err).toBeInstanceOf(ProviderTransientError);
    expect(err.message).toMatch(
      /^Failed to move VIP 10\.0\.1\.50 to i-uf6db2 \(DescribeHaVips\): RequestTimeout: /,
    );
    expect(took).toBeGreaterThanOrEqual(1000);
    expect(took).toBeLessThan(2500);
    expectNoSecrets(err);
  });

  it('rejects a bad AccessKeySecret without leaking it or the signed URL', async () => {
    const err = await rejection(
      mover({ accessKeySecret: 'wrong/Secret+Value==1234' }).moveTo('db2', {
        fromNodeId: 'db1',
        deadline: deadlineIn(5000),
      }),
    );
    expect(err).toBeInstanceOf(VipMoveFailedError);
    expect(err.message).toMatch(
      /\(DescribeHaVips\): SignatureDoesNotMatch: Specified signature is not matched/,
    );
    expect(err.message).not.toContain(CREDS.accessKeyId);
    expect(err.message).not.toContain('wrong/Secret+Value==1234');
    expect(JSON.stringify(logs)).not.toContain('wrong/Secret+Value==1234');
    expectNoSecrets(err);
  });

  it('fails the move when the guest step cannot run on a stopped target', async () => {
    emu.model.setInstanceStatus(NODES.db2, 'Stopped');
    const err = await rejection(mover().moveTo('db2', { fromNodeId: 'db1', deadline: deadlineIn(10_000) }));
    expect(err).toBeInstanceOf(VipMoveFailedError);
    expect(err.message).toMatch(/\(RunCommand\): InstanceNotRunning: /);
    expect(emu.model.masterOf(HAVIP)).toBe(NODES.db1);
    expectNoSecrets(err);
  });

  it('reports VipNotVerifiedError when nobody announces the address (preconfigured guest step)', async () => {
    const err = await rejection(
      mover({ guestStep: 'preconfigured', verifyTimeoutMs: 600 }).moveTo('db2', {
        fromNodeId: 'db1',
        deadline: deadlineIn(5000),
      }),
    );
    expect(err).toBeInstanceOf(VipNotVerifiedError);
    expect(err.message).toContain(`master ${NODES.db1}`);
    expect(emu.faults.calls('RunCommand')).toBe(0);
    expectNoSecrets(err);
  });
});
