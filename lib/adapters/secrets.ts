import { readFile } from 'node:fs/promises';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SecretRef } from '../config/schema.ts';
import { SecretNotFoundError } from '../errors.ts';
import { boundedRequests } from './sdk/bounded.ts';

/** How long a resolved secret is used before it is read again (SECRETS_TTL_MS overrides). */
export const SECRET_TTL_MS = 5 * 60_000;
/** After an authentication failure, secrets older than this are read again (at most that often). */
export const AUTH_REFETCH_MS = 5_000;

interface Entry {
  value: Promise<string>;
  /** When the value was asked for; an entry older than the TTL is read again. */
  fetchedAt: number;
}

export interface SecretResolverOptions {
  ttlMs?: number;
  authRefetchMs?: number;
  now?: () => number;
}

/**
 * Resolves secret references (env, file, Secrets Manager) with a per-container cache that expires:
 * a rotated password reaches a long-lived health check within the TTL, and at once after the
 * server refuses the old one (see {@link SecretResolver.expireAfterAuthFailure}). A read that fails
 * after a value was known keeps the known value: a Secrets Manager hiccup never turns into probes
 * without a password.
 */
export class SecretResolver {
  private readonly cache = new Map<string, Entry>();
  /** Every value resolved so far (rotated ones too), so callers can redact them from any text. */
  private readonly seen = new Set<string>();
  private client: SecretsManagerClient | undefined;
  private readonly ttlMs: number;
  private readonly authRefetchMs: number;
  private readonly now: () => number;

  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    client?: SecretsManagerClient,
    options: SecretResolverOptions = {},
  ) {
    this.client = client;
    const ttl = Number(env.SECRETS_TTL_MS);
    this.ttlMs = options.ttlMs ?? (Number.isFinite(ttl) && ttl > 0 ? ttl : SECRET_TTL_MS);
    this.authRefetchMs = options.authRefetchMs ?? AUTH_REFETCH_MS;
    this.now = options.now ?? Date.now;
  }

  /** Every value resolved so far, so callers can redact them from any text. */
  async knownSecrets(): Promise<string[]> {
    await Promise.all([...this.cache.values()].map((e) => e.value.catch(() => '')));
    return [...this.seen];
  }

  /** The secret's value: cached for the TTL, read again after it (or after an auth failure). */
  resolve(ref: SecretRef): Promise<string> {
    const key = JSON.stringify(ref);
    const now = this.now();
    const entry = this.cache.get(key);
    if (entry && now - entry.fetchedAt < this.ttlMs) return entry.value;
    const previous = entry?.value;
    const value = this.load(ref).then(
      (v) => {
        this.seen.add(v);
        return v;
      },
      async (err: unknown) => {
        const known = previous ? await previous.catch(() => undefined) : undefined;
        if (known === undefined) {
          if (this.cache.get(key)?.value === value) this.cache.delete(key);
          throw err;
        }
        // Keep the known value and try again after authRefetchMs rather than at every call.
        const e = this.cache.get(key);
        if (e?.value === value) e.fetchedAt = this.now() - this.ttlMs + this.authRefetchMs;
        return known;
      },
    );
    this.cache.set(key, { value, fetchedAt: now });
    return value;
  }

  /**
   * A server refused our password (MySQL 1045): it may have been rotated. Every secret read longer
   * than authRefetchMs ago is read again at its next use, so a rotation is picked up within a round
   * or two while a wrong password costs at most one read per secret every authRefetchMs.
   * @returns how many secrets will be read again.
   */
  expireAfterAuthFailure(): number {
    const now = this.now();
    let n = 0;
    for (const e of this.cache.values()) {
      if (now - e.fetchedAt >= this.authRefetchMs && now - e.fetchedAt < this.ttlMs) {
        e.fetchedAt = now - this.ttlMs;
        n++;
      }
    }
    return n;
  }

  private async load(ref: SecretRef): Promise<string> {
    if ('env' in ref) {
      const v = this.env[ref.env];
      if (v === undefined)
        throw new SecretNotFoundError(`Secret environment variable ${ref.env} is not set.`);
      return v;
    }
    if ('file' in ref) {
      try {
        return (await readFile(ref.file, 'utf8')).trim();
      } catch (err) {
        throw new SecretNotFoundError(
          `Cannot read secret file ${ref.file}: ${(err as NodeJS.ErrnoException).code}`,
        );
      }
    }
    // Loaded on first use: env and file references (and the functions that never read a secret)
    // do not pay for the Secrets Manager client at import (cold start).
    const sdk = await import('./sdk/secrets-manager.ts');
    this.client ??= new sdk.SecretsManagerClient(boundedRequests());
    let text: string | undefined;
    try {
      const r = await this.client.send(new sdk.GetSecretValueCommand({ SecretId: ref.secretsManager }));
      text = r.SecretString;
    } catch (err) {
      throw new SecretNotFoundError(
        `Cannot read secret ${ref.secretsManager} from Secrets Manager: ${(err as Error).name}. Check the ARN and the role's secretsmanager:GetSecretValue permission.`,
      );
    }
    if (text === undefined)
      throw new SecretNotFoundError(`Secret ${ref.secretsManager} has no SecretString.`);
    if (!ref.key) return text;
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new SecretNotFoundError(
        `Secret ${ref.secretsManager} is not JSON, but key "${ref.key}" was asked for.`,
      );
    }
    const v = obj[ref.key];
    if (typeof v !== 'string')
      throw new SecretNotFoundError(`Secret ${ref.secretsManager} has no string key "${ref.key}".`);
    return v;
  }
}
