/**
 * In-memory state of the emulated VPC: subnets, network interfaces with their secondary private
 * addresses, and route tables. Mutations through the API take effect after `propagationMs`, as EC2
 * remaps addresses asynchronously; until then Describe* show the old state.
 *
 *   t0 Assign(eni-b, 10.0.1.50)   intent: eni-b   visible: eni-a   data path -> a
 *   t0 + propagationMs            intent: eni-b   visible: eni-b   data path -> b, onChange fires
 */

export interface SubnetSpec {
  subnetId: string;
  vpcId: string;
  cidrBlock: string;
  availabilityZone: string;
}

export interface NetworkInterfaceSpec {
  networkInterfaceId: string;
  subnetId: string;
  privateIpAddress: string;
  instanceId?: string;
  description?: string;
  /** Secondary addresses the interface already holds (visible at once). */
  secondaryPrivateIpAddresses?: string[];
  /** Resource tags (default mysql-failover=managed, the tag the role's AssignPrivateIpAddresses requires). */
  tags?: Record<string, string>;
}

export interface RouteTableSpec {
  routeTableId: string;
  vpcId: string;
  routes: { destinationCidrBlock: string; networkInterfaceId: string }[];
}

export interface Subnet extends SubnetSpec {
  readonly network: number;
  readonly mask: number;
}

export interface NetworkInterface extends NetworkInterfaceSpec {
  tags: Record<string, string>;
  vpcId: string;
  availabilityZone: string;
  /** Secondary private IPv4 addresses as Describe shows them. */
  secondary: string[];
}

export interface RouteTable {
  routeTableId: string;
  vpcId: string;
  /** destination CIDR -> ENI, as Describe shows them. */
  routes: Map<string, string>;
}

export type Ec2ChangeEvent =
  | { kind: 'address'; address: string; holder: string | undefined; previous: string | undefined }
  | {
      kind: 'route';
      routeTableId: string;
      destinationCidrBlock: string;
      target: string;
      previous: string | undefined;
    }
  | { kind: 'instance'; instanceId: string; state: InstanceStateName; previous: InstanceStateName };

/** EC2 instance state names and the codes DescribeInstances / StopInstances report with them. */
export const INSTANCE_STATE_CODES = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
} as const;
export type InstanceStateName = keyof typeof INSTANCE_STATE_CODES;

/** An instance as Describe shows it; instances are the ones the ENIs are attached to. */
export interface Ec2Instance {
  instanceId: string;
  state: InstanceStateName;
  /** e.g. "User initiated (2026-01-01 00:00:00 GMT)" once stopped through the API. */
  stateTransitionReason: string;
  /** Resource tags; seeded with mysql-failover=managed, the tag the functions' role requires. */
  tags: Record<string, string>;
}

/** What the caller's IAM policy is asked about: an action on one resource. */
export interface Ec2AuthRequest {
  action: 'StopInstances' | 'ReplaceRoute' | 'AssignPrivateIpAddresses';
  instance?: Ec2Instance;
  networkInterface?: NetworkInterface;
  routeTableId?: string;
}

/**
 * The deployed role's policy for the actions that have one (serverless.yml, lib/config/deploy-settings.ts):
 * StopInstances only on instances and AssignPrivateIpAddresses only on network interfaces tagged
 * mysql-failover=managed; ReplaceRoute on the configured tables.
 */
export function deployedPolicy(req: Ec2AuthRequest): boolean {
  if (req.action === 'StopInstances') return req.instance?.tags['mysql-failover'] === 'managed';
  if (req.action === 'AssignPrivateIpAddresses')
    return req.networkInterface?.tags['mysql-failover'] === 'managed';
  return true;
}

export type Ec2ChangeListener = (event: Ec2ChangeEvent) => void;

const ENI_ID = /^eni-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
const RTB_ID = /^rtb-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
const INSTANCE_ID = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

/** True when `id` has the shape EC2 accepts for an instance id (i- + 8 or 17 hex digits). */
export function isInstanceId(id: string): boolean {
  return INSTANCE_ID.test(id);
}

/** True when `id` has the shape EC2 accepts for a network interface id (eni- + 8 or 17 hex digits). */
export function isEniId(id: string): boolean {
  return ENI_ID.test(id);
}

/** True when `id` has the shape EC2 accepts for a route table id (rtb- + 8 or 17 hex digits). */
export function isRouteTableId(id: string): boolean {
  return RTB_ID.test(id);
}

/** Parses dotted IPv4 to an unsigned 32-bit number, or undefined when malformed. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

/** Parses `a.b.c.d/len`, or undefined when malformed. */
export function parseCidr(text: string): { network: number; mask: number; length: number } | undefined {
  const [ip, len, extra] = text.split('/');
  if (ip === undefined || len === undefined || extra !== undefined || !/^\d{1,2}$/.test(len))
    return undefined;
  const addr = parseIpv4(ip);
  const length = Number(len);
  if (addr === undefined || length > 32) return undefined;
  const mask = length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
  return { network: (addr & mask) >>> 0, mask, length };
}

/** The emulated VPC. Seed it with addSubnet / addNetworkInterface / addRouteTable. */
export class Ec2Model {
  /** Delay before an API mutation becomes visible (Describe*, holderOf, the data path). */
  propagationMs: number;

  readonly #subnets = new Map<string, Subnet>();
  readonly #enis = new Map<string, NetworkInterface>();
  readonly #tables = new Map<string, RouteTable>();
  /** address -> ENI as the last accepted API call left it (validation runs against this). */
  readonly #intentHolder = new Map<string, string>();
  /** `${rtb}|${cidr}` -> ENI as the last accepted ReplaceRoute left it. */
  readonly #intentRoute = new Map<string, string>();
  readonly #listeners = new Set<Ec2ChangeListener>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #instances = new Map<string, Ec2Instance>();
  /** How long a StopInstances without Force stays 'stopping' (the guest shuts down). */
  stopMs: number;
  /** How long a forced stop stays 'stopping' (no guest shutdown, no file system flush). */
  forceStopMs: number;
  /**
   * Powers the instance's workload off (the local cloud kills the node's mariadbd). Awaited
   * before Describe shows 'stopped': a stopped instance runs nothing.
   */
  powerOff: ((instanceId: string) => Promise<void> | void) | undefined;
  /** The caller's IAM policy: false answers UnauthorizedOperation, for a DryRun as for a real call. */
  authorize: (req: Ec2AuthRequest) => boolean = deployedPolicy;

  constructor(opts: { propagationMs?: number; stopMs?: number; forceStopMs?: number } = {}) {
    this.propagationMs = opts.propagationMs ?? 50;
    this.stopMs = opts.stopMs ?? 500;
    this.forceStopMs = opts.forceStopMs ?? 100;
  }

  /** The instance an ENI is attached to (created running when the ENI is added), or undefined. */
  instance(id: string): Ec2Instance | undefined {
    return this.#instances.get(id);
  }

  instances(): IterableIterator<Ec2Instance> {
    return this.#instances.values();
  }

  /** Replaces an instance's tags (tests: an instance the role may not stop). */
  setInstanceTags(id: string, tags: Record<string, string>): void {
    const inst = this.#instances.get(id);
    if (!inst) throw new Error(`Unknown instance ${id}`);
    inst.tags = { ...tags };
  }

  /** Replaces a network interface's tags (tests: an ENI the role may not move the VIP to). */
  setNetworkInterfaceTags(id: string, tags: Record<string, string>): void {
    const eni = this.#enis.get(id);
    if (!eni) throw new Error(`Unknown network interface ${id}`);
    eni.tags = { ...tags };
  }

  /** Sets an instance's state directly (tests: a terminated or pending instance). */
  setInstanceState(id: string, state: InstanceStateName): void {
    const inst = this.#instances.get(id);
    if (!inst) throw new Error(`Unknown instance ${id}`);
    const previous = inst.state;
    inst.state = state;
    if (previous !== state) this.#emit({ kind: 'instance', instanceId: id, state, previous });
  }

  /**
   * Accepts a stop: running -> stopping now, -> stopped after stopMs (forceStopMs with Force),
   * once powerOff resolved. A forced stop of an instance already stopping speeds it up, as EC2's
   * "force stop" of a stuck instance does. Returns the states StopInstances reports.
   */
  stopInstance(id: string, force: boolean): { previous: InstanceStateName; current: InstanceStateName } {
    const inst = this.#instances.get(id);
    if (!inst) throw new Error(`Unknown instance ${id}`);
    const previous = inst.state;
    if (previous === 'stopped') return { previous, current: previous };
    if (previous === 'stopping' && !force) return { previous, current: previous };
    if (previous === 'running') {
      inst.state = 'stopping';
      inst.stateTransitionReason = `User initiated (${new Date().toISOString().slice(0, 19).replace('T', ' ')} GMT)`;
      this.#emit({ kind: 'instance', instanceId: id, state: 'stopping', previous });
    }
    const token = Symbol('stop');
    this.#stopTokens.set(id, token);
    const t = setTimeout(
      () => {
        this.#timers.delete(t);
        void this.#finishStop(id, token);
      },
      force ? this.forceStopMs : this.stopMs,
    );
    this.#timers.add(t);
    return { previous, current: 'stopping' };
  }

  readonly #stopTokens = new Map<string, symbol>();

  async #finishStop(id: string, token: symbol): Promise<void> {
    if (this.#stopTokens.get(id) !== token) return;
    const inst = this.#instances.get(id);
    if (inst?.state !== 'stopping') return;
    try {
      await this.powerOff?.(id);
    } catch {
      // The hypervisor stops the instance whatever its guest does.
    }
    if (this.#stopTokens.get(id) !== token || inst.state !== 'stopping') return;
    this.#stopTokens.delete(id);
    inst.state = 'stopped';
    this.#emit({ kind: 'instance', instanceId: id, state: 'stopped', previous: 'stopping' });
  }

  addSubnet(spec: SubnetSpec): void {
    const cidr = parseCidr(spec.cidrBlock);
    if (!cidr) throw new Error(`Invalid subnet CIDR ${spec.cidrBlock}`);
    this.#subnets.set(spec.subnetId, { ...spec, network: cidr.network, mask: cidr.mask });
  }

  addNetworkInterface(spec: NetworkInterfaceSpec): void {
    // Fail at seeding time: EC2 would answer Malformed for such an id on every call.
    if (!isEniId(spec.networkInterfaceId)) throw new Error(`Malformed ENI id ${spec.networkInterfaceId}`);
    const subnet = this.#subnets.get(spec.subnetId);
    if (!subnet) throw new Error(`Unknown subnet ${spec.subnetId}`);
    if (!this.subnetContains(subnet, spec.privateIpAddress)) {
      throw new Error(`${spec.privateIpAddress} is outside ${subnet.cidrBlock}`);
    }
    const secondary = [...(spec.secondaryPrivateIpAddresses ?? [])];
    for (const ip of secondary) {
      if (!this.subnetContains(subnet, ip)) throw new Error(`${ip} is outside ${subnet.cidrBlock}`);
      this.#intentHolder.set(ip, spec.networkInterfaceId);
    }
    this.#enis.set(spec.networkInterfaceId, {
      ...spec,
      tags: { ...(spec.tags ?? { 'mysql-failover': 'managed' }) },
      vpcId: subnet.vpcId,
      availabilityZone: subnet.availabilityZone,
      secondary,
    });
    if (spec.instanceId !== undefined && !this.#instances.has(spec.instanceId)) {
      if (!isInstanceId(spec.instanceId)) throw new Error(`Malformed instance id ${spec.instanceId}`);
      this.#instances.set(spec.instanceId, {
        instanceId: spec.instanceId,
        state: 'running',
        stateTransitionReason: '',
        tags: { 'mysql-failover': 'managed' },
      });
    }
  }

  addRouteTable(spec: RouteTableSpec): void {
    if (!isRouteTableId(spec.routeTableId)) throw new Error(`Malformed route table id ${spec.routeTableId}`);
    const routes = new Map<string, string>();
    for (const r of spec.routes) {
      routes.set(r.destinationCidrBlock, r.networkInterfaceId);
      this.#intentRoute.set(`${spec.routeTableId}|${r.destinationCidrBlock}`, r.networkInterfaceId);
    }
    this.#tables.set(spec.routeTableId, { routeTableId: spec.routeTableId, vpcId: spec.vpcId, routes });
  }

  /** ENI that has `ip` as a secondary private address, as the provider shows it now. */
  holderOf(ip: string): string | undefined {
    for (const eni of this.#enis.values()) if (eni.secondary.includes(ip)) return eni.networkInterfaceId;
    return undefined;
  }

  /** ENI the route for `cidr` in `routeTableId` points at, as the provider shows it now. */
  routeTargetOf(routeTableId: string, cidr: string): string | undefined {
    return this.#tables.get(routeTableId)?.routes.get(cidr);
  }

  /** Subscribes to visible changes of address holders and route targets; returns the unsubscribe. */
  onChange(listener: Ec2ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  subnet(id: string): Subnet | undefined {
    return this.#subnets.get(id);
  }

  networkInterface(id: string): NetworkInterface | undefined {
    return this.#enis.get(id);
  }

  networkInterfaces(): IterableIterator<NetworkInterface> {
    return this.#enis.values();
  }

  routeTable(id: string): RouteTable | undefined {
    return this.#tables.get(id);
  }

  routeTables(): IterableIterator<RouteTable> {
    return this.#tables.values();
  }

  subnetContains(subnet: Subnet, ip: string): boolean {
    const n = parseIpv4(ip);
    return n !== undefined && (n & subnet.mask) >>> 0 === subnet.network;
  }

  /** Who holds `ip` once pending changes land: a secondary (by intent) or some ENI's primary. */
  intendedHolder(ip: string): { eni: string; primary: boolean } | undefined {
    for (const eni of this.#enis.values()) {
      if (eni.privateIpAddress === ip) return { eni: eni.networkInterfaceId, primary: true };
    }
    const eni = this.#intentHolder.get(ip);
    return eni === undefined ? undefined : { eni, primary: false };
  }

  intendedRouteTarget(routeTableId: string, cidr: string): string | undefined {
    return this.#intentRoute.get(`${routeTableId}|${cidr}`);
  }

  /** Accepts an assignment (or a reassignment); it becomes visible after propagationMs. */
  assign(eniId: string, ip: string): void {
    this.#intentHolder.set(ip, eniId);
    this.#later(() => {
      if (this.#intentHolder.get(ip) !== eniId) return;
      const previous = this.holderOf(ip);
      if (previous === eniId) return;
      if (previous !== undefined) this.#dropSecondary(previous, ip);
      this.#enis.get(eniId)?.secondary.push(ip);
      this.#emit({ kind: 'address', address: ip, holder: eniId, previous });
    });
  }

  /** Accepts an unassignment; it becomes visible after propagationMs. */
  unassign(eniId: string, ip: string): void {
    if (this.#intentHolder.get(ip) === eniId) this.#intentHolder.delete(ip);
    this.#later(() => {
      // Re-assigned to the same interface meanwhile: the later assignment wins.
      if (this.#intentHolder.get(ip) === eniId) return;
      if (!this.#dropSecondary(eniId, ip)) return;
      this.#emit({ kind: 'address', address: ip, holder: undefined, previous: eniId });
    });
  }

  replaceRoute(routeTableId: string, cidr: string, eniId: string): void {
    const key = `${routeTableId}|${cidr}`;
    this.#intentRoute.set(key, eniId);
    this.#later(() => {
      const table = this.#tables.get(routeTableId);
      if (!table || this.#intentRoute.get(key) !== eniId) return;
      const previous = table.routes.get(cidr);
      if (previous === eniId) return;
      table.routes.set(cidr, eniId);
      this.#emit({ kind: 'route', routeTableId, destinationCidrBlock: cidr, target: eniId, previous });
    });
  }

  /** Cancels pending propagation timers (the emulator calls it on close). */
  dispose(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#listeners.clear();
    this.#stopTokens.clear();
    this.powerOff = undefined;
  }

  #dropSecondary(eniId: string, ip: string): boolean {
    const eni = this.#enis.get(eniId);
    const i = eni ? eni.secondary.indexOf(ip) : -1;
    if (!eni || i < 0) return false;
    eni.secondary.splice(i, 1);
    return true;
  }

  #later(apply: () => void): void {
    if (this.propagationMs <= 0) {
      apply();
      return;
    }
    const t = setTimeout(() => {
      this.#timers.delete(t);
      apply();
    }, this.propagationMs);
    this.#timers.add(t);
  }

  #emit(event: Ec2ChangeEvent): void {
    for (const l of [...this.#listeners]) {
      try {
        l(event);
      } catch {
        // A listener's failure must not stop the others or corrupt the model.
      }
    }
  }
}
