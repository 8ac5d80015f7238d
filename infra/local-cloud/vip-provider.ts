/**
 * The local cloud's VIP, per provider: seeds the emulated provider (EC2 ENIs and secondary IP,
 * EC2 route tables with an overlay /32, or Alibaba vSwitch + ECS instances + HaVip), builds the
 * cluster's `vip` config and node fields as an operator would write them, and gives the data path
 * (a VipBackendSource for the loopback forwarder) and the holder per the provider's API state.
 *
 *   aws-secondary-ip  VIP 10.0.1.50, a secondary IP of the primary's ENI (one subnet)
 *   aws-route-table   overlay 192.168.250.10/32 (outside the VPC CIDR) routed to the primary's ENI
 *                     in one route table per AZ; nodes alternate between two AZ subnets
 *   aliyun-havip      HaVip 10.0.1.50 associated with the primary's ECS instance, which announced it
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MariaDbCluster } from '../cluster/mariadb-cluster.ts';
import type { NetnsLab } from '../netns/lab.ts';
import { guestHostFromLab, startEc2VipFabric, startHaVipFabric } from '../netns/vip-fabric.ts';
import { type AliyunEmulator, startAliyunEmulator, vipBackendFromHaVip } from './aliyun/emulator.ts';
import type { Ec2Emulator } from './ec2-emulator.ts';
import type { FaultInjector } from './fault-injection.ts';
import { type LatencyMode, latencyProfile } from './latency-profiles.ts';
import {
  type Backend,
  type VipBackendSource,
  vipBackendFromEc2,
  vipBackendFromRoute,
} from './vip-forwarder.ts';

/**
 * The EC2 instance the emulator attaches node `index`'s ENI to (0-based), for configs that name
 * it (failover.stonith) before the local cloud starts.
 */
export function emulatedAwsInstanceId(index: number): string {
  return `i-0a00000000000001${index}`;
}

export type LocalCloudProvider = 'aws-secondary-ip' | 'aws-route-table' | 'aliyun-havip';
export const LOCAL_CLOUD_PROVIDERS: readonly LocalCloudProvider[] = [
  'aws-secondary-ip',
  'aws-route-table',
  'aliyun-havip',
];

export const VIP_ADDRESS = '10.0.1.50';
/** The route-table provider's overlay IP: outside the VPC CIDR, only ever a model string here. */
export const OVERLAY_ADDRESS = '192.168.250.10';
export const ROUTE_TABLE_IDS = ['rtb-0a000000000000001', 'rtb-0a000000000000002'];
export const ALIYUN_REGION = 'cn-hangzhou';
export const HAVIP_ID = 'havip-bp1local0000000001';
/** Test-only AccessKey of the emulated Alibaba Cloud (never a real one). */
export const ALIYUN_CREDENTIALS = {
  accessKeyId: 'LTAI5tLocalCloud00000001',
  accessKeySecret: 'localCloudAliyunSecret/+=0000000000',
};
/** The environment variable the cluster config's {env} reference names for the AccessKey id. */
export const ALIYUN_KEY_ID_ENV = 'LOCAL_CLOUD_ALIYUN_ACCESS_KEY_ID';

const VPC_ID = 'vpc-0a000000000000001';
const SUBNETS = [
  {
    subnetId: 'subnet-0a000000000000001',
    cidrBlock: '10.0.1.0/24',
    availabilityZone: 'us-east-1a',
    net: '10.0.1',
  },
  {
    subnetId: 'subnet-0a000000000000002',
    cidrBlock: '10.0.2.0/24',
    availabilityZone: 'us-east-1b',
    net: '10.0.2',
  },
] as const;

export interface VipProviderSetup {
  provider: LocalCloudProvider;
  /** The address clients use (the overlay IP for aws-route-table). */
  address: string;
  /** The cluster config's `vip` object. */
  vipConfig: Record<string, unknown>;
  /** Extra fields per node for the cluster config (networkInterfaceId, instanceId). */
  nodeFields: Record<string, Record<string, string>>;
  eniOf: Record<string, string>;
  /** ECS instance id per node (aliyun-havip only). */
  instanceOf: Record<string, string>;
  routeTableIds: string[];
  source: VipBackendSource;
  /** Node behind the VIP per the provider's API state (undefined: nobody, or tables disagree). */
  holder(): string | undefined;
  /** The fault injector of the API that moves this VIP. */
  faults: FaultInjector;
  aliyun: AliyunEmulator | undefined;
  /** Environment the functions need (secret references' variables). */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** Seeds `ec2` (and starts the Alibaba emulator when needed) for `provider`. */
export async function setUpVipProvider(opts: {
  provider: LocalCloudProvider;
  latency: LatencyMode;
  cluster: MariaDbCluster;
  ec2: Ec2Emulator;
  region: string;
  /**
   * Network-namespace mode: the VPC is the lab's subnet, each node's private IP its lab address,
   * the VIP the lab's .50, and the address really moves between namespaces (infra/netns/vip-fabric.ts).
   */
  netns?: NetnsLab;
  log?: (msg: string) => void;
}): Promise<VipProviderSetup> {
  const { provider, cluster, ec2, netns } = opts;
  if (netns !== undefined && provider === 'aws-route-table')
    throw new Error('aws-route-table is not available in network-namespace mode yet (use loopback)');
  const vipAddress = netns === undefined ? VIP_ADDRESS : netns.addressAt(50);
  const profile = latencyProfile(opts.latency);
  for (const [action, ms] of Object.entries(profile.ec2.apiMs)) ec2.faults.set(action, { latencyMs: ms });
  ec2.model.propagationMs =
    provider === 'aws-route-table' ? profile.ec2.routePropagationMs : profile.ec2.assignPropagationMs;

  // ENIs exist for every provider (the sandbox and operator tools read eniOf); the route-table
  // cluster spreads its nodes over two AZs, which is what that provider is for.
  const subnets =
    netns !== undefined
      ? [{ ...SUBNETS[0], cidrBlock: netns.subnet, net: netns.hostAddress.replace(/\.1$/, '') }]
      : provider === 'aws-route-table'
        ? SUBNETS
        : SUBNETS.slice(0, 1);
  for (const s of subnets) ec2.model.addSubnet({ ...s, vpcId: VPC_ID });
  const eniOf: Record<string, string> = {};
  const byEni: Record<string, Backend> = {};
  const primaryId = cluster.nodes[0]!.id;
  cluster.nodes.forEach((n, i) => {
    const eni = `eni-0a00000000000001${i}`;
    const subnet = subnets[i % subnets.length]!;
    eniOf[n.id] = eni;
    byEni[eni] = { host: n.host, port: n.port };
    ec2.model.addNetworkInterface({
      networkInterfaceId: eni,
      subnetId: subnet.subnetId,
      privateIpAddress: netns === undefined ? `${subnet.net}.${11 + i}` : netns.addressOf(n.id),
      instanceId: emulatedAwsInstanceId(i),
      description: `database node ${n.id}`,
      ...(provider === 'aws-secondary-ip' && n.id === primaryId
        ? { secondaryPrivateIpAddresses: [vipAddress] }
        : {}),
    });
  });
  const nodeOfEni = (eni: string | undefined) => Object.entries(eniOf).find(([, e]) => e === eni)?.[0];
  const awsNodeFields = Object.fromEntries(
    Object.entries(eniOf).map(([id, eni]) => [id, { networkInterfaceId: eni }]),
  );
  const base = {
    eniOf,
    instanceOf: {},
    faults: ec2.faults,
    aliyun: undefined,
    env: {},
    close: async () => {},
  };

  if (provider === 'aws-secondary-ip') {
    const fabric =
      netns === undefined
        ? undefined
        : await startEc2VipFabric({
            lab: netns,
            model: ec2.model,
            address: vipAddress,
            nodeOfEni,
            initialHolder: primaryId,
            ...(opts.log === undefined ? {} : { log: opts.log }),
          });
    return {
      ...base,
      provider,
      address: vipAddress,
      vipConfig: { provider, address: vipAddress, region: opts.region },
      nodeFields: awsNodeFields,
      routeTableIds: [],
      source: vipBackendFromEc2(ec2.model, vipAddress, byEni),
      holder: () => nodeOfEni(ec2.model.holderOf(vipAddress)),
      close: async () => fabric?.close(),
    };
  }

  if (provider === 'aws-route-table') {
    const cidr = `${OVERLAY_ADDRESS}/32`;
    for (const routeTableId of ROUTE_TABLE_IDS) {
      ec2.model.addRouteTable({
        routeTableId,
        vpcId: VPC_ID,
        routes: [{ destinationCidrBlock: cidr, networkInterfaceId: eniOf[primaryId]! }],
      });
    }
    return {
      ...base,
      provider,
      address: OVERLAY_ADDRESS,
      vipConfig: { provider, address: OVERLAY_ADDRESS, routeTableIds: ROUTE_TABLE_IDS, region: opts.region },
      nodeFields: awsNodeFields,
      routeTableIds: [...ROUTE_TABLE_IDS],
      // The clients sit in the first AZ's subnet: their traffic follows that table.
      source: vipBackendFromRoute(ec2.model, ROUTE_TABLE_IDS[0]!, cidr, byEni),
      holder: () => {
        const targets = new Set(ROUTE_TABLE_IDS.map((t) => ec2.model.routeTargetOf(t, cidr)));
        return targets.size === 1 ? nodeOfEni([...targets][0]) : undefined;
      },
    };
  }

  // aliyun-havip
  const instanceOf: Record<string, string> = {};
  const aliyun = await startAliyunEmulator({
    credentials: ALIYUN_CREDENTIALS,
    regionId: ALIYUN_REGION,
    transitionMs: profile.aliyun.transitionMs,
    commandMs: profile.aliyun.commandMs,
    ...(netns === undefined
      ? {}
      : {
          guestHost: guestHostFromLab(
            netns,
            (id) => Object.entries(instanceOf).find(([, inst]) => inst === id)?.[0],
          ),
        }),
  });
  for (const [action, ms] of Object.entries(profile.aliyun.apiMs))
    aliyun.faults.set(action, { latencyMs: ms });
  const vSwitchId = 'vsw-bp1local0000000001';
  aliyun.model.addVSwitch({ vSwitchId, vpcId: 'vpc-bp1local0000000001', zoneId: `${ALIYUN_REGION}-h` });
  const byInstance: Record<string, Backend> = {};
  cluster.nodes.forEach((n, i) => {
    const id = `i-bp1local00000000000${i + 1}`;
    instanceOf[n.id] = id;
    byInstance[id] = { host: n.host, port: n.port };
    aliyun.model.addInstance({
      instanceId: id,
      vSwitchId,
      privateIpAddress: netns === undefined ? `10.0.1.${11 + i}` : netns.addressOf(n.id),
    });
  });
  aliyun.model.addHaVip({
    haVipId: HAVIP_ID,
    vSwitchId,
    ipAddress: vipAddress,
    associatedInstances: [instanceOf[primaryId]!],
    masterInstanceId: instanceOf[primaryId]!,
  });
  // The AccessKey pair as references, never inline: the secret in a 0600 file, the id in the env.
  const secretFile = join(cluster.dir, 'aliyun-access-key-secret');
  writeFileSync(secretFile, `${ALIYUN_CREDENTIALS.accessKeySecret}\n`, { mode: 0o600 });
  chmodSync(secretFile, 0o600);
  const nodeOfInstance = (id: string | undefined) =>
    Object.entries(instanceOf).find(([, i]) => i === id)?.[0];
  const haVipFabric =
    netns === undefined
      ? undefined
      : await startHaVipFabric({
          lab: netns,
          model: aliyun.model,
          haVipId: HAVIP_ID,
          address: vipAddress,
          nodeOfInstance,
          ...(opts.log === undefined ? {} : { log: opts.log }),
        }).catch(async (err: unknown) => {
          await aliyun.close();
          throw err;
        });
  return {
    ...base,
    provider,
    address: vipAddress,
    vipConfig: {
      provider,
      address: vipAddress,
      haVipId: HAVIP_ID,
      regionId: ALIYUN_REGION,
      endpoint: aliyun.url,
      ecsEndpoint: aliyun.url,
      accessKeyId: { env: ALIYUN_KEY_ID_ENV },
      accessKeySecret: { file: secretFile },
    },
    nodeFields: Object.fromEntries(
      cluster.nodes.map((n) => [n.id, { networkInterfaceId: eniOf[n.id]!, instanceId: instanceOf[n.id]! }]),
    ),
    instanceOf,
    routeTableIds: [],
    source: vipBackendFromHaVip(aliyun.model, HAVIP_ID, (id) => byInstance[id]),
    holder: () => {
      const master = aliyun.model.masterOf(HAVIP_ID);
      return Object.entries(instanceOf).find(([, id]) => id === master)?.[0];
    },
    faults: aliyun.faults,
    aliyun,
    env: { [ALIYUN_KEY_ID_ENV]: ALIYUN_CREDENTIALS.accessKeyId },
    close: async () => {
      await haVipFabric?.close();
      await aliyun.close();
    },
  };
}
