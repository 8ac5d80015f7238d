/**
 * The VIP data path of the local cloud in network-namespace mode: the VIP is a real address in
 * the lab, on whichever node's eth0 the emulated provider delivers to. No forwarder: clients in
 * the root namespace connect to the address and the kernel (ARP on the lab's bridge) does the rest.
 *
 * - aliyun-havip: the emulated Cloud Assistant really runs the adapter's scripts in the node's
 *   namespace (ip addr add + arping -U, see aliyun/guest-script.ts), and the HaVip's MASTER
 *   follows that announcement. The VPC delivers a HaVip to its MASTER only, whatever other hosts
 *   still have configured: the fabric removes the address from every other namespace when the
 *   MASTER changes, so a healed old holder does not answer ARP for it.
 * - aws-secondary-ip: AWS delivers by ENI ownership, not by ARP. When the emulated EC2 shows the
 *   address on another ENI (after propagation), the fabric removes it from the old holder's
 *   namespace first, then adds it in the new holder's and sends a gratuitous ARP for the clients'
 *   neighbour caches.
 */
import type { GuestHost } from '../local-cloud/aliyun/guest-script.ts';
import type { AliyunModel } from '../local-cloud/aliyun/model.ts';
import type { Ec2Model } from '../local-cloud/ec2/model.ts';
import type { NetnsLab } from './lab.ts';

/** How long a background command may take to fail before it counts as started. */
const BACKGROUND_GRACE_MS = 150;

/** A GuestHost that runs an instance's commands in its node's namespace. */
export function guestHostFromLab(
  lab: NetnsLab,
  nodeOfInstance: (instanceId: string) => string | undefined,
): GuestHost {
  const node = (instanceId: string) => {
    const id = nodeOfInstance(instanceId);
    if (id === undefined) throw new Error(`No lab host for instance ${instanceId}`);
    return id;
  };
  return {
    exec: (instanceId, argv) => lab.exec(node(instanceId), argv),
    background: (instanceId, argv) =>
      new Promise((resolve) => {
        const child = lab.spawnBackground(node(instanceId), argv);
        const timer = setTimeout(() => resolve(undefined), BACKGROUND_GRACE_MS);
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve(code ?? 1);
        });
      }),
  };
}

/** Puts `address` on the node's eth0 (if absent) and announces it with a background gratuitous ARP. */
export async function claimAddress(lab: NetnsLab, nodeId: string, address: string): Promise<void> {
  const present = await lab.addresses(nodeId);
  if (!present.includes(address)) {
    const r = await lab.exec(nodeId, [
      'ip',
      'addr',
      'add',
      `${address}/${lab.prefixLength}`,
      'dev',
      lab.device,
    ]);
    if (r.code !== 0) throw new Error(`ip addr add ${address} on ${nodeId}: ${r.stderr.trim()}`);
  }
  lab.spawnBackground(nodeId, ['arping', '-q', '-U', '-c', '2', '-I', lab.device, address]);
}

/**
 * Removes `address` from the node's eth0 whatever prefix length it was added with (the guest
 * script uses the config's prefixLength, /32 by default); no error when it is not there.
 */
export async function dropAddress(lab: NetnsLab, nodeId: string, address: string): Promise<void> {
  const shown = await lab.exec(nodeId, ['ip', '-4', '-o', 'addr', 'show', 'dev', lab.device]);
  for (const m of shown.stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+\/\d+)/g)) {
    if (!m[1]!.startsWith(`${address}/`)) continue;
    const r = await lab.exec(nodeId, ['ip', 'addr', 'del', m[1]!, 'dev', lab.device]);
    if (r.code !== 0) throw new Error(`ip addr del ${m[1]} on ${nodeId}: ${r.stderr.trim()}`);
  }
}

/** Runs async fabric actions one after the other, in event order. */
function serial(onError: (err: unknown) => void) {
  let chain = Promise.resolve();
  return {
    push(action: () => Promise<void>) {
      chain = chain.then(action).catch(onError);
    },
    drain: () => chain,
  };
}

export interface VipFabric {
  /** Waits for pending address moves. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

/** Keeps the lab's VIP on the node holding it per the emulated EC2 (secondary private IP). */
export async function startEc2VipFabric(opts: {
  lab: NetnsLab;
  model: Ec2Model;
  address: string;
  nodeOfEni: (eni: string | undefined) => string | undefined;
  initialHolder: string;
  log?: (msg: string) => void;
}): Promise<VipFabric> {
  const { lab, address } = opts;
  await claimAddress(lab, opts.initialHolder, address);
  const queue = serial((err) => opts.log?.(`netns fabric: ${(err as Error).message}`));
  const unsubscribe = opts.model.onChange((e) => {
    if (e.kind !== 'address' || e.address !== address) return;
    const from = opts.nodeOfEni(e.previous);
    const to = opts.nodeOfEni(e.holder);
    queue.push(async () => {
      if (from !== undefined && from !== to) await dropAddress(lab, from, address);
      if (to !== undefined) await claimAddress(lab, to, address);
      opts.log?.(`netns fabric: ${address} ${from ?? '-'} -> ${to ?? '-'}`);
    });
  });
  return {
    settle: () => queue.drain(),
    close: async () => {
      unsubscribe();
      await queue.drain();
    },
  };
}

/** Keeps the lab's HaVip address off every namespace but the MASTER's (the VPC delivers to MASTER only). */
export async function startHaVipFabric(opts: {
  lab: NetnsLab;
  model: AliyunModel;
  haVipId: string;
  address: string;
  nodeOfInstance: (instanceId: string | undefined) => string | undefined;
  log?: (msg: string) => void;
}): Promise<VipFabric> {
  const { lab, model, address } = opts;
  const initial = opts.nodeOfInstance(model.masterOf(opts.haVipId));
  // The seeded MASTER announced the address before the cluster came up.
  if (initial !== undefined) await claimAddress(lab, initial, address);
  const queue = serial((err) => opts.log?.(`netns fabric: ${(err as Error).message}`));
  let master = initial;
  const unsubscribe = model.onChange((e) => {
    if (e.kind !== 'master' || e.haVipId !== opts.haVipId) return;
    const now = opts.nodeOfInstance(e.masterInstanceId);
    if (now === master) return;
    master = now;
    queue.push(async () => {
      for (const node of lab.nodes) if (node !== now) await dropAddress(lab, node, address);
      opts.log?.(`netns fabric: HaVip ${address} MASTER -> ${now ?? '-'}`);
    });
  });
  return {
    settle: () => queue.drain(),
    close: async () => {
      unsubscribe();
      await queue.drain();
    },
  };
}
