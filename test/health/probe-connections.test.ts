import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import type { Login } from '../../lib/adapters/mysql/connection.ts';
import { ProbeConnections } from '../../lib/adapters/mysql/probe-connections.ts';

const TIMEOUTS = { connectTimeoutMs: 1000, queryTimeoutMs: 1000 };

/**
 * The persistent probe connections keep a fresh connection's evidence: a frozen server times out
 * within the same bound, a dead one is refused, a connection the server closed is not evidence,
 * and a dead mariadbd's closed socket is reported at once.
 */
describe('persistent probe connections', () => {
  let cluster: MariaDbCluster;
  let admin: Login;
  const lost: Array<{ nodeId: string; at: number }> = [];
  let conns: ProbeConnections;
  const target = (id: string, isPrimary = false) => {
    const n = cluster.node(id);
    return { nodeId: id, host: n.host, port: n.port, isPrimary };
  };
  /** The admin account's sessions on a node, as the server counts them. */
  const adminSessions = async (id: string) => {
    const rows = await cluster.query(
      id,
      "SELECT id FROM information_schema.PROCESSLIST WHERE USER = ? AND COMMAND <> 'Binlog Dump' ORDER BY id",
      [admin.user],
    );
    return rows as Array<{ id: number }>;
  };

  beforeAll(async () => {
    cluster = await startCluster({ nodes: 3 });
    const c = cluster.credentials.admin;
    admin = { user: c.user, password: c.password };
    conns = new ProbeConnections((nodeId) => lost.push({ nodeId, at: Date.now() }));
  }, 120_000);

  afterAll(async () => {
    await conns?.closeAll();
    for (const id of ['db2', 'db3']) {
      try {
        cluster.resume(id);
      } catch {
        // not hung
      }
    }
    await cluster?.destroy();
  });

  it('reuses one connection per node across rounds, with the same readings', async () => {
    // The first write creates the heartbeat table (a statement fails first): that connection
    // is replaced, as any connection on which a statement failed.
    for (let i = 0; i < 2; i++) await conns.probe(target('db1', true), admin, TIMEOUTS);
    await new Promise((r) => setTimeout(r, 300));
    const first = await conns.probe(target('db1', true), admin, TIMEOUTS);
    expect(first.reachable).toBe(true);
    expect(first.writable).toBe(true);
    const before = await adminSessions('db1');
    for (let i = 0; i < 5; i++) {
      const p = await conns.probe(target('db1', true), admin, TIMEOUTS);
      expect(p.reachable).toBe(true);
      expect(p.writable).toBe(true);
      expect(p.gtidBinlogPos).toBeTruthy();
    }
    const replica = await conns.probe(target('db2'), admin, TIMEOUTS);
    expect(replica.reachable).toBe(true);
    expect(replica.replication?.ioState).toBe('Yes');
    // Everything of the replica came back from one multi-statement batch in its dialect,
    // the heartbeat lag (its last statement) included.
    expect(replica.flavor).toBe('mariadb');
    expect(replica.gtidCurrentPos).toBeTruthy();
    expect(replica.replication?.heartbeatsReceived).toEqual(expect.any(Number));
    expect(replica.heartbeatLagMs).toEqual(expect.any(Number));
    expect(replica.semiSync?.slaveEnabled).toBe(true);
    expect(before.length).toBe(1);
    expect(await adminSessions('db1')).toEqual(before);
    expect(conns.size()).toBe(2);
  });

  it('a connection the server closed is not evidence: the node is asked again on a fresh one', async () => {
    await conns.probe(target('db3'), admin, TIMEOUTS);
    const [ours] = await adminSessions('db3');
    expect(ours).toBeDefined();
    lost.length = 0;
    await cluster.query('db3', `KILL ${ours!.id}`);
    const p = await conns.probe(target('db3'), admin, TIMEOUTS);
    expect(p.reachable).toBe(true);
    expect(p.replication?.ioState).toBe('Yes');
  });

  it('a frozen server times out on the held connection within the fresh-connection bound, and that connection is never reused', async () => {
    await conns.probe(target('db2'), admin, TIMEOUTS);
    cluster.hang('db2');
    try {
      const t0 = performance.now();
      const p = await conns.probe(target('db2'), admin, TIMEOUTS);
      const ms = performance.now() - t0;
      expect(p.reachable).toBe(false);
      expect(p.error?.kind).toBe('timeout');
      expect(ms).toBeGreaterThanOrEqual(900);
      expect(ms).toBeLessThan(2500);
      // Still frozen: a new connection, whose greeting never comes, times out too.
      const again = await conns.probe(target('db2'), admin, TIMEOUTS);
      expect(again.error?.kind).toBe('timeout');
    } finally {
      cluster.resume('db2');
    }
    const back = await conns.probe(target('db2'), admin, TIMEOUTS);
    expect(back.reachable).toBe(true);
  });

  it('reports a dead mariadbd within milliseconds through the closed socket, and the probe it triggers is refused', async () => {
    const p = await conns.probe(target('db1', true), admin, TIMEOUTS);
    expect(p.reachable).toBe(true);
    lost.length = 0;
    const killedAt = Date.now();
    await cluster.crash('db1');
    const until = Date.now() + 2000;
    while (!lost.some((l) => l.nodeId === 'db1') && Date.now() < until)
      await new Promise((r) => setTimeout(r, 5));
    const seen = lost.find((l) => l.nodeId === 'db1');
    expect(seen).toBeDefined();
    // cluster.crash waits until the pid is gone: the event came before or just after that.
    expect(seen!.at - killedAt).toBeLessThan(500);
    const after = await conns.probe(target('db1', true), admin, TIMEOUTS);
    expect(after.reachable).toBe(false);
    expect(after.error?.kind).toBe('refused');
  });
});
