import { z } from 'zod';

/**
 * Where a password or key comes from. Never the value itself: serverless.yml, the state
 * table and logs only ever see the reference.
 */
export const SecretRefSchema = z.union([
  z.object({ env: z.string().min(1) }).strict(),
  z.object({ file: z.string().min(1) }).strict(),
  z.object({ secretsManager: z.string().min(1), key: z.string().min(1).optional() }).strict(),
]);

export const CredentialSchema = z.object({ user: z.string().min(1), password: SecretRefSchema }).strict();

export const NodeSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only (1-64)'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(3306),
    promotionRule: z.enum(['prefer', 'neutral', 'must_not']).default('neutral'),
    /** EC2 ENI holding the VIP when this node is primary (aws-secondary-ip, aws-route-table). */
    networkInterfaceId: z
      .string()
      .regex(/^eni-[0-9a-f]{8,17}$/, 'an ENI id like eni-0123456789abcdef0')
      .optional(),
    /**
     * Where the prober reaches the node when that differs from host/port, which replicas and
     * the failover steps use (e.g. a per-node proxy in front of the prober's network path).
     */
    probeHost: z.string().min(1).optional(),
    probePort: z.number().int().min(1).max(65535).optional(),
    /**
     * The node's cloud instance: the ECS instance id (aliyun-havip, needed) or the EC2 instance id
     * (i-..., aws-* providers). Also what STONITH stops (failover.stonith), on either cloud.
     */
    instanceId: z.string().min(1).optional(),
  })
  .strict();

const ipv4 = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}$/, 'an IPv4 address');

export const VipSchema = z.discriminatedUnion('provider', [
  z
    .object({
      provider: z.literal('aws-secondary-ip'),
      address: ipv4,
      region: z.string().min(1).optional(),
      /** How long to wait for DescribeNetworkInterfaces to show the move. */
      verifyTimeoutMs: z.number().int().min(100).max(120_000).default(15_000),
    })
    .strict(),
  z
    .object({
      provider: z.literal('aws-route-table'),
      address: ipv4,
      routeTableIds: z
        .array(z.string().regex(/^rtb-[0-9a-f]{8,17}$/, 'a route table id like rtb-0123abcd'))
        .min(1),
      region: z.string().min(1).optional(),
      verifyTimeoutMs: z.number().int().min(100).max(120_000).default(15_000),
    })
    .strict(),
  z
    .object({
      provider: z.literal('aliyun-havip'),
      address: ipv4,
      haVipId: z.string().regex(/^havip-[0-9a-z]+$/, 'a HaVip id like havip-bp1...'),
      regionId: z.string().min(1),
      endpoint: z.string().url().optional(),
      /** ECS endpoint for Cloud Assistant (default https://ecs.<regionId>.aliyuncs.com). */
      ecsEndpoint: z.string().url().optional(),
      /**
       * How the new holder's OS takes the address over. 'cloud-assistant' (default): the mover runs
       * `ip addr add` + `arping -U` on it through ECS RunCommand, because the VPC makes an instance
       * MasterInstanceId only when it announces the address, so without it a dead master's HaVip
       * never gets a new one. 'preconfigured': an agent on the hosts announces by itself.
       */
      guestStep: z.enum(['cloud-assistant', 'preconfigured']).default('cloud-assistant'),
      /** NIC the guest step configures the address on. */
      guestDevice: z
        .string()
        .regex(/^[A-Za-z0-9_.:-]{1,15}$/, 'an interface name like eth0')
        .default('eth0'),
      accessKeyId: SecretRefSchema,
      accessKeySecret: SecretRefSchema,
      verifyTimeoutMs: z.number().int().min(100).max(120_000).default(15_000),
    })
    .strict(),
  z.object({ provider: z.literal('none') }).strict(),
]);

/**
 * A hook Lambda: the functions' role may invoke only `mysql-failover-hook-*` in its own account
 * (serverless.yml), so any other name would fail at failover time with AccessDenied.
 */
const HookNameSchema = z
  .string()
  .regex(
    /^(arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:)?mysql-failover-hook-[A-Za-z0-9_-]+(:[A-Za-z0-9$_-]+)?$/,
    'a function named mysql-failover-hook-<name> (or its ARN): the only names the role may invoke',
  );

export const DetectionSchema = z
  .object({
    /** Time between probe rounds inside one invocation. */
    intervalMs: z.number().int().min(100).max(60_000).default(1000),
    connectTimeoutMs: z.number().int().min(100).max(30_000).default(1000),
    queryTimeoutMs: z.number().int().min(100).max(30_000).default(1000),
    /** Ambiguous evidence (timeouts, stalled positions) must hold this long before failover. */
    confirmWindowMs: z.number().int().min(0).max(600_000).default(2000),
    /** Unambiguous evidence (refused + every replica reports the source down): rounds needed. */
    crashConfirmRounds: z.number().int().min(1).max(20).default(2),
    /** Pause before the quick re-probe that confirms a crash. */
    crashReprobeMs: z.number().int().min(0).max(10_000).default(150),
    replicaLagAlertSeconds: z.number().min(0).default(5),
    longTransactionAlertSeconds: z.number().min(0).default(60),
    /**
     * The state item is rewritten at least this often even when nothing changes. It is written at
     * once on every change of the analysis, the primary or a node's reachability (so the dead
     * primary's last-seen position is fresh); the heartbeat only refreshes counters and lag for
     * `status`, and its writes scale with clusters.
     */
    stateHeartbeatMs: z.number().int().min(1000).default(300_000),
  })
  .strict();

/**
 * Limits that keep every wait inside its state machine task, so a long wait fails in its Catch
 * instead of ending the execution (test/failover/state-machine-contract.test.ts checks them against
 * the definitions): CatchUpCandidate (600 s) waits for the candidate's relay log, then for at most
 * one more replica's relay log and the candidate's copy of it; WaitCandidateCaughtUp (660 s) waits
 * once for the switchover's catch-up.
 */
export const MAX_RELAY_LOG_TIMEOUT_SECONDS = 180;
export const MAX_SWITCHOVER_CATCH_UP_SECONDS = 600;

export const FailoverPolicySchema = z
  .object({
    mode: z.enum(['auto', 'elect', 'fail']).default('auto'),
    /**
     * A candidate further behind than this is not promoted: behind the freshest survivor, and
     * behind the dead primary as the health check last saw it (position and time). An operator
     * can force a failover past it with `ignoreLag: true` in the execution input.
     */
    maxLagSeconds: z.number().min(0).default(3600),
    relayLogTimeoutSeconds: z
      .number()
      .min(1)
      .max(
        MAX_RELAY_LOG_TIMEOUT_SECONDS,
        `at most ${MAX_RELAY_LOG_TIMEOUT_SECONDS} s: CatchUpCandidate (600 s in infra/state-machine.yml) waits up to 3 times this`,
      )
      .default(60),
    blockPeriodSeconds: z.number().int().min(0).default(3600),
    /**
     * Enable semi-sync (AFTER_SYNC) on the new primary, when a replica will attach to acknowledge
     * (never on a primary left alone: every commit would wait semiSyncTimeoutMs); rejoin turns it
     * on again once a replica replicates.
     */
    semiSync: z.boolean().default(true),
    semiSyncTimeoutMs: z.number().int().min(100).default(10_000),
    /** Errant transactions on any surviving replica abort the failover instead of skipping that replica. */
    pedantic: z.boolean().default(false),
    /**
     * Take the VIP from an old primary that the fence step could not reach BEFORE the candidate
     * is promoted. 'unless-refused' (default): only when it timed out (hung or cut off, it may
     * resume writable); a refused one crashed and costs no provider call on the hot path.
     */
    vipFenceWhenUnreachable: z.enum(['always', 'unless-refused']).default('unless-refused'),
    /**
     * STONITH: stop the old primary's instance through the cloud API (EC2 StopInstances Force, or
     * ECS StopInstance ForceStop, on the vip provider's cloud) when it did not answer the SQL fence,
     * before the candidate is promoted. Off by default. When enabled, a stop that fails or is not
     * confirmed within waitStoppedMs fails the failover (StonithFailedError): no promotion.
     */
    stonith: z
      .object({
        enabled: z.boolean().default(false),
        /** Wait until the API shows the instance stopped (false: accepted/stopping is enough). */
        waitStopped: z.boolean().default(true),
        /** Budget for the stop and its confirmation; the FenceOldPrimary task has 60 s in all. */
        waitStoppedMs: z.number().int().min(100).max(50_000).default(40_000),
      })
      .strict()
      .default({ enabled: false, waitStopped: true, waitStoppedMs: 40_000 }),
    /** Pre/post-failover hook Lambdas (mysqlfailover's --exec-before/--exec-after). */
    hooks: z
      .object({
        pre: HookNameSchema.optional(),
        post: HookNameSchema.optional(),
        /** 'fail': a failed pre hook aborts before anything changes. Default 'warn'. */
        preFailurePolicy: z.enum(['fail', 'warn']).default('warn'),
        /** 'fail': a failed post hook marks the failover failed (the promotion stays). */
        postFailurePolicy: z.enum(['fail', 'warn']).default('warn'),
      })
      .strict()
      .optional(),
  })
  .strict();

export const ClusterSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,40}$/, 'letters, digits, _ - only (1-40)'),
    /** The primary when the cluster is first seen; afterwards the state table is the truth. */
    primary: z.string().min(1),
    nodes: z.array(NodeSchema).min(2),
    credentials: z.object({ admin: CredentialSchema, replication: CredentialSchema }).strict(),
    vip: VipSchema,
    /** What clients connect to (shown by status). */
    clientEndpoint: z
      .object({ host: z.string().min(1), port: z.number().int().min(1).max(65535) })
      .strict()
      .optional(),
    detection: DetectionSchema.default(DetectionSchema.parse({})),
    failover: FailoverPolicySchema.default(FailoverPolicySchema.parse({})),
  })
  .strict()
  .superRefine((c, ctx) => {
    const ids = new Set<string>();
    c.nodes.forEach((n, i) => {
      if (ids.has(n.id))
        ctx.addIssue({ code: 'custom', path: ['nodes', i, 'id'], message: `duplicate node id "${n.id}"` });
      ids.add(n.id);
      const need =
        c.vip.provider === 'aliyun-havip'
          ? 'instanceId'
          : c.vip.provider === 'none'
            ? null
            : 'networkInterfaceId';
      if (need && n[need] === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['nodes', i, need],
          message: `required by vip.provider "${c.vip.provider}"`,
        });
      if (c.failover.stonith.enabled && c.vip.provider !== 'none') {
        const aws = c.vip.provider !== 'aliyun-havip';
        if (n.instanceId === undefined || (aws && !/^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/.test(n.instanceId)))
          ctx.addIssue({
            code: 'custom',
            path: ['nodes', i, 'instanceId'],
            message: aws
              ? 'an EC2 instance id like i-0123456789abcdef0 is required by failover.stonith'
              : 'required by failover.stonith',
          });
      }
    });
    if (c.failover.stonith.enabled && c.vip.provider === 'none')
      ctx.addIssue({
        code: 'custom',
        path: ['failover', 'stonith', 'enabled'],
        message:
          'STONITH stops instances through the vip provider\'s cloud API: vip.provider must not be "none"',
      });
    if (!ids.has(c.primary))
      ctx.addIssue({
        code: 'custom',
        path: ['primary'],
        message: `"${c.primary}" is not one of the nodes' ids`,
      });
  });

export const ConfigSchema = z
  .object({
    version: z.literal(1),
    clusters: z.array(ClusterSchema).min(1),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const names = new Set<string>();
    cfg.clusters.forEach((c, i) => {
      if (names.has(c.name))
        ctx.addIssue({
          code: 'custom',
          path: ['clusters', i, 'name'],
          message: `duplicate cluster "${c.name}"`,
        });
      names.add(c.name);
    });
  });

export type SecretRef = z.infer<typeof SecretRefSchema>;
export type NodeConfig = z.infer<typeof NodeSchema>;
export type VipConfig = z.infer<typeof VipSchema>;
export type DetectionConfig = z.infer<typeof DetectionSchema>;
export type FailoverPolicyConfig = z.infer<typeof FailoverPolicySchema>;
export type ClusterConfig = z.infer<typeof ClusterSchema>;
export type FailoverConfig = z.infer<typeof ConfigSchema>;
