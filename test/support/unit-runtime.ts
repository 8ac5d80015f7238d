import type { Notification } from '../../lib/adapters/notifier.ts';
import { createRuntime, type Runtime } from '../../lib/runtime.ts';
import { writeConfigFile } from './config-file.ts';
import type { FakeVipMover } from './fake-vip-mover.ts';
import type { InMemoryStateStore } from './in-memory-state-store.ts';

/** The one cluster of {@link unitRuntime}. */
export const UNIT_CLUSTER = 'unit';

/**
 * A runtime on the in-memory store and the fake mover, for fast timeline tests: one 3-node
 * cluster whose ports answer nothing (a live check is refused at once). `beforeMover` runs each
 * time a step asks for the VIP mover (an interleaving point for the tests).
 */
export function unitRuntime(
  store: InMemoryStateStore,
  mover: FakeVipMover,
  notes: Notification[],
  beforeMover: () => Promise<void> = async () => {},
): Runtime {
  const config = {
    version: 1,
    clusters: [
      {
        name: UNIT_CLUSTER,
        primary: 'db1',
        nodes: ['db1', 'db2', 'db3'].map((id, i) => ({
          id,
          host: '127.0.0.1',
          port: 1,
          networkInterfaceId: `eni-0a1b2c3d4e5f6001${i}`,
        })),
        credentials: {
          admin: { user: 'admin', password: { env: 'UNIT_ADMIN_PW' } },
          replication: { user: 'repl', password: { env: 'UNIT_REPL_PW' } },
        },
        vip: { provider: 'aws-secondary-ip', address: mover.address },
        clientEndpoint: { host: mover.address, port: 3306 },
      },
    ],
  };
  const rt = createRuntime(
    { FAILOVER_CONFIG_FILE: writeConfigFile(config), UNIT_ADMIN_PW: 'admin-pw', UNIT_REPL_PW: 'repl-pw' },
    { store, notifier: { notify: async (n) => void notes.push(n) }, log: () => {} },
  );
  return {
    ...rt,
    vipMover: async () => {
      await beforeMover();
      return mover;
    },
  };
}
