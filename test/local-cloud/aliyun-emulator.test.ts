import RPCClient from '@alicloud/pop-core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AliyunEmulator,
  startAliyunEmulator,
  vipBackendFromHaVip,
} from '../../infra/local-cloud/aliyun/emulator.ts';
import { computeRpcSignature, percentEncode } from '../../infra/local-cloud/aliyun/signature.ts';
import { buildVipTakeoverScript } from '../../lib/adapters/vip/aliyun-havip.ts';

const CREDS = {
  accessKeyId: 'LTAI5tEmulatorTestKey01',
  accessKeySecret: 'emuSecret+/AbCdEf0123456789xyzXYZ',
};
const REGION = 'cn-hangzhou';
const HAVIP = 'havip-bp1emulator0001';
const VIP = '10.0.1.50';
const TRANSITION_MS = 120;

let emu: AliyunEmulator;

type RpcError = {
  code: string;
  message: string;
  data: Record<string, unknown>;
  entry: { response: { statusCode: number } };
};

function vpc(creds = CREDS): RPCClient {
  return new RPCClient({ ...creds, endpoint: emu.url, apiVersion: '2016-04-28' });
}

function ecs(): RPCClient {
  return new RPCClient({ ...CREDS, endpoint: emu.url, apiVersion: '2014-05-26' });
}

async function rejection(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    return err as RpcError;
  }
  throw new Error('expected a rejection');
}

type HaVipJson = {
  Status: string;
  MasterInstanceId: string;
  AssociatedInstances: { associatedInstance: string[] };
};

async function describeHaVip(client = vpc()): Promise<HaVipJson> {
  const res = await client.request<{ HaVips: { HaVip: HaVipJson[] } }>('DescribeHaVips', {
    RegionId: REGION,
    'Filter.1.Key': 'HaVipId',
    'Filter.1.Value.1': HAVIP,
  });
  return res.HaVips.HaVip[0]!;
}

async function waitFor(check: () => Promise<boolean> | boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Signs `params` like pop-core does and sends them, for requests pop-core itself would never build. */
async function sendSigned(
  params: Record<string, string>,
  method: 'GET' | 'POST' = 'GET',
): Promise<Record<string, string>> {
  const all: Record<string, string> = {
    Format: 'JSON',
    SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0',
    AccessKeyId: CREDS.accessKeyId,
    ...params,
  };
  all.Signature = computeRpcSignature(method, all, CREDS.accessKeySecret);
  const qs = Object.entries(all)
    .map(([k, v]) => `${percentEncode(k)}=${percentEncode(v)}`)
    .join('&');
  const res = await fetch(`${emu.url}/?${qs}`, { method });
  return { status: String(res.status), ...((await res.json()) as Record<string, string>) };
}

beforeEach(async () => {
  emu = await startAliyunEmulator({ credentials: CREDS, regionId: REGION, transitionMs: TRANSITION_MS });
  const m = emu.model;
  m.addVSwitch({ vSwitchId: 'vsw-a', cidrBlock: '10.0.1.0/24' });
  m.addVSwitch({ vSwitchId: 'vsw-b', cidrBlock: '10.0.2.0/24' });
  m.addInstance({ instanceId: 'i-a', vSwitchId: 'vsw-a', privateIpAddress: '10.0.1.11' });
  m.addInstance({ instanceId: 'i-b', vSwitchId: 'vsw-a', privateIpAddress: '10.0.1.12' });
  m.addInstance({ instanceId: 'i-c', vSwitchId: 'vsw-b', privateIpAddress: '10.0.2.13' });
  m.addHaVip({
    haVipId: HAVIP,
    vSwitchId: 'vsw-a',
    ipAddress: VIP,
    associatedInstances: ['i-a'],
    masterInstanceId: 'i-a',
  });
});

afterEach(async () => {
  await emu.close();
});

describe('aliyun emulator: signature and gateway errors', () => {
  it('accepts a request signed by pop-core over GET and over POST', async () => {
    const viaGet = await vpc().request<Record<string, unknown>>('DescribeHaVips', { RegionId: REGION });
    const viaPost = await vpc().request<Record<string, unknown>>(
      'DescribeHaVips',
      { RegionId: REGION },
      { method: 'POST' },
    );
    for (const res of [viaGet, viaPost]) {
      expect(res.RequestId).toMatch(/^[0-9A-F-]{36}$/);
      expect(res.TotalCount).toBe(1);
      expect(res.HaVips).toEqual({
        HaVip: [
          expect.objectContaining({
            HaVipId: HAVIP,
            IpAddress: VIP,
            VSwitchId: 'vsw-a',
            Status: 'InUse',
            MasterInstanceId: 'i-a',
            AssociatedInstances: { associatedInstance: ['i-a'] },
          }),
        ],
      });
    }
  });

  it('rejects a wrong AccessKeySecret with SignatureDoesNotMatch', async () => {
    const err = await rejection(
      vpc({ ...CREDS, accessKeySecret: 'not-the-secret' }).request('DescribeHaVips', { RegionId: REGION }),
    );
    expect(err.code).toBe('SignatureDoesNotMatch');
    expect(err.entry.response.statusCode).toBe(400);
    expect(err.data.Message).toMatch(/^Specified signature is not matched with our calculation\./);
    expect(err.data.RequestId).toBeTypeOf('string');
    expect(err.data.HostId).toBe('vpc.aliyuncs.com');
  });

  it('rejects an unknown AccessKeyId with InvalidAccessKeyId.NotFound', async () => {
    const err = await rejection(
      vpc({ ...CREDS, accessKeyId: 'LTAI5tUnknownKey' }).request('DescribeHaVips', { RegionId: REGION }),
    );
    expect(err.code).toBe('InvalidAccessKeyId.NotFound');
    expect(err.entry.response.statusCode).toBe(404);
  });

  it('rejects a replayed SignatureNonce', async () => {
    // pop-core's second constructor argument (verbose) makes request() also return the URL it sent.
    const VerboseClient = RPCClient as unknown as new (
      config: RPCClient.Config,
      verbose: boolean,
    ) => { request: (a: string, p: object) => Promise<[unknown, { url: string }]> };
    const verbose = new VerboseClient({ ...CREDS, endpoint: emu.url, apiVersion: '2016-04-28' }, true);
    const [, entry] = await verbose.request('DescribeHaVips', { RegionId: REGION });
    const replay = await fetch(entry.url);
    const body = (await replay.json()) as { Code: string; Message: string };
    expect(replay.status).toBe(400);
    expect(body.Code).toBe('SignatureNonceUsed');
  });

  it('rejects a Timestamp more than 15 minutes off', async () => {
    const old = new Date(Date.now() - 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const res = await sendSigned({
      Action: 'DescribeHaVips',
      Version: '2016-04-28',
      RegionId: REGION,
      Timestamp: old,
      SignatureNonce: 'nonce-old-1',
    });
    expect(res.status).toBe('400');
    expect(res.Code).toBe('InvalidTimeStamp.Expired');
  });

  it('answers an unknown action with InvalidApi.NotFound', async () => {
    const err = await rejection(vpc().request('DescribeNothing', { RegionId: REGION }));
    expect(err.code).toBe('InvalidApi.NotFound');
    expect(err.entry.response.statusCode).toBe(404);
  });

  it('names the missing parameter', async () => {
    const err = await rejection(vpc().request('AssociateHaVip', { RegionId: REGION, HaVipId: HAVIP }));
    expect(err.code).toBe('MissingInstanceId');
    expect(err.data.Message).toBe('InstanceId is mandatory for this action.');
  });

  it('answers injected throttling with the gateway throttling body', async () => {
    emu.faults.set('DescribeHaVips', { throttleNext: 1 });
    const err = await rejection(vpc().request('DescribeHaVips', { RegionId: REGION }));
    expect(err.code).toBe('Throttling.User');
    expect(err.entry.response.statusCode).toBe(400);
    await expect(vpc().request('DescribeHaVips', { RegionId: REGION })).resolves.toHaveProperty('RequestId');
    expect(emu.faults.calls('DescribeHaVips')).toBe(2);
  });

  it('can answer an injected 5xx with an empty body, which pop-core resolves', async () => {
    emu.serverErrorBody = 'empty';
    emu.faults.set('DescribeHaVips', { serverErrorNext: 1 });
    await expect(vpc().request('DescribeHaVips', { RegionId: REGION })).resolves.toEqual({});
  });
});

describe('aliyun emulator: HaVip rules', () => {
  it('refuses an instance in a different vSwitch', async () => {
    const err = await rejection(
      vpc().request('AssociateHaVip', {
        RegionId: REGION,
        HaVipId: HAVIP,
        InstanceId: 'i-c',
        InstanceType: 'EcsInstance',
      }),
    );
    expect(err.code).toBe('InvalidVSwitchId.Mismatch');
    expect(err.entry.response.statusCode).toBe(400);
  });

  it('shows Associating, refuses a second operation in transit, then InUse without changing the master', async () => {
    await vpc().request('AssociateHaVip', {
      RegionId: REGION,
      HaVipId: HAVIP,
      InstanceId: 'i-b',
      InstanceType: 'EcsInstance',
    });
    expect((await describeHaVip()).Status).toBe('Associating');
    const err = await rejection(
      vpc().request('UnassociateHaVip', { RegionId: REGION, HaVipId: HAVIP, InstanceId: 'i-b' }),
    );
    expect(err.code).toBe('IncorrectHaVipStatus');
    await waitFor(async () => (await describeHaVip()).Status === 'InUse');
    const hv = await describeHaVip();
    expect(hv.AssociatedInstances.associatedInstance).toEqual(['i-a', 'i-b']);
    expect(hv.MasterInstanceId).toBe('i-a');
  });

  it('refuses a third instance beyond the documented two', async () => {
    emu.model.addInstance({ instanceId: 'i-d', vSwitchId: 'vsw-a', privateIpAddress: '10.0.1.14' });
    await vpc().request('AssociateHaVip', { RegionId: REGION, HaVipId: HAVIP, InstanceId: 'i-b' });
    await waitFor(async () => (await describeHaVip()).Status === 'InUse');
    const err = await rejection(
      vpc().request('AssociateHaVip', { RegionId: REGION, HaVipId: HAVIP, InstanceId: 'i-d' }),
    );
    expect(err.code).toBe('CountLimitExceeded.HaVipOnECSInstance');
  });

  it('needs Force to detach the master and then leaves the HaVip without one', async () => {
    const err = await rejection(
      vpc().request('UnassociateHaVip', {
        RegionId: REGION,
        HaVipId: HAVIP,
        InstanceId: 'i-a',
        Force: 'false',
      }),
    );
    expect(err.code).toMatch(/^Forbidden\.UnassociateMaster/);
    await vpc().request('UnassociateHaVip', {
      RegionId: REGION,
      HaVipId: HAVIP,
      InstanceId: 'i-a',
      Force: 'true',
    });
    expect((await describeHaVip()).Status).toBe('Unassociating');
    await waitFor(async () => (await describeHaVip()).Status === 'Available');
    const hv = await describeHaVip();
    expect(hv.MasterInstanceId).toBe('');
    expect(hv.AssociatedInstances.associatedInstance).toEqual([]);
  });

  it('answers a repeated ClientToken with the first response and acts once', async () => {
    const params = { RegionId: REGION, HaVipId: HAVIP, InstanceId: 'i-b', ClientToken: 'tok-1' };
    const first = await vpc().request<{ RequestId: string }>('AssociateHaVip', params);
    const again = await vpc().request<{ RequestId: string }>('AssociateHaVip', params);
    expect(again.RequestId).toBe(first.RequestId);
    const err = await rejection(vpc().request('AssociateHaVip', { ...params, InstanceId: 'i-a' }));
    expect(err.code).toBe('IdempotentParameterMismatch');
  });

  it('refuses rapid repeated calls on the same HaVip when configured', async () => {
    await emu.close();
    emu = await startAliyunEmulator({
      credentials: CREDS,
      regionId: REGION,
      transitionMs: 10,
      minCallIntervalMs: 60_000,
    });
    emu.model.addVSwitch({ vSwitchId: 'vsw-a' });
    for (const id of ['i-a', 'i-b'])
      emu.model.addInstance({ instanceId: id, vSwitchId: 'vsw-a', privateIpAddress: '10.0.1.9' });
    emu.model.addHaVip({ haVipId: HAVIP, vSwitchId: 'vsw-a', ipAddress: VIP });
    await vpc().request('AssociateHaVip', { RegionId: REGION, HaVipId: HAVIP, InstanceId: 'i-a' });
    await waitFor(async () => (await describeHaVip()).Status === 'InUse');
    const err = await rejection(
      vpc().request('AssociateHaVip', { RegionId: REGION, HaVipId: HAVIP, InstanceId: 'i-b' }),
    );
    expect(err.code).toBe('OperationConflict');
  });
});

describe('aliyun emulator: Cloud Assistant and the master', () => {
  type Result = {
    InvokeRecordStatus: string;
    InvocationStatus: string;
    ExitCode: number | null;
    ErrorCode: string;
    Output: string;
  };

  async function result(invokeId: string): Promise<Result> {
    const res = await ecs().request<{ Invocation: { InvocationResults: { InvocationResult: Result[] } } }>(
      'DescribeInvocationResults',
      { RegionId: REGION, InvokeId: invokeId },
    );
    return res.Invocation.InvocationResults.InvocationResult[0]!;
  }

  async function runTakeover(instanceId: string): Promise<string> {
    const res = await ecs().request<{ InvokeId: string }>('RunCommand', {
      RegionId: REGION,
      Type: 'RunShellScript',
      CommandContent: Buffer.from(buildVipTakeoverScript({ address: VIP })).toString('base64'),
      ContentEncoding: 'Base64',
      'InstanceId.1': instanceId,
      Timeout: '30',
    });
    return res.InvokeId;
  }

  it('makes the announcing associated instance the master and tells the data path', async () => {
    const backend = vipBackendFromHaVip(emu.model, HAVIP, (id) => ({
      host: '127.0.0.1',
      port: id === 'i-a' ? 1001 : 1002,
    }));
    let changes = 0;
    const unsubscribe = backend.subscribe(() => changes++);
    expect(backend.resolve()).toEqual({ host: '127.0.0.1', port: 1001 });

    await vpc().request('AssociateHaVip', { RegionId: REGION, HaVipId: HAVIP, InstanceId: 'i-b' });
    await waitFor(async () => (await describeHaVip()).Status === 'InUse');
    const invokeId = await runTakeover('i-b');
    expect((await result(invokeId)).InvokeRecordStatus).toBe('Running');
    await waitFor(async () => (await result(invokeId)).InvokeRecordStatus !== 'Running');
    const done = await result(invokeId);
    expect(done).toMatchObject({ InvokeRecordStatus: 'Finished', InvocationStatus: 'Success', ExitCode: 0 });

    expect((await describeHaVip()).MasterInstanceId).toBe('i-b');
    expect(emu.model.masterOf(HAVIP)).toBe('i-b');
    expect(backend.resolve()).toEqual({ host: '127.0.0.1', port: 1002 });
    expect(changes).toBeGreaterThan(0);
    unsubscribe();

    const listed = await ecs().request<{ Invocations: { Invocation: { InvocationStatus: string }[] } }>(
      'DescribeInvocations',
      {
        RegionId: REGION,
        InvokeId: invokeId,
      },
    );
    expect(listed.Invocations.Invocation[0]!.InvocationStatus).toBe('Success');
  });

  it('does not make an announcing instance master unless it is associated', async () => {
    const invokeId = await runTakeover('i-b');
    await waitFor(async () => (await result(invokeId)).InvokeRecordStatus !== 'Running');
    expect((await result(invokeId)).InvokeRecordStatus).toBe('Finished');
    expect(emu.model.masterOf(HAVIP)).toBe('i-a');
  });

  it('fails the invocation on a stopped instance', async () => {
    emu.model.setInstanceStatus('i-b', 'Stopped');
    const invokeId = await runTakeover('i-b');
    await waitFor(async () => (await result(invokeId)).InvokeRecordStatus !== 'Running');
    expect(await result(invokeId)).toMatchObject({
      InvokeRecordStatus: 'Failed',
      ErrorCode: 'InstanceNotRunning',
    });
  });

  it('fails a command it does not recognise instead of pretending to run it', async () => {
    const res = await ecs().request<{ InvokeId: string }>('RunCommand', {
      RegionId: REGION,
      Type: 'RunShellScript',
      CommandContent: 'rm -rf /tmp/x',
      'InstanceId.1': 'i-a',
    });
    await waitFor(async () => (await result(res.InvokeId)).InvokeRecordStatus !== 'Running');
    expect(await result(res.InvokeId)).toMatchObject({ InvokeRecordStatus: 'Failed', ExitCode: 127 });
  });
});
