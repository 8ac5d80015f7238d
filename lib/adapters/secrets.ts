import { readFile } from 'node:fs/promises';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SecretRef } from '../config/schema.ts';
import { SecretNotFoundError } from '../errors.ts';

/** Resolves secret references (env, file, Secrets Manager), caching per container. */
export class SecretResolver {
  private readonly cache = new Map<string, Promise<string>>();
  private client: SecretsManagerClient | undefined;

  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    client?: SecretsManagerClient,
  ) {
    this.client = client;
  }

  /** Every value resolved so far, so callers can redact them from any text. */
  knownSecrets(): Promise<string[]> {
    return Promise.all([...this.cache.values()].map((p) => p.catch(() => '')));
  }

  resolve(ref: SecretRef): Promise<string> {
    const key = JSON.stringify(ref);
    let p = this.cache.get(key);
    if (!p) {
      p = this.load(ref);
      this.cache.set(key, p);
      p.catch(() => this.cache.delete(key));
    }
    return p;
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
    this.client ??= new SecretsManagerClient({});
    let text: string | undefined;
    try {
      const r = await this.client.send(new GetSecretValueCommand({ SecretId: ref.secretsManager }));
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
