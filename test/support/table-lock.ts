import mysql from 'mysql2/promise';
import type { MariaDbCluster } from '../../infra/cluster/mariadb-cluster.ts';

/**
 * Holds `LOCK TABLES <table> WRITE` on one node from a session of its own (root over the unix
 * socket), so that the node's replication applier blocks on the first event for that table: its
 * relay log cannot be applied in time, whatever the failover does to the applier's delay or
 * threads. Returns the release (idempotent).
 */
export async function holdTableLock(
  cluster: MariaDbCluster,
  nodeId: string,
  table: string,
): Promise<() => Promise<void>> {
  const conn = await mysql.createConnection({
    socketPath: cluster.node(nodeId).socket,
    user: 'root',
    password: '',
    connectTimeout: 2000,
  });
  await conn.query(`LOCK TABLES ${table} WRITE`);
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await conn.query('UNLOCK TABLES').catch(() => {});
    conn.destroy();
  };
}
