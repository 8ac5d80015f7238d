import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

let dir: string | undefined;
let files = 0;
// Registered on import (collection time): hooks cannot be added from inside a running test.
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Writes a clusters config where the functions read it (a file named by FAILOVER_CONFIG_FILE) and
 * returns its path; the folder is removed after the test file.
 */
export function writeConfigFile(config: unknown): string {
  dir ??= mkdtempSync(join(tmpdir(), 'smf-config-'));
  const file = join(dir, `clusters-${++files}.json`);
  writeFileSync(file, JSON.stringify(config));
  return file;
}
