import { it } from 'vitest';
import { startAliyunEmulator } from '/work/main/infra/local-cloud/aliyun/emulator.ts';
import { AliyunHaVipVipMover } from '/work/main/lib/adapters/vip/aliyun-havip.ts';
it('peek', async () => {
  const emu = await startAliyunEmulator({ credentials: { accessKeyId: 'LTAIpeek1234', accessKeySecret: 'sec' }, regionId: 'cn-x' });
  emu.model.addVSwitch({ vSwitchId: 'vsw' });
  emu.model.addInstance({ instanceId: 'i-1', vSwitchId: 'vsw', privateIpAddress: '10.0.1.2' });
  emu.model.addHaVip({ haVipId: 'havip-1', vSwitchId: 'vsw', ipAddress: '10.0.1.50' });
  const logs: unknown[] = [];
  const m = new AliyunHaVipVipMover({ address: '10.0.1.50', haVipId: 'havip-1', regionId: 'cn-x', nodes: { a: 'i-1' }, accessKeyId: 'LTAIpeek1234', accessKeySecret: 'bad', endpoint: emu.url, ecsEndpoint: emu.url, log: (e) => logs.push(e) });
  try { await m.moveTo('a', { deadline: Date.now() + 3000 }); } catch (e) { console.log((e as Error).name, (e as Error).message, JSON.stringify((e as any).details)); }
  console.log(JSON.stringify(logs));
  await emu.close();
});
