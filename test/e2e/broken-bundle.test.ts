import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDbCluster, startCluster } from '../../infra/cluster/mariadb-cluster.ts';
import { extractZip } from '../../infra/local-cloud/lambda-runtime/artifact.ts';
import { type LocalCloud, startLocalCloud } from '../../infra/local-cloud/local-cloud.ts';
import { ensurePackagedTemplate } from '../../infra/local-cloud/packaged-functions.ts';
import { waitFor } from '../support/wait-for.ts';

/** A zip of stored entries: enough to repackage a bundle as `serverless package` would ship it. */
function storedZip(files: Record<string, Buffer>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(files)) {
    const n = Buffer.from(name);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(n.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, n, data);
    centrals.push(central, n);
    offset += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

// The packaged artifact with one fault a bundler could introduce: the failover worker's bundle
// throws at import. Everything else is the zip `serverless deploy` would upload.
describe('a broken bundle, end to end on the packaged runtime', () => {
  let cluster: MariaDbCluster | undefined;
  let cloud: LocalCloud | undefined;
  let artifact: string | undefined;
  const lines: string[] = [];

  beforeAll(async () => {
    const template = await ensurePackagedTemplate();
    const source = join(template, '..');
    artifact = mkdtempSync(join(tmpdir(), 'broken-artifact-'));
    for (const f of readdirSync(source))
      if (f.endsWith('.zip') || f.endsWith('.json')) copyFileSync(join(source, f), join(artifact, f));
    const unpacked = join(artifact, 'worker-unpacked');
    extractZip(readFileSync(join(source, 'failoverWorker.zip')), unpacked);
    const bundle = readFileSync(join(unpacked, 'functions', 'failover-worker.mjs'), 'utf8');
    // Every other file of the zip (its chunks, the config) as shipped: only the import throws.
    const files: Record<string, Buffer> = {};
    for (const f of readdirSync(unpacked, { recursive: true, withFileTypes: true }))
      if (f.isFile()) {
        const path = join(f.parentPath, f.name);
        files[relative(unpacked, path)] = readFileSync(path);
      }
    files['functions/failover-worker.mjs'] = Buffer.from(
      `throw new Error('deliberately broken bundle');\n${bundle}`,
    );
    writeFileSync(join(artifact, 'failoverWorker.zip'), storedZip(files));
    cluster = await startCluster();
    cloud = await startLocalCloud({
      cluster,
      clusterName: 'broken',
      artifactDir: artifact,
      log: (l) => lines.push(l),
      onLog: () => {},
    });
  });

  afterAll(async () => {
    await cloud?.stop();
    await cluster?.destroy();
    if (artifact) rmSync(artifact, { recursive: true, force: true });
  });

  it('fails the failover: the Task sees the import error, nothing is promoted, the VIP stays', async () => {
    const c = cluster!;
    const lc = cloud!;
    expect(lc.runtime).toBe('packaged');
    expect(lc.vipHolder()).toBe('db1');
    await c.crash('db1');
    await waitFor(
      () => lc.sfn.executions().some((e) => e.status !== 'RUNNING'),
      60_000,
      'failover execution to end',
    );
    const execution = lc.sfn.executions()[0]!;
    expect(execution.status).toBe('FAILED');
    const begin = execution.states.find((s) => s.name === 'BeginFailover');
    expect(begin?.errors[0]?.error).toBe('Error');
    expect(begin?.errors[0]?.cause).toContain('deliberately broken bundle');
    expect(execution.states.map((s) => s.name)).not.toContain('PromoteCandidate');
    expect(lc.vipHolder()).toBe('db1');
    for (const id of ['db2', 'db3']) {
      const [row] = await c.query(id, 'SELECT @@read_only AS ro');
      expect(Number((row as { ro: number }).ro)).toBe(1);
    }
    // The warm-up ping met the same error: the fault shows before any failover needs the worker.
    expect(lines.some((l) => /warm-up failed: Error: deliberately broken bundle/.test(l))).toBe(true);
  });
});
