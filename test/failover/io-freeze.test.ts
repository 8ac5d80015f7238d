/**
 * The freeze of a survivor against a hung source (SIGSTOP): STOP SLAVE IO_THREAD takes 2 s to
 * return there, and the failover does not wait for it. What makes that safe is checked here
 * against a real MariaDB pair: once the stop is in effect the replica queues and acknowledges
 * nothing more, even when the source resumes and commits before the stop has returned.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import { AdminSession } from '../../lib/adapters/mysql/connection.ts';
import { type Inst, openInst } from '../../lib/adapters/mysql/operations.ts';

let cluster: MariaDbCluster;
const timeouts = { connectTimeoutMs: 2000, queryTimeoutMs: 15_000 };
/** Short, so the source's held commit falls back to async within the test. */
const SEMI_SYNC_TIMEOUT_MS = 1500;

/** A named operation on its own session, closed afterwards (as onInst does in the steps). */
async function onDb<T>(id: string, fn: (inst: Inst) => Promise<T>): Promise<T> {
  const o = cluster.connectionOptions(id, 'admin');
  const s = await AdminSession.open(o, o, timeouts, id);
  try {
    return await fn(await openInst(s, id));
  } finally {
    await s.close();
  }
}

async function rows(id: string): Promise<number> {
  const [r] = await cluster.query<{ n: number | string }>(id, 'SELECT COUNT(*) AS n FROM app.f');
  return Number(r?.n);
}

describe('freezing a replica of a hung source', () => {
  beforeAll(async () => {
    cluster = await startCluster({ nodes: 2, semiSyncTimeoutMs: SEMI_SYNC_TIMEOUT_MS });
    await cluster.query('db1', 'CREATE DATABASE IF NOT EXISTS app');
    await cluster.query('db1', 'CREATE TABLE app.f (id INT AUTO_INCREMENT PRIMARY KEY, v INT)');
    await cluster.query('db1', 'INSERT INTO app.f (v) VALUES (1)');
    const until = Date.now() + 10_000;
    while ((await rows('db2').catch(() => 0)) < 1 && Date.now() < until)
      await new Promise((r) => setTimeout(r, 50));
  }, 120_000);

  afterAll(async () => {
    try {
      cluster?.resume('db1');
    } catch {
      // not frozen
    }
    await cluster?.destroy();
  });

  it('confirms the stop in effect without waiting it out, and receives nothing the resumed source commits before the stop returns', async () => {
    const received = (await onDb('db2', (i) => i.readReplicaStatus()))!.receivedGtid;
    cluster.hang('db1');
    await new Promise((r) => setTimeout(r, 300));

    const t0 = Date.now();
    expect(await onDb('db2', (i) => i.freezeReplicationIo({ returnWithinMs: 150 }))).toBe('pending');
    expect(await onDb('db2', (i) => i.awaitIoFreeze())).toBe('stopping');
    const confirmedMs = Date.now() - t0;
    // A second freeze (a retried step) sees the stop in effect and sends no other.
    expect(await onDb('db2', (i) => i.freezeReplicationIo({ returnWithinMs: 150 }))).toBe('stopping');
    // The drain does not wait for the stop either: what it received is final.
    const d0 = Date.now();
    const drained = await onDb('db2', (i) => i.freezeAndDrain());
    const drainMs = Date.now() - d0;
    expect(drained?.receivedGtid).toBe(received);
    const pendingAt = Date.now() - t0;
    // The stop is still pending (it returns 2 s after it began): the case under test.
    expect(pendingAt).toBeLessThan(1700);
    expect((await onDb('db2', (i) => i.readReplicaStatus()))!.ioState).not.toBe('No');

    // The source resumes and commits while the stop is pending: its dump thread sends the event
    // to the receiver that is still in its read. It must be dropped, not queued or acknowledged.
    cluster.resume('db1');
    const w0 = Date.now();
    await cluster.query('db1', 'INSERT INTO app.f (v) VALUES (2)');
    const commitMs = Date.now() - w0;
    await onDb('db2', (i) => i.waitIoStopped());
    const after = (await onDb('db2', (i) => i.readReplicaStatus()))!;

    expect(after.ioState).toBe('No');
    expect(after.receivedGtid, 'the replica received the resumed source’s commit').toBe(received);
    expect(await rows('db2')).toBe(1);
    // No ACK came: the commit waited for the whole semi-sync timeout, then fell back to async.
    expect(commitMs).toBeGreaterThanOrEqual(SEMI_SYNC_TIMEOUT_MS - 100);
    // Neither step waited out the 2 s stop.
    expect(confirmedMs).toBeLessThan(1200);
    expect(drainMs).toBeLessThan(500);
  }, 60_000);
});
