/**
 * VipMover for AWS across AZs with a route-table "overlay IP": an address outside the VPC CIDR whose
 * /32 route in each listed route table points at the primary's ENI. A move is ReplaceRoute in every
 * table that points elsewhere, confirmed by DescribeRouteTables.
 */
import { DescribeRouteTablesCommand, ReplaceRouteCommand } from '@aws-sdk/client-ec2';
import { VipNotVerifiedError } from '../../errors.ts';
import type { VipMoveOptions, VipMoveResult, VipMover } from '../../ports.ts';
import {
  type AwsVipMoverCommonOptions,
  Ec2CallRunner,
  eniOf,
  nodeOf,
  resolveCommon,
  verifyWithRedrive,
} from './aws-secondary-ip.ts';

export interface AwsRouteTableVipMoverOptions extends AwsVipMoverCommonOptions {
  /** The overlay IP; the route is `address/32` (a CIDR given here is used as is). */
  address: string;
  routeTableIds: string[];
}

/** Moves an overlay IP by repointing its /32 route in every listed route table. */
export class AwsRouteTableVipMover implements VipMover {
  readonly provider = 'aws-route-table';
  readonly address: string;
  readonly #cidr: string;
  readonly #tables: string[];
  readonly #nodes: Record<string, string>;
  readonly #cfg: ReturnType<typeof resolveCommon>;

  constructor(opts: AwsRouteTableVipMoverOptions) {
    this.address = opts.address;
    this.#cidr = opts.address.includes('/') ? opts.address : `${opts.address}/32`;
    this.#tables = [...opts.routeTableIds];
    this.#nodes = { ...opts.nodes };
    this.#cfg = resolveCommon(opts);
  }

  /** The node every table points at; undefined when the tables disagree or point at no known node. */
  async currentHolder(): Promise<string | undefined> {
    const targets = await this.#readTargets(this.#runner(), Date.now() + this.#cfg.verifyTimeoutMs, {
      what: `Failed to read the route targets of VIP ${this.#cidr}`,
    });
    const distinct = new Set(targets.values());
    if (distinct.size !== 1) {
      this.#cfg.log?.({
        level: 'warn',
        msg: 'route tables disagree on the VIP target',
        cidr: this.#cidr,
        targets: Object.fromEntries(targets),
      });
      return undefined;
    }
    return nodeOf(this.#nodes, [...distinct][0]);
  }

  async moveTo(nodeId: string, options: VipMoveOptions): Promise<VipMoveResult> {
    const started = Date.now();
    const target = eniOf(this.#nodes, nodeId, this.provider);
    const runner = this.#runner();
    const what = `Failed to move VIP ${this.#cidr} to ${target}`;
    const result = (alreadyThere: boolean): VipMoveResult => ({
      provider: this.provider,
      address: this.address,
      holder: nodeId,
      alreadyThere,
      apiCalls: runner.apiCalls,
      ms: Date.now() - started,
    });

    const before = await this.#readTargets(runner, options.deadline, { what, target });
    const stale = this.#tables.filter((t) => before.get(t) !== target);
    if (stale.length === 0) {
      this.#cfg.log?.({
        level: 'info',
        msg: 'VIP routes already on target',
        cidr: this.#cidr,
        nodeId,
        eni: target,
      });
      return result(true);
    }

    // Tables one by one: a failure names the table, and tables already switched stay switched (the
    // next attempt skips them).
    const replace = async (tables: string[], from: Map<string, string | undefined>) => {
      for (const routeTableId of tables) {
        await runner.run(
          {
            provider: this.provider,
            what: `${what} in ${routeTableId}`,
            operation: 'ReplaceRoute',
            details: {
              address: this.address,
              cidr: this.#cidr,
              target,
              nodeId,
              routeTableId,
              from: from.get(routeTableId),
            },
          },
          options.deadline,
          (client, abortSignal) =>
            client.send(
              new ReplaceRouteCommand({
                RouteTableId: routeTableId,
                DestinationCidrBlock: this.#cidr,
                NetworkInterfaceId: target,
              }),
              { abortSignal },
            ),
        );
        this.#cfg.log?.({
          level: 'info',
          msg: 'VIP route replaced',
          cidr: this.#cidr,
          routeTableId,
          nodeId,
          eni: target,
        });
      }
    };
    await replace(stale, before);

    const verifyDeadline = Math.min(options.deadline, Date.now() + this.#cfg.verifyTimeoutMs);
    const lagging = (targets: Map<string, string | undefined>) =>
      this.#tables.filter((t) => targets.get(t) !== target);
    let seenAtRedrive = before;
    const check = await verifyWithRedrive({
      read: () => this.#readTargets(runner, verifyDeadline, { what, target }),
      done: (targets) => lagging(targets).length === 0,
      redrive: () => replace(lagging(seenAtRedrive), seenAtRedrive),
      initial: before,
      deadline: verifyDeadline,
      pollMs: this.#cfg.pollMs,
      onRedrive: (seen) => {
        seenAtRedrive = seen;
        this.#cfg.log?.({
          level: 'warn',
          msg: 'VIP routes not visible on target yet: re-issuing ReplaceRoute once',
          cidr: this.#cidr,
          nodeId,
          eni: target,
          lagging: lagging(seen),
        });
      },
    });
    if (check.verified) return result(false);
    const stillLagging = lagging(check.seen);
    const shown = stillLagging.map((t) => `${t} -> ${check.seen.get(t) ?? 'no route'}`).join(', ');
    throw new VipNotVerifiedError(
      `VIP ${this.#cidr} not verified on ${target} (node ${nodeId}) before the deadline: ${shown}${check.lastError ? ` (last read failed: ${check.lastError.message})` : ''}`,
      {
        provider: this.provider,
        address: this.address,
        target,
        nodeId,
        lagging: stillLagging,
        redriven: check.redriven,
        apiCalls: runner.apiCalls,
      },
      check.lastError ? { cause: check.lastError } : undefined,
    );
  }

  #runner(): Ec2CallRunner {
    return new Ec2CallRunner(this.#cfg.client, this.#cfg);
  }

  /** Route table id -> ENI the VIP route points at (absent when the table has no such route). */
  async #readTargets(
    runner: Ec2CallRunner,
    deadline: number,
    ctx: { what: string; target?: string },
  ): Promise<Map<string, string | undefined>> {
    const targets = new Map<string, string | undefined>();
    let nextToken: string | undefined;
    do {
      const token = nextToken;
      const page = await runner.run(
        {
          provider: this.provider,
          what: ctx.what,
          operation: 'DescribeRouteTables',
          details: {
            address: this.address,
            cidr: this.#cidr,
            target: ctx.target,
            routeTableIds: this.#tables,
          },
        },
        deadline,
        (client, abortSignal) =>
          client.send(
            new DescribeRouteTablesCommand({
              RouteTableIds: this.#tables,
              ...(token === undefined ? {} : { NextToken: token }),
            }),
            { abortSignal },
          ),
      );
      for (const table of page.RouteTables ?? []) {
        if (!table.RouteTableId) continue;
        const route = (table.Routes ?? []).find((r) => r.DestinationCidrBlock === this.#cidr);
        targets.set(table.RouteTableId, route?.NetworkInterfaceId);
      }
      nextToken = page.NextToken;
    } while (nextToken);
    return targets;
  }
}
