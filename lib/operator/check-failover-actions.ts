import {
  DescribeInstancesCommand,
  DescribeNetworkInterfacesCommand,
  EC2Client,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { ClusterConfig } from '../config/schema.ts';
import type { CheckFinding } from './check.ts';

/**
 * The tag the role's StopInstances and AssignPrivateIpAddresses statements require
 * (lib/config/deploy-settings.ts).
 */
const STONITH_TAG = { key: 'mysql-failover', value: 'managed' } as const;

/**
 * What otherwise fails only in the middle of a failover: with `aws-secondary-ip`, every node's ENI
 * carries the tag the role's AssignPrivateIpAddresses statement requires (that call has no DryRun);
 * with STONITH on (AWS), every node's
 * instance exists, carries the tag the role's StopInstances statement requires, and StopInstances
 * is allowed (a DryRun per instance: EC2 answers DryRunOperation or UnauthorizedOperation and stops
 * nothing); every configured hook function exists. Adds findings; changes nothing.
 */
export async function checkFailoverActions(
  c: ClusterConfig,
  add: (f: CheckFinding) => void,
  pass: (check: string) => void,
  clients: { ec2?: EC2Client; lambda?: LambdaClient } = {},
): Promise<void> {
  await Promise.all([
    checkEniTags(c, add, pass, clients.ec2),
    checkStonith(c, add, pass, clients.ec2),
    checkHooks(c, add, pass, clients.lambda),
  ]);
}

function ec2For(c: ClusterConfig, given: EC2Client | undefined): EC2Client {
  const region =
    c.vip.provider === 'aws-secondary-ip' || c.vip.provider === 'aws-route-table' ? c.vip.region : undefined;
  return given ?? new EC2Client(region ? { region, maxAttempts: 1 } : { maxAttempts: 1 });
}

async function checkEniTags(
  c: ClusterConfig,
  add: (f: CheckFinding) => void,
  pass: (check: string) => void,
  given: EC2Client | undefined,
): Promise<void> {
  if (c.vip.provider !== 'aws-secondary-ip') return;
  const nodes = c.nodes.filter((n) => n.networkInterfaceId !== undefined);
  const client = ec2For(c, given);
  try {
    const r = await client.send(
      new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: nodes.map((n) => n.networkInterfaceId!) }),
    );
    const tags = new Map(
      (r.NetworkInterfaces ?? []).map((e) => [
        e.NetworkInterfaceId ?? '',
        Object.fromEntries((e.TagSet ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
      ]),
    );
    let ok = true;
    for (const n of nodes) {
      const eni = n.networkInterfaceId!;
      if (tags.get(eni)?.[STONITH_TAG.key] === STONITH_TAG.value) continue;
      ok = false;
      add({
        severity: 'error',
        check: 'vip-eni-tag',
        nodeId: n.id,
        message: `${eni} is not tagged ${STONITH_TAG.key}=${STONITH_TAG.value}: the functions' role may not assign ${c.vip.address} to it, so a failover to ${n.id} would fail at MoveVip`,
        fix: `aws ec2 create-tags --resources ${eni} --tags Key=${STONITH_TAG.key},Value=${STONITH_TAG.value}`,
      });
    }
    if (ok) pass('VIP network interfaces tagged');
  } catch (err) {
    // checkVip already reports an unreadable provider; only the tag is ours.
    add({
      severity: 'warning',
      check: 'vip-eni-tag',
      message: `cannot read the tags of the nodes' network interfaces: ${(err as Error).name}`,
      fix: "Check the networkInterfaceIds and the role's ec2:DescribeNetworkInterfaces permission.",
    });
  } finally {
    if (!given) client.destroy();
  }
}

async function checkStonith(
  c: ClusterConfig,
  add: (f: CheckFinding) => void,
  pass: (check: string) => void,
  given: EC2Client | undefined,
): Promise<void> {
  if (!c.failover.stonith.enabled || c.vip.provider === 'none') return;
  if (c.vip.provider === 'aliyun-havip') {
    add({
      severity: 'info',
      check: 'stonith',
      message: 'STONITH on Alibaba Cloud (ECS StopInstance) is not verified by check',
      fix: 'Make sure the AccessKey may call ecs:StopInstance and ecs:DescribeInstanceStatus on the nodes.',
    });
    return;
  }
  const client = ec2For(c, given);
  try {
    const nodes = c.nodes.filter((n) => n.instanceId !== undefined);
    const ids = nodes.map((n) => n.instanceId!);
    let tags = new Map<string, Record<string, string>>();
    try {
      const r = await client.send(new DescribeInstancesCommand({ InstanceIds: ids }));
      tags = new Map(
        (r.Reservations ?? []).flatMap((res) =>
          (res.Instances ?? []).map((i) => [
            i.InstanceId ?? '',
            Object.fromEntries((i.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
          ]),
        ),
      );
    } catch (err) {
      add({
        severity: 'error',
        check: 'stonith-instances',
        message: `DescribeInstances ${ids.join(', ')}: ${(err as Error).name}: ${(err as Error).message}`,
        fix: "Check every node's instanceId (same region as the functions) and the role's ec2:DescribeInstances permission.",
      });
      return;
    }
    let ok = true;
    await Promise.all(
      nodes.map(async (n) => {
        const id = n.instanceId!;
        const t = tags.get(id);
        if (t && t[STONITH_TAG.key] !== STONITH_TAG.value) {
          ok = false;
          add({
            severity: 'error',
            check: 'stonith-tag',
            nodeId: n.id,
            message: `instance ${id} is not tagged ${STONITH_TAG.key}=${STONITH_TAG.value}: the functions' role may not stop it, so a failover that needs STONITH would fail`,
            fix: `aws ec2 create-tags --resources ${id} --tags Key=${STONITH_TAG.key},Value=${STONITH_TAG.value}`,
          });
        }
        try {
          await client.send(new StopInstancesCommand({ InstanceIds: [id], Force: true, DryRun: true }));
          ok = false;
          add({
            severity: 'error',
            check: 'stonith-permission',
            nodeId: n.id,
            message: `StopInstances DryRun on ${id} was not answered DryRunOperation: the endpoint ignores DryRun`,
            fix: 'Check AWS_ENDPOINT_URL_EC2 / the EC2 endpoint the functions use.',
          });
        } catch (err) {
          const name = (err as Error).name;
          if (name === 'DryRunOperation') return;
          ok = false;
          add({
            severity: 'error',
            check: 'stonith-permission',
            nodeId: n.id,
            message: `StopInstances DryRun on ${id}: ${name}${name === 'UnauthorizedOperation' ? ' (the role may not stop this instance)' : `: ${(err as Error).message}`}`,
            fix: `Tag the instance ${STONITH_TAG.key}=${STONITH_TAG.value} and keep the role's ec2:StopInstances statement (serverless.yml); check the instanceId.`,
          });
        }
      }),
    );
    if (ok) pass('STONITH instances tagged and StopInstances allowed (DryRun)');
  } finally {
    if (!given) client.destroy();
  }
}

async function checkHooks(
  c: ClusterConfig,
  add: (f: CheckFinding) => void,
  pass: (check: string) => void,
  given: LambdaClient | undefined,
): Promise<void> {
  const hooks = [c.failover.hooks?.pre, c.failover.hooks?.post].filter((h): h is string => h !== undefined);
  if (hooks.length === 0) return;
  const client = given ?? new LambdaClient({ maxAttempts: 1 });
  try {
    await Promise.all(
      hooks.map(async (name) => {
        try {
          await client.send(new GetFunctionCommand({ FunctionName: name }));
          pass(`hook ${name} exists`);
        } catch (err) {
          const e = err as Error;
          add({
            severity: 'error',
            check: 'hook-function',
            message:
              e.name === 'ResourceNotFoundException'
                ? `hook function ${name} does not exist: the failover would call it and fail (or only warn, per failover.hooks policy)`
                : `GetFunction ${name}: ${e.name}: ${e.message}`,
            fix: `Deploy ${name} in the functions' account and region, or remove it from failover.hooks.`,
          });
        }
      }),
    );
  } finally {
    if (!given) client.destroy();
  }
}
