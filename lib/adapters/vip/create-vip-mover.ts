import type { ClusterConfig } from '../../config/schema.ts';
import type { VipMover } from '../../ports.ts';
import type { SecretResolver } from '../secrets.ts';

/**
 * Builds the cluster's VIP mover from its config (undefined for provider "none"). Each provider's
 * module (and its SDK) is loaded here, on first use, not when a function is imported: the cold
 * start of a function pays only for what its first path runs, and the failover worker's warm-up
 * ping builds the mover off the failover path.
 */
export async function createVipMover(
  c: ClusterConfig,
  secrets: SecretResolver,
  log: (entry: Record<string, unknown>) => void,
): Promise<VipMover | undefined> {
  const vip = c.vip;
  const byNode = (key: 'networkInterfaceId' | 'instanceId') =>
    Object.fromEntries(c.nodes.flatMap((n) => (n[key] ? [[n.id, n[key]]] : [])));
  switch (vip.provider) {
    case 'none':
      return undefined;
    case 'aws-secondary-ip': {
      const { AwsSecondaryIpVipMover, createEc2Client } = await import('./aws-secondary-ip.ts');
      return new AwsSecondaryIpVipMover({
        address: vip.address,
        nodes: byNode('networkInterfaceId'),
        client: createEc2Client(vip.region ? { region: vip.region } : {}),
        verifyTimeoutMs: vip.verifyTimeoutMs,
        log,
      });
    }
    case 'aws-route-table': {
      const [{ AwsRouteTableVipMover }, { createEc2Client }] = await Promise.all([
        import('./aws-route-table.ts'),
        import('./aws-secondary-ip.ts'),
      ]);
      return new AwsRouteTableVipMover({
        address: vip.address,
        routeTableIds: vip.routeTableIds,
        nodes: byNode('networkInterfaceId'),
        client: createEc2Client(vip.region ? { region: vip.region } : {}),
        verifyTimeoutMs: vip.verifyTimeoutMs,
        log,
      });
    }
    case 'aliyun-havip': {
      const { AliyunHaVipVipMover } = await import('./aliyun-havip.ts');
      return new AliyunHaVipVipMover({
        address: vip.address,
        haVipId: vip.haVipId,
        regionId: vip.regionId,
        nodes: byNode('instanceId'),
        accessKeyId: await secrets.resolve(vip.accessKeyId),
        accessKeySecret: await secrets.resolve(vip.accessKeySecret),
        ...(vip.endpoint ? { endpoint: vip.endpoint } : {}),
        ...(vip.ecsEndpoint ? { ecsEndpoint: vip.ecsEndpoint } : {}),
        guestStep: vip.guestStep,
        guestDevice: vip.guestDevice,
        verifyTimeoutMs: vip.verifyTimeoutMs,
        log,
      });
    }
  }
}
