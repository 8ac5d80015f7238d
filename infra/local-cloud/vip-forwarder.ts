/**
 * The VIP data path of the local cloud: a TCP proxy on a loopback port that stands for the virtual IP.
 * New connections go to whichever backend holds the VIP at accept time; when the holder changes, the
 * connections to the old holder are cut, as they are when an address leaves a host.
 */
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import type { Ec2Model } from './ec2/model.ts';

export interface Backend {
  host: string;
  port: number;
}

export interface VipBackendSource {
  /** The backend holding the VIP now, or undefined when nobody does. */
  resolve: () => Backend | undefined;
  /** Calls `onChange` when the holder may have changed; returns the unsubscribe. */
  subscribe: (onChange: () => void) => () => void;
}

export interface VipForwarderOptions extends VipBackendSource {
  listenHost?: string;
  listenPort?: number;
}

export interface VipForwarder {
  host: string;
  port: number;
  close(): Promise<void>;
}

const keyOf = (b: Backend | undefined): string => (b ? `${b.host}:${b.port}` : '');

/**
 * Starts the forwarder. Connections are grouped by backend so a holder change cuts exactly the ones
 * to the old holder; nothing is allocated per byte (plain pipes).
 */
export async function startVipForwarder(opts: VipForwarderOptions): Promise<VipForwarder> {
  const host = opts.listenHost ?? '127.0.0.1';
  const byBackend = new Map<string, Set<Socket>>();

  const server = createServer({ noDelay: true }, (client) => {
    const backend = opts.resolve();
    if (!backend) {
      client.destroy();
      return;
    }
    const key = keyOf(backend);
    const upstream = tcpConnect({ host: backend.host, port: backend.port, noDelay: true });
    const owned = byBackend.get(key) ?? new Set<Socket>();
    byBackend.set(key, owned);
    owned.add(client);
    owned.add(upstream);
    const teardown = () => {
      client.destroy();
      upstream.destroy();
      owned.delete(client);
      owned.delete(upstream);
    };
    client.on('error', teardown).on('close', teardown);
    upstream.on('error', teardown).on('close', teardown);
    client.pipe(upstream).pipe(client);
  });

  const unsubscribe = opts.subscribe(() => {
    const current = keyOf(opts.resolve());
    for (const [key, sockets] of byBackend) {
      if (key === current) continue;
      for (const s of sockets) s.destroy();
      byBackend.delete(key);
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.listenPort ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  return {
    host,
    port,
    close() {
      unsubscribe();
      for (const sockets of byBackend.values()) for (const s of sockets) s.destroy();
      byBackend.clear();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Backend source for a secondary-private-IP VIP: follows `model.holderOf(address)`. */
export function vipBackendFromEc2(
  model: Ec2Model,
  address: string,
  eniToBackend: Record<string, Backend>,
): VipBackendSource {
  return {
    resolve: () => {
      const eni = model.holderOf(address);
      return eni === undefined ? undefined : eniToBackend[eni];
    },
    subscribe: (onChange) =>
      model.onChange((e) => {
        if (e.kind === 'address' && e.address === address) onChange();
      }),
  };
}

/** Backend source for a route-table overlay VIP: follows the target of `cidr` in one route table. */
export function vipBackendFromRoute(
  model: Ec2Model,
  routeTableId: string,
  cidr: string,
  eniToBackend: Record<string, Backend>,
): VipBackendSource {
  return {
    resolve: () => {
      const eni = model.routeTargetOf(routeTableId, cidr);
      return eni === undefined ? undefined : eniToBackend[eni];
    },
    subscribe: (onChange) =>
      model.onChange((e) => {
        if (e.kind === 'route' && e.routeTableId === routeTableId && e.destinationCidrBlock === cidr)
          onChange();
      }),
  };
}
