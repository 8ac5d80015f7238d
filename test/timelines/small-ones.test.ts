import { readFileSync, writeFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineTask } from '../../functions/define-task.ts';
import { onInst } from '../../lib/adapters/mysql/admin.ts';
import { classifyError } from '../../lib/adapters/mysql/connection.ts';
import { sourceOf } from '../../lib/failover/context.ts';
import { acknowledgeBlock } from '../../lib/operator/acknowledge.ts';
import type { StateStore } from '../../lib/ports.ts';
import { createRuntime } from '../../lib/runtime.ts';
import { type LiveEnv, sleep, startLiveEnv } from '../health/live-env.ts';
import { waitFor } from '../support/wait-for.ts';

/**
 * Issue 11, T9: the smaller ones, each against real servers where a server is involved.
 * One 2-node cluster (db1 primary, db2 replica) with the local cloud; the crash comes last.
 */
describe('T9: the smaller ones', () => {
  let env: LiveEnv;
  const timeouts = { connectTimeoutMs: 1000, queryTimeoutMs: 3000 };

  beforeAll(async () => {
    env = await startLiveEnv({
      name: 'small',
      harness: { nodes: 2 },
      clusterOverrides: { failover: { blockPeriodSeconds: 3600 } },
    });
  });

  afterAll(async () => {
    await env?.close();
  });

  const admin = () => env.cluster.credentials.admin;
  const endpoint = (id: string) => ({ host: env.cluster.node(id).host, port: env.cluster.node(id).port });

  describe('EHOSTUNREACH', () => {
    // No address on loopback answers EHOSTUNREACH (that needs a network namespace or a real
    // route), so the classifier is tested on the driver's error shape; the decision core's side
    // is the scenario folders DeadPrimary-host-unreachable and DeadPrimary-replicas-no-route.
    it('is classified as unreachable (ambiguous), never as a refusal', () => {
      for (const code of ['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN']) {
        const e = Object.assign(new Error(`connect ${code} 10.0.0.11:3306`), { code, errno: -113 });
        expect(classifyError(e).kind).toBe('unreachable');
      }
      const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
      expect(classifyError(refused).kind).toBe('refused');
    });
  });

  describe('a replication password with quote and backslash under NO_BACKSLASH_ESCAPES', () => {
    it('repoints the replica with that password and replication runs', async () => {
      const c = env.cluster;
      const repl = c.credentials.replication;
      const odd = `it's\\a"b'\\`;
      const [mode] = await c.query<{ m: string }>('db2', 'SELECT @@global.sql_mode AS m');
      await c.query('db2', "SET GLOBAL sql_mode = CONCAT(@@global.sql_mode, ',NO_BACKSLASH_ESCAPES')");
      // The root session of the harness quotes with placeholders in the default sql_mode.
      await c.query('db1', 'ALTER USER ?@? IDENTIFIED BY ?', [repl.user, '127.0.0.1', odd]);
      await c.query('db1', 'ALTER USER ?@? IDENTIFIED BY ?', [repl.user, 'localhost', odd]);
      try {
        await onInst('db2', endpoint('db2'), admin(), timeouts, 'repoint', (inst) =>
          inst.followPrimary(sourceOf(endpoint('db1'), { user: repl.user, password: odd })),
        );
        await c.waitForReplicaThreads('db2', 10_000);
        await c.query('db1', 'CREATE TABLE IF NOT EXISTS app.t_quote (id INT PRIMARY KEY)');
        await c.query('db1', 'INSERT INTO app.t_quote VALUES (1)');
        await waitFor(
          async () => (await c.query('db2', 'SELECT id FROM app.t_quote')).length === 1,
          10_000,
          'the insert on db2',
        );
      } finally {
        await c.query('db1', 'ALTER USER ?@? IDENTIFIED BY ?', [repl.user, '127.0.0.1', repl.password]);
        await c.query('db1', 'ALTER USER ?@? IDENTIFIED BY ?', [repl.user, 'localhost', repl.password]);
        await c.query('db2', 'SET GLOBAL sql_mode = ?', [mode?.m ?? '']);
        await c.replicate('db2', 'db1');
        await c.waitForReplicaThreads('db2');
      }
    });
  });

  describe('a failing CHANGE MASTER', () => {
    const secret = `Zq7-${'p'.repeat(120)}-leakcheck`;
    const leaks = (e: unknown): string => {
      const err = e as Error & Record<string, unknown>;
      // What Lambda prints for an uncaught error: message, stack and every own property.
      return JSON.stringify({
        ...err,
        name: err.name,
        message: err.message,
        stack: err.stack,
        cause: err.cause,
      });
    };

    it('leaves the mysql adapter without the password (statement, message, stack)', async () => {
      const err = await onInst('db2', endpoint('db2'), admin(), timeouts, 'repoint', (inst) =>
        inst.followPrimary(sourceOf(endpoint('db1'), { user: 'repl', password: secret })),
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect(leaks(err)).not.toContain(secret);
      expect(leaks(err)).not.toContain('pppppppp');
      expect((err as { sql?: string }).sql).toBeUndefined();
      // It failed for a reason the operator can read.
      expect((err as Error).message).toMatch(/MASTER_PASSWORD|too long/i);
      await env.cluster.replicate('db2', 'db1');
      await env.cluster.waitForReplicaThreads('db2');
    });

    it('leaves a task handler without the password even when a raw driver error escapes', async () => {
      const logs: Array<Record<string, unknown>> = [];
      const task = defineTask('LeakProbe', async () => {
        const conn = await mysql.createConnection({
          ...endpoint('db2'),
          user: admin().user,
          password: admin().password,
        });
        try {
          await conn.query(`CHANGE MASTER TO MASTER_PASSWORD='${secret}'`);
        } finally {
          await conn.end();
        }
      });
      const before = env.logs.length;
      const err = await task.plain(undefined).then(
        () => undefined,
        (e: unknown) => e,
      );
      logs.push(...env.logs.slice(before));
      expect(err).toBeInstanceOf(Error);
      expect((err as { sql?: string }).sql).toBeUndefined();
      expect(leaks(err)).not.toContain(secret);
      expect(leaks(err)).not.toContain('pppppppp');
      expect(JSON.stringify(logs)).not.toContain('pppppppp');
      expect(logs.some((l) => l.type === 'task-failed')).toBe(true);
    });
  });

  describe('acknowledge racing the end of a failover', () => {
    it('does not clear a block set by a failover that ended between its read and its write', async () => {
      const store = env.store;
      const name = env.name;
      await store.initClusterState({
        cluster: name,
        primaryId: 'db1',
        epoch: 0,
        analysis: 'NoProblem',
        description: 'seeded',
        topology: [],
        counters: { probes: 0, stateChanges: 0, failovers: 0, blockedFailovers: 0 },
        updatedAt: Date.now(),
      });
      const firstBlock = Date.now() + 3_600_000;
      await store.setBlockedUntil(name, firstBlock);
      const state0 = (await store.getClusterState(name))!;
      const secondBlock = firstBlock + 60_000;
      let raced = false;
      // Between acknowledge's read and its write, a manual failover claims the next epoch and ends
      // with its own block (real conditional writes on the state table).
      const racing: StateStore = new Proxy(store, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver);
          if (prop !== 'getClusterState' || raced) return typeof v === 'function' ? v.bind(target) : v;
          return async (cluster: string) => {
            const read = await target.getClusterState(cluster);
            raced = true;
            const { epoch } = await target.beginFailover({
              cluster,
              expectedEpoch: state0.epoch,
              executionName: `${cluster}-failover-e${state0.epoch + 1}`,
              failedPrimary: 'db1',
              incidentId: 'race',
              kind: 'failover',
              now: Date.now(),
              ignoreBlock: true,
            });
            await target.endFailover({
              cluster,
              epoch,
              status: 'failed',
              oldPrimary: 'db1',
              now: Date.now(),
              blockedUntil: secondBlock,
              error: { name: 'NoEligibleCandidateError', message: 'race test' },
            });
            return read;
          };
        },
      });
      const rt = createRuntime(process.env, { store: racing, log: (e) => env.logs.push(e) });
      await expect(acknowledgeBlock(rt, name)).rejects.toMatchObject({
        name: 'OperatorRefusedError',
        message: expect.stringContaining('acknowledge again'),
      });
      const after = (await store.getClusterState(name))!;
      expect(after.epoch).toBe(state0.epoch + 1);
      expect(after.blockedUntil).toBe(secondBlock);
      // Without a race it clears, conditionally on what it read.
      const plain = createRuntime(process.env, { store, log: (e) => env.logs.push(e) });
      const ok = await acknowledgeBlock(plain, name);
      expect(ok.cleared).toBe(true);
      expect((await store.getClusterState(name))!.blockedUntil).toBeUndefined();
    });
  });

  describe('one cluster whose state store fails', () => {
    it('keeps probing the other clusters: a crash there is still detected and failed over', async () => {
      const doc = JSON.parse(readFileSync(env.cloud.configFile, 'utf8')) as {
        clusters: Array<Record<string, unknown>>;
      };
      const first = doc.clusters[0]!;
      doc.clusters.unshift({ ...first, name: 'broken', vip: { provider: 'none' } });
      delete doc.clusters[0]!.clientEndpoint;
      writeFileSync(env.cloud.configFile, JSON.stringify(doc));
      // Every call for cluster "broken" fails as a throttled or denied table would.
      const failing: StateStore = new Proxy(env.store, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver);
          if (typeof v !== 'function') return v;
          return (...args: unknown[]) => {
            const arg = args[0];
            const cluster =
              typeof arg === 'string' ? arg : (arg as { cluster?: string } | undefined)?.cluster;
            if (cluster === 'broken') {
              const e = new Error('Rate of requests exceeds the allowed throughput.');
              e.name = 'ProvisionedThroughputExceededException';
              return Promise.reject(e);
            }
            return v.apply(target, args);
          };
        },
      });
      const rt = createRuntime(process.env, { store: failing, log: (e) => env.logs.push(e) });
      expect(rt.config.clusters.map((c) => c.name)).toEqual(['broken', env.name]);

      const m = env.startMonitor(14_000, { rt });
      await waitFor(
        () => m.rounds.some((r) => r.cluster === env.name && r.analysis.code === 'NoProblem'),
        8000,
        'NoProblem on the healthy cluster',
      );
      await sleep(1500);
      await env.cluster.crash('db1');
      const results = await m.done;

      const broken = results.find((r) => r.cluster === 'broken');
      const healthy = results.find((r) => r.cluster === env.name);
      expect(broken?.outcome).toBe('failed');
      expect(broken?.error?.name).toBe('ProvisionedThroughputExceededException');
      expect(healthy?.outcome).toBe('probed');
      expect(healthy?.failoversStarted).toHaveLength(1);
      expect(env.logs.filter((e) => e.type === 'cluster-monitor-failed').length).toBeGreaterThanOrEqual(2);
      await waitFor(
        () => env.cloud.sfn.executions().some((e) => e.status !== 'RUNNING'),
        30_000,
        'the failover to end',
      );
      expect(env.cloud.sfn.executions().map((e) => e.status)).toEqual(['SUCCEEDED']);
      const [ro] = await env.cluster.query<{ ro: number }>('db2', 'SELECT @@read_only AS ro');
      expect(Number(ro?.ro)).toBe(0);
    });
  });
});
