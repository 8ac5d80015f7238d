import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretResolver } from '../../lib/adapters/secrets.ts';
import { type LiveEnv, sleep, startLiveEnv } from '../health/live-env.ts';
import { waitFor } from '../support/wait-for.ts';

describe('SecretResolver', () => {
  const fileRef = (file: string) => ({ file });
  let clock = 0;
  const now = () => clock;
  const tmp = `${process.env.TMPDIR ?? '/tmp'}/secret-${process.pid}-${Date.now()}`;

  it('reads a secret again after its TTL, not before', async () => {
    const r = new SecretResolver({}, undefined, { ttlMs: 60_000, now });
    writeFileSync(tmp, 'one\n');
    expect(await r.resolve(fileRef(tmp))).toBe('one');
    writeFileSync(tmp, 'two\n');
    clock += 59_000;
    expect(await r.resolve(fileRef(tmp))).toBe('one');
    clock += 1_000;
    expect(await r.resolve(fileRef(tmp))).toBe('two');
    expect(await r.knownSecrets()).toEqual(['one', 'two']);
  });

  it('reads it again after an auth failure, at most every authRefetchMs', async () => {
    const r = new SecretResolver({}, undefined, { ttlMs: 300_000, authRefetchMs: 5_000, now });
    writeFileSync(tmp, 'old\n');
    expect(await r.resolve(fileRef(tmp))).toBe('old');
    writeFileSync(tmp, 'new\n');
    clock += 1_000;
    // Read a second ago: a 1045 now does not read it again (a wrong password costs no hammering).
    expect(r.expireAfterAuthFailure()).toBe(0);
    expect(await r.resolve(fileRef(tmp))).toBe('old');
    clock += 4_000;
    expect(r.expireAfterAuthFailure()).toBe(1);
    expect(await r.resolve(fileRef(tmp))).toBe('new');
  });

  it('keeps the known value when reading it again fails, and tries again later', async () => {
    const r = new SecretResolver({}, undefined, { ttlMs: 10_000, authRefetchMs: 5_000, now });
    writeFileSync(tmp, 'kept\n');
    expect(await r.resolve(fileRef(tmp))).toBe('kept');
    clock += 10_000;
    rmSync(tmp);
    expect(await r.resolve(fileRef(tmp))).toBe('kept');
    writeFileSync(tmp, 'next\n');
    expect(await r.resolve(fileRef(tmp))).toBe('kept');
    clock += 5_000;
    expect(await r.resolve(fileRef(tmp))).toBe('next');
    rmSync(tmp);
  });

  it('fails a secret it never could read', async () => {
    const r = new SecretResolver({}, undefined, { now });
    await expect(r.resolve(fileRef(`${tmp}.gone`))).rejects.toThrow(/Cannot read secret file/);
  });
});

// Live: rotate the admin password on the servers and then in the secret source (the order AWS's
// rotation uses: setSecret on the database, then finishSecret) while the health check runs.
describe('password rotation while the health check runs', () => {
  let env: LiveEnv;
  beforeAll(async () => {
    env = await startLiveEnv({ name: 'rotation' });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('probing recovers within a few rounds of the new secret and no failover starts', async () => {
    const { cluster } = env;
    const admin = cluster.credentials.admin;
    const m = env.startMonitor(45_000);
    await waitFor(
      () => m.rounds.filter((r) => r.analysis.code === 'NoProblem').length >= 2,
      15_000,
      'two healthy rounds before the rotation',
    );
    const before = await env.store.getClusterState(env.name);
    expect(before?.epoch).toBeTypeOf('number');

    // 1. The database: one ALTER USER on the primary, replicated to the replicas.
    const newPassword = randomBytes(18).toString('base64url');
    const primary = cluster.nodes[0]!.id;
    const hosts = await cluster.query<{ host: string }>(
      primary,
      'SELECT Host AS host FROM mysql.user WHERE User = ?',
      [admin.user],
    );
    for (const { host } of hosts)
      await cluster.query(primary, 'ALTER USER ?@? IDENTIFIED BY ?', [admin.user, host, newPassword]);
    const refusesOld = async (id: string) => {
      const n = cluster.node(id);
      try {
        const conn = await mysql.createConnection({
          host: n.host,
          port: n.port,
          user: admin.user,
          password: admin.password,
        });
        await conn.end();
        return false;
      } catch (err) {
        return (err as { errno?: number }).errno === 1045;
      }
    };
    await waitFor(
      async () => (await Promise.all(cluster.nodes.map((n) => refusesOld(n.id)))).every(Boolean),
      10_000,
      'every node refusing the old password',
    );
    // The prober holds its connections across rounds, and a server keeps sessions that logged in
    // before ALTER USER: end them, as a restart or a network blip would, so it must log in again.
    for (const n of cluster.nodes) {
      const held = await cluster.query<{ id: number }>(
        n.id,
        'SELECT id FROM information_schema.PROCESSLIST WHERE user = ? AND id <> CONNECTION_ID()',
        [admin.user],
      );
      for (const { id } of held) await cluster.query(n.id, `KILL CONNECTION ${Number(id)}`).catch(() => {});
    }
    const rotatedAt = Date.now();

    // 2. The window before the secret source has the new value: 1045 everywhere.
    await sleep(4_000);
    const window = m.rounds.filter((r) => r.startedAt > rotatedAt);
    expect(window.length).toBeGreaterThanOrEqual(2);
    for (const r of window) {
      const primaryProbe = r.snapshot.nodes.find((n) => n.nodeId === r.state.primaryId);
      expect(primaryProbe?.error?.kind).toBe('auth');
      expect(r.analysis.code).not.toMatch(/^Dead/);
      expect(r.analysis.actionable).toBe(false);
    }

    // 3. The secret source gets the new password (finishSecret).
    writeFileSync(admin.passwordFile, `${newPassword}\n`);
    const updatedAt = Date.now();
    await waitFor(
      () => m.rounds.some((r) => r.startedAt > updatedAt && r.analysis.code === 'NoProblem'),
      15_000,
      'a healthy round with the rotated password',
    );
    const recovered = m.rounds.find((r) => r.startedAt > updatedAt && r.analysis.code === 'NoProblem')!;
    const roundsToRecover = m.rounds.filter(
      (r) => r.startedAt > updatedAt && r.startedAt <= recovered.startedAt,
    ).length;
    console.log(
      `rotation: ${window.length} rounds refused with the old secret; recovered ${recovered.startedAt - updatedAt} ms (${roundsToRecover} rounds) after the secret source changed`,
    );
    // authRefetchMs (5 s) bounds how stale a refused secret can be: about 5 rounds at 1 s.
    expect(roundsToRecover).toBeLessThanOrEqual(8);
    await sleep(2_000);
    await m.stop();

    // No failover, at any point.
    expect(m.rounds.filter((r) => r.decision.kind === 'confirmed')).toEqual([]);
    expect(m.rounds.filter((r) => r.started)).toEqual([]);
    const after = await env.store.getClusterState(env.name);
    expect(after?.epoch).toBe(before?.epoch);
    expect(after?.failoverInProgress).toBeUndefined();
    expect(after?.primaryId).toBe(primary);
    // The passwords never reach the logs.
    const text = JSON.stringify(env.logs);
    expect(text).not.toContain(newPassword);
    expect(text).not.toContain(admin.password);
  });
});
