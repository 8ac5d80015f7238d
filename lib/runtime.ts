import { DynamoStateStore } from './adapters/dynamodb-state-store.ts';
import type { Login } from './adapters/mysql/connection.ts';
import { type Notifier, SnsNotifier } from './adapters/notifier.ts';
import { SecretResolver } from './adapters/secrets.ts';
import { type FailoverStarter, SfnFailoverStarter } from './adapters/sfn-starter.ts';
import { createVipMover } from './adapters/vip/create-vip-mover.ts';
import { findCluster, loadConfig } from './config/load-config.ts';
import type { ClusterConfig, FailoverConfig } from './config/schema.ts';
import { ConfigError } from './errors.ts';
import { formatLogLine } from './log-context.ts';
import type { StateStore, VipMover } from './ports.ts';

/** Everything a handler needs, built once per container (composition root). */
export interface Runtime {
  config: FailoverConfig;
  store: StateStore;
  secrets: SecretResolver;
  notifier: Notifier;
  starter: FailoverStarter;
  cluster(name: string): ClusterConfig;
  logins(cluster: ClusterConfig): Promise<{ admin: Login; replication: Login }>;
  vipMover(cluster: ClusterConfig): Promise<VipMover | undefined>;
  now(): number;
  log(entry: Record<string, unknown>): void;
}

/**
 * Builds the runtime from the environment: FAILOVER_CONFIG_FILE, STATE_TABLE,
 * STATE_MACHINE_ARN, ALERT_TOPIC_ARN. Endpoints come from the SDK's own
 * AWS_ENDPOINT_URL_<SERVICE> variables, so AWS and the local cloud differ only there.
 */
export function createRuntime(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<Runtime> = {},
): Runtime {
  const config = overrides.config ?? loadConfig(env);
  const table = env.STATE_TABLE;
  if (!table && !overrides.store)
    throw new ConfigError('STATE_TABLE is not set (the DynamoDB state table name).');
  const secrets = overrides.secrets ?? new SecretResolver(env);
  const movers = new Map<string, Promise<VipMover | undefined>>();
  let sfnStarter: SfnFailoverStarter | undefined;
  const log =
    overrides.log ??
    ((entry: Record<string, unknown>) => {
      if (env.FAILOVER_QUIET !== '1') process.stdout.write(`${formatLogLine(entry)}\n`);
    });
  const rt: Runtime = {
    config,
    store: overrides.store ?? new DynamoStateStore(table!),
    secrets,
    notifier:
      overrides.notifier ??
      new SnsNotifier(env.ALERT_TOPIC_ARN || undefined, { log: (l) => log(JSON.parse(l)) }),
    starter:
      overrides.starter ??
      ({
        start: async (name, input) => {
          const arn = env.STATE_MACHINE_ARN;
          if (!arn)
            throw new ConfigError('STATE_MACHINE_ARN is not set: the health check cannot start a failover.');
          // One per container: its client (and connection) is reused by the next start.
          sfnStarter ??= new SfnFailoverStarter(arn);
          return sfnStarter.start(name, input);
        },
      } satisfies FailoverStarter),
    cluster: (name) => findCluster(config, name),
    logins: async (c) => ({
      admin: {
        user: c.credentials.admin.user,
        password: await secrets.resolve(c.credentials.admin.password),
      },
      replication: {
        user: c.credentials.replication.user,
        password: await secrets.resolve(c.credentials.replication.password),
      },
    }),
    vipMover: (c) => {
      let m = movers.get(c.name);
      if (!m) {
        m = createVipMover(c, secrets, log);
        movers.set(c.name, m);
        m.catch(() => movers.delete(c.name));
      }
      return m;
    },
    now: overrides.now ?? (() => Date.now()),
    log,
  };
  return rt;
}

let cached: Runtime | undefined;

/** The container's runtime (built on first use, reused across warm invocations). */
export function getRuntime(): Runtime {
  cached ??= createRuntime();
  return cached;
}

/** For tests and the sandbox, which change the environment between runs. */
export function resetRuntime(rt?: Runtime): void {
  cached = rt;
}
