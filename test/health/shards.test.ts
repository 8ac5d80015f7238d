import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../infra/local-cloud/packaged-functions.ts';
import {
  busiestShard,
  clustersHeldBy,
  defaultHealthCheckMemoryMb,
  healthCheckSizingWarning,
  resolveDeploySettings,
} from '../../lib/config/deploy-settings.ts';
import {
  clustersOfShard,
  MAX_SHARDS,
  parseShard,
  SINGLE_SHARD,
  shardOf,
  watchedShard,
} from '../../lib/health/shards.ts';

const clusters = Array.from({ length: 500 }, (_, i) => ({ name: `orders-${i}` }));

describe('health-check shards', () => {
  it('warns when the busiest shard holds more clusters than its size is measured to hold, naming the fix', () => {
    const few = clusters.slice(0, 6);
    expect(healthCheckSizingWarning(few, { healthCheckShards: 1, healthCheckMemoryMb: 128 })).toBeUndefined();
    const ten = clusters.slice(0, 10);
    const w = healthCheckSizingWarning(ten, { healthCheckShards: 1, healthCheckMemoryMb: 128 });
    expect(w).toMatch(/up to 10 clusters, but 128 MB holds about 6\./);
    expect(w).toMatch(/"healthCheckShards" to about 3 or "healthCheckMemoryMb" to 256/);
    expect(healthCheckSizingWarning(ten, { healthCheckShards: 1, healthCheckMemoryMb: 256 })).toBeUndefined();
    expect(healthCheckSizingWarning(ten, { healthCheckShards: 3, healthCheckMemoryMb: 128 })).toBeUndefined();
  });

  it('sizes healthCheck by the clusters of its busiest shard when the setting is left out', () => {
    expect(healthCheckSizingWarning(clusters.slice(0, 30), { healthCheckShards: 1 })).toBeUndefined();
    expect(defaultHealthCheckMemoryMb(0)).toBe(128);
    expect(defaultHealthCheckMemoryMb(1)).toBe(128);
    expect(defaultHealthCheckMemoryMb(6)).toBe(128);
    expect(defaultHealthCheckMemoryMb(7)).toBe(256);
    expect(defaultHealthCheckMemoryMb(18)).toBe(256);
    expect(defaultHealthCheckMemoryMb(19)).toBe(384);
    expect(defaultHealthCheckMemoryMb(30)).toBe(384);
    expect(clustersHeldBy(640)).toBe(54);
    // Past Lambda's largest size (10,240 MB holds 954) only more shards help.
    const thousand = Array.from({ length: 1000 }, (_, i) => ({ name: `orders-${i}` }));
    expect(healthCheckSizingWarning(thousand, { healthCheckShards: 1 })).toMatch(
      /10240 MB holds about 954\. .* "healthCheckShards" to about 2/,
    );
    // The size it picks is one the warning accepts, for any count and sharding.
    for (const n of [1, 6, 7, 18, 19, 30, 100, 500])
      for (const of of [1, 2, 5])
        expect(
          healthCheckSizingWarning(clusters.slice(0, n), {
            healthCheckShards: of,
            healthCheckMemoryMb: defaultHealthCheckMemoryMb(busiestShard(clusters.slice(0, n), of)),
          }),
        ).toBeUndefined();
  });

  it('has every shard watched by exactly one other shard (a ring), and none when there is one', () => {
    for (const of of [2, 3, 7]) {
      const watched = Array.from({ length: of }, (_, shard) => watchedShard({ shard, of }).shard);
      expect([...watched].sort((a, b) => a - b)).toEqual(Array.from({ length: of }, (_, i) => i));
      for (const [shard, w] of watched.entries()) expect(w).not.toBe(shard);
    }
  });

  it('gives every cluster to exactly one shard, spread evenly', () => {
    for (const of of [1, 2, 7, 16]) {
      const parts = Array.from({ length: of }, (_, shard) => clustersOfShard(clusters, { shard, of }));
      expect(
        parts
          .flat()
          .map((c) => c.name)
          .sort(),
      ).toEqual(clusters.map((c) => c.name).sort());
      const sizes = parts.map((p) => p.length);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(Math.max(8, (500 / of) * 0.5));
    }
  });

  it('adding a cluster moves no other cluster', () => {
    const before = clusters.map((c) => shardOf(c.name, 8));
    const grown = [...clusters, { name: 'new-one' }];
    expect(grown.slice(0, 500).map((c) => shardOf(c.name, 8))).toEqual(before);
  });

  it('reads the shard from the event; no shard means every cluster', () => {
    expect(parseShard({ source: 'aws.events' })).toEqual(SINGLE_SHARD);
    expect(parseShard(undefined)).toEqual(SINGLE_SHARD);
    expect(parseShard({ shard: 2, of: 4 })).toEqual({ shard: 2, of: 4 });
  });

  it('rejects a bad shard with a message that says what to send', () => {
    expect(() => parseShard({ shard: 4, of: 4 })).toThrow(/"shard" must be a whole number from 0 to 3/);
    expect(() => parseShard({ shard: 0 })).toThrow(/"of" must be the number of shards/);
    expect(() => parseShard({ shard: 0, of: MAX_SHARDS + 1 })).toThrow(/from 1 to 64/);
    expect(() => parseShard({ shard: '1', of: 2 })).toThrow(/got "1"/);
  });
});

describe('the healthCheckShards deploy setting', () => {
  const resolve = (deploy: Record<string, unknown>) => {
    const dir = mkdtempSync(join(tmpdir(), 'smf-shards-settings-'));
    try {
      copyFileSync(join(PROJECT_ROOT, 'config/clusters.example.json'), join(dir, 'clusters.example.json'));
      const base = JSON.parse(readFileSync(join(PROJECT_ROOT, 'config/deploy.example.json'), 'utf8'));
      const merged = { ...base, ...deploy };
      // Absent: the default.
      if (!('healthCheckShards' in deploy)) delete merged.healthCheckShards;
      writeFileSync(join(dir, 'deploy.example.json'), JSON.stringify(merged));
      return resolveDeploySettings({ root: dir, stage: 'dev', command: 'package', configDir: dir });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('is one plain schedule by default and K schedules with their {shard, of} input', () => {
    expect(resolve({}).healthCheckEvents).toEqual([{ schedule: { rate: 'rate(1 minute)' } }]);
    expect(resolve({ healthCheckShards: 3 }).healthCheckEvents).toEqual(
      [0, 1, 2].map((shard) => ({ schedule: { rate: 'rate(1 minute)', input: { shard, of: 3 } } })),
    );
  });

  it('deploys healthCheck at the size the clusters need unless healthCheckMemoryMb is set', () => {
    // The example has one cluster: 128 MB.
    expect(resolve({}).healthCheckMemoryMb).toBe(128);
    expect(resolve({ healthCheckMemoryMb: 512 }).healthCheckMemoryMb).toBe(512);
    expect(() => resolve({ healthCheckMemoryMb: 64 })).toThrow(/healthCheckMemoryMb/);
  });

  it('refuses a shard count that is not a whole number from 1 to 64, naming the key', () => {
    for (const bad of [0, 65, 2.5, '3']) {
      expect(() => resolve({ healthCheckShards: bad })).toThrow(/healthCheckShards/);
    }
  });
});
