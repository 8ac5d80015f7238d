import { createServer, type Server, connect as tcpConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import type { Login } from '../../lib/adapters/mysql/connection.ts';
import { ProbeConnections } from '../../lib/adapters/mysql/probe-connections.ts';

const TIMEOUTS = { connectTimeoutMs: 1000, queryTimeoutMs: 1000 };

/**
 * A TCP relay to a node that counts the client's commands: MySQL packets from the client with
 * sequence id 0 (every command starts a new sequence; the handshake answers carry 1 and up).
 * One command is one round trip.
 */
async function commandCounter(
  port: number,
): Promise<{ port: number; commands: () => number; close: () => Promise<void> }> {
  let commands = 0;
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 4) {
        const len = buf[0]! | (buf[1]! << 8) | (buf[2]! << 16);
        if (buf.length < 4 + len) break;
        if (buf[3] === 0) commands++;
        buf = buf.subarray(4 + len);
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => client.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no relay port');
  return {
    port: addr.port,
    commands: () => commands,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

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
    // A MariaDB probe's replica status is as it always was (Gtid_IO_Pos is what it received).
    expect(replica.replication?.retrievedGtid).toBeUndefined();
    expect(before.length).toBe(1);
    expect(await adminSessions('db1')).toEqual(before);
    expect(conns.size()).toBe(2);
  });

  it('a round costs one round trip per replica and two on the primary (batch, then heartbeat write), in the node’s dialect', async () => {
    const relays = await Promise.all(['db1', 'db2'].map((id) => commandCounter(cluster.node(id).port)));
    const own = new ProbeConnections();
    try {
      const via = (i: number, id: string, isPrimary: boolean) => ({
        ...target(id, isPrimary),
        host: '127.0.0.1',
        port: relays[i]!.port,
      });
      // First probe of each: the connection and its one-off flavor detection.
      await own.probe(via(0, 'db1', true), admin, TIMEOUTS);
      await own.probe(via(1, 'db2', false), admin, TIMEOUTS);
      const before = relays.map((r) => r.commands());
      const rounds = 5;
      for (let i = 0; i < rounds; i++) {
        const [p, r] = await Promise.all([
          own.probe(via(0, 'db1', true), admin, TIMEOUTS),
          own.probe(via(1, 'db2', false), admin, TIMEOUTS),
        ]);
        expect(p.writable).toBe(true);
        expect(r.replication?.ioState).toBe('Yes');
        expect(r.heartbeatLagMs).toEqual(expect.any(Number));
      }
      expect(relays[0]!.commands() - before[0]!).toBe(2 * rounds);
      expect(relays[1]!.commands() - before[1]!).toBe(rounds);
    } finally {
      await own.closeAll();
      await Promise.all(relays.map((r) => r.close()));
    }
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
