import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { z } from 'zod';
import { ConfigError, UnknownClusterError } from '../errors.ts';
import { type ClusterConfig, ConfigSchema, type FailoverConfig } from './schema.ts';

/** Formats zod issues as "clusters[0].nodes[1].port: expected number" lines. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((i) => {
      const path = i.path
        .map((p, idx) => (typeof p === 'number' ? `[${p}]` : `${idx === 0 ? '' : '.'}${String(p)}`))
        .join('');
      const keys =
        i.code === 'unrecognized_keys'
          ? ` (${i.keys.join(', ')}: unknown key, remove it or check its spelling)`
          : '';
      return `${path || '(top level)'}: ${i.message}${keys}`;
    })
    .join('\n');
}

/** Validates a parsed config object; throws ConfigError naming every bad key. */
export function parseConfig(raw: unknown, source = 'config'): FailoverConfig {
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(
      `Invalid failover configuration in ${source}:\n${formatIssues(result.error.issues)}`,
      {
        source,
      },
    );
  }
  return result.data;
}

/**
 * Loads the configuration from FAILOVER_CONFIG_FILE: in Lambda the file `serverless package`
 * validated and bundled into the artifact (`.build/failover-config.json`, relative paths are
 * resolved against LAMBDA_TASK_ROOT), in the sandbox and tests an absolute path. A file, not an
 * environment variable: Lambda allows 4 KB of environment per function, about 4 clusters.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): FailoverConfig {
  const file = env.FAILOVER_CONFIG_FILE;
  if (!file)
    throw new ConfigError(
      'No configuration: FAILOVER_CONFIG_FILE is not set (a path to the clusters JSON; serverless.yml sets it to the bundled .build/failover-config.json).',
    );
  const path = isAbsolute(file) ? file : resolve(env.LAMBDA_TASK_ROOT ?? process.cwd(), file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`Cannot read FAILOVER_CONFIG_FILE ${path}: ${(err as Error).message}`);
  }
  return parseJson(text, path);
}

function parseJson(text: string, source: string): FailoverConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${source} is not valid JSON: ${(err as Error).message}`);
  }
  return parseConfig(raw, source);
}

/** Finds a cluster by name or throws UnknownClusterError listing the known ones. */
export function findCluster(config: FailoverConfig, name: string): ClusterConfig {
  const c = config.clusters.find((x) => x.name === name);
  if (!c) {
    throw new UnknownClusterError(
      `Unknown cluster "${name}". Known clusters: ${config.clusters.map((x) => x.name).join(', ')}.`,
      { cluster: name },
    );
  }
  return c;
}
