/**
 * In-memory model of the Alibaba Cloud resources behind an HaVip: vSwitches, ECS instances
 * and HaVips, with the rules of the VPC API reference (2016-04-28):
 *
 * - AssociateHaVip: the HaVip and the instance must be in the same vSwitch; the instance must be
 *   Running or Stopped; the HaVip must be Available or InUse; asynchronous (Associating -> InUse);
 *   repeated calls within a short period are refused.
 * - UnassociateHaVip: the HaVip must be InUse; Force=false cannot detach the MASTER instance
 *   (Forbidden.UnassociateMaster); asynchronous (Unassociating -> InUse / Available).
 * - MasterInstanceId is whoever last announced the address (gratuitous ARP from the guest, as
 *   keepalived does), provided it is associated. Association alone never makes a master.
 * - Limits: an HaVip is associated with at most 2 ECS instances ("You can associate an HaVip with at
 *   most two ECS instances", AssociateHaVip, VPC API reference, alibabacloud.com/help/en/vpc/api-associatehavip;
 *   newer translations say 10, so it is an option); an instance holds at most 5 HaVips
 *   (ALIYUN::VPC::HaVipAssociation, ROS reference).
 */

export type InstanceStatus = 'Pending' | 'Starting' | 'Running' | 'Stopping' | 'Stopped';
export type HaVipStatus = 'Creating' | 'Available' | 'InUse' | 'Associating' | 'Unassociating' | 'Deleting';

export interface VSwitch {
  vSwitchId: string;
  vpcId: string;
  zoneId: string;
  cidrBlock: string;
}

export interface EcsInstance {
  instanceId: string;
  status: InstanceStatus;
  vSwitchId: string;
  privateIpAddress: string;
  /** Addresses the guest OS has configured on its NIC (ip addr add). */
  configuredAddresses: Set<string>;
}

export interface HaVip {
  haVipId: string;
  ipAddress: string;
  vSwitchId: string;
  vpcId: string;
  status: HaVipStatus;
  associatedInstances: string[];
  associatedInstanceType: 'EcsInstance' | 'NetworkInterface' | '';
  /** '' when nobody has announced the address since the last change. */
  masterInstanceId: string;
  createTime: string;
  description: string;
  /** Epoch ms of the last accepted Associate/Unassociate, for the short-period refusal. */
  lastOperationAt: number;
}

/** An error as the Alibaba API would answer it: HTTP status, Code, Message. */
export class AliyunApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AliyunApiError';
  }
}

export type ModelEvent =
  | { kind: 'status'; haVipId: string; status: HaVipStatus }
  | { kind: 'associated' | 'unassociated'; haVipId: string; instanceId: string }
  | { kind: 'master'; haVipId: string; masterInstanceId: string | undefined }
  | { kind: 'instance'; instanceId: string; status: InstanceStatus }
  | { kind: 'announce'; instanceId: string; ip: string };

export interface AliyunModelOptions {
  regionId?: string;
  /** How long Associating / Unassociating last. */
  transitionMs?: number;
  /** Associate/Unassociate on the same HaVip within this period is refused (OperationConflict). */
  minCallIntervalMs?: number;
  /** ECS instances one HaVip can be associated with (2 per the English API reference). */
  maxInstancesPerHaVip?: number;
  /** HaVips one ECS instance can hold. */
  maxHaVipsPerInstance?: number;
  now?: () => number;
}

/** The shared state both emulated endpoints (VPC and ECS Cloud Assistant) act on. */
export class AliyunModel {
  readonly regionId: string;
  readonly transitionMs: number;
  readonly minCallIntervalMs: number;
  readonly maxInstancesPerHaVip: number;
  readonly maxHaVipsPerInstance: number;
  readonly vSwitches = new Map<string, VSwitch>();
  readonly instances = new Map<string, EcsInstance>();
  readonly haVips = new Map<string, HaVip>();
  private readonly listeners = new Set<(event: ModelEvent) => void>();
  /**
   * Powers an instance's workload off (the local cloud kills the node's mariadbd). StopInstance
   * awaits it before the instance shows Stopped: a stopped instance runs nothing.
   */
  powerOff: ((instanceId: string) => Promise<void> | void) | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly now: () => number;

  constructor(opts: AliyunModelOptions = {}) {
    this.regionId = opts.regionId ?? 'cn-hangzhou';
    this.transitionMs = opts.transitionMs ?? 200;
    this.minCallIntervalMs = opts.minCallIntervalMs ?? 0;
    this.maxInstancesPerHaVip = opts.maxInstancesPerHaVip ?? 2;
    this.maxHaVipsPerInstance = opts.maxHaVipsPerInstance ?? 5;
    this.now = opts.now ?? Date.now;
  }

  addVSwitch(v: { vSwitchId: string; vpcId?: string; zoneId?: string; cidrBlock?: string }): VSwitch {
    const vs: VSwitch = {
      vSwitchId: v.vSwitchId,
      vpcId: v.vpcId ?? 'vpc-emulated0001',
      zoneId: v.zoneId ?? `${this.regionId}-a`,
      cidrBlock: v.cidrBlock ?? '10.0.1.0/24',
    };
    this.vSwitches.set(vs.vSwitchId, vs);
    return vs;
  }

  addInstance(i: {
    instanceId: string;
    vSwitchId: string;
    privateIpAddress: string;
    status?: InstanceStatus;
  }): EcsInstance {
    if (!this.vSwitches.has(i.vSwitchId)) throw new Error(`unknown vSwitch ${i.vSwitchId}`);
    const inst: EcsInstance = {
      instanceId: i.instanceId,
      vSwitchId: i.vSwitchId,
      privateIpAddress: i.privateIpAddress,
      status: i.status ?? 'Running',
      configuredAddresses: new Set(),
    };
    this.instances.set(inst.instanceId, inst);
    return inst;
  }

  /**
   * Adds an HaVip, optionally already associated with instances and with a master (the state a
   * keepalived pair leaves behind), skipping the API's asynchronous path.
   */
  addHaVip(h: {
    haVipId: string;
    vSwitchId: string;
    ipAddress: string;
    associatedInstances?: string[];
    masterInstanceId?: string;
  }): HaVip {
    const vs = this.vSwitches.get(h.vSwitchId);
    if (!vs) throw new Error(`unknown vSwitch ${h.vSwitchId}`);
    const associated = [...(h.associatedInstances ?? [])];
    for (const id of associated) {
      const inst = this.instances.get(id);
      if (!inst || inst.vSwitchId !== h.vSwitchId)
        throw new Error(`instance ${id} not in vSwitch ${h.vSwitchId}`);
    }
    if (h.masterInstanceId && !associated.includes(h.masterInstanceId)) {
      throw new Error(`master ${h.masterInstanceId} is not associated`);
    }
    const hv: HaVip = {
      haVipId: h.haVipId,
      ipAddress: h.ipAddress,
      vSwitchId: h.vSwitchId,
      vpcId: vs.vpcId,
      status: associated.length > 0 ? 'InUse' : 'Available',
      associatedInstances: associated,
      associatedInstanceType: associated.length > 0 ? 'EcsInstance' : '',
      masterInstanceId: h.masterInstanceId ?? '',
      createTime: new Date(this.now()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      description: '',
      lastOperationAt: 0,
    };
    if (h.masterInstanceId) this.instances.get(h.masterInstanceId)?.configuredAddresses.add(h.ipAddress);
    this.haVips.set(hv.haVipId, hv);
    return hv;
  }

  /** Changes an instance's power state (a crash is Running -> Stopped as far as the API shows). */
  setInstanceStatus(instanceId: string, status: InstanceStatus): void {
    const inst = this.requireInstanceForTest(instanceId);
    inst.status = status;
    // A stopped guest loses its runtime network configuration; MasterInstanceId does not move
    // by itself, which is why Force exists for a dead master.
    if (status === 'Stopped') inst.configuredAddresses.clear();
    this.emit({ kind: 'instance', instanceId, status });
  }

  /** The instance that the VPC fabric delivers the HaVip's traffic to, or undefined. */
  masterOf(haVipId: string): string | undefined {
    const hv = this.haVips.get(haVipId);
    return hv?.masterInstanceId ? hv.masterInstanceId : undefined;
  }

  /** Subscribes to every change; returns the unsubscribe function. */
  onChange(listener: (event: ModelEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  // ---- guest side (what Cloud Assistant scripts do on an instance) ----

  /** `ip addr add <ip>` on the instance. */
  configureAddress(instanceId: string, ip: string): void {
    this.requireInstanceForTest(instanceId).configuredAddresses.add(ip);
  }

  /** `ip addr del <ip>` on the instance. */
  unconfigureAddress(instanceId: string, ip: string): void {
    this.requireInstanceForTest(instanceId).configuredAddresses.delete(ip);
  }

  /**
   * A gratuitous ARP for `ip` from the instance. The fabric makes the instance the HaVip's master
   * when it is associated and the HaVip is InUse; otherwise the announcement changes nothing.
   * Returns whether some HaVip's master changed hands or was confirmed.
   */
  announce(instanceId: string, ip: string): boolean {
    const inst = this.requireInstanceForTest(instanceId);
    if (inst.status !== 'Running') return false;
    this.emit({ kind: 'announce', instanceId, ip });
    let took = false;
    for (const hv of this.haVips.values()) {
      if (hv.ipAddress !== ip || !hv.associatedInstances.includes(instanceId)) continue;
      if (hv.status !== 'InUse') continue;
      took = true;
      if (hv.masterInstanceId !== instanceId) {
        hv.masterInstanceId = instanceId;
        this.emit({ kind: 'master', haVipId: hv.haVipId, masterInstanceId: instanceId });
      }
    }
    return took;
  }

  // ---- API side ----

  /** AssociateHaVip: validates synchronously, completes after transitionMs. */
  associate(haVipId: string, instanceId: string, instanceType = 'EcsInstance'): void {
    const hv = this.requireHaVip(haVipId);
    if (instanceType !== 'EcsInstance') {
      throw new AliyunApiError(
        400,
        'InvalidInstanceType.ValueNotSupported',
        'The specified InstanceType is not supported by the emulator.',
      );
    }
    const inst = this.requireInstance(instanceId);
    this.refuseRapidRepeat(hv);
    if (hv.status !== 'Available' && hv.status !== 'InUse') {
      throw new AliyunApiError(
        400,
        'IncorrectHaVipStatus',
        "HaVip can be operated by this action only when it's status is Available or InUse.",
      );
    }
    if (inst.status !== 'Running' && inst.status !== 'Stopped') {
      throw new AliyunApiError(
        400,
        'IncorrectInstanceStatus',
        "ECS instance can be operated by this action only when it's status is Running or Stopped.",
      );
    }
    if (inst.vSwitchId !== hv.vSwitchId) {
      throw new AliyunApiError(
        400,
        'InvalidVSwitchId.Mismatch',
        'The specified HaVip and ECS instance are not in the same vSwitch.',
      );
    }
    if (hv.associatedInstances.includes(instanceId)) {
      throw new AliyunApiError(
        400,
        'ResourceAlreadyAssociated',
        'The HaVip and ECS instance are already associated.',
      );
    }
    if (hv.associatedInstances.length >= this.maxInstancesPerHaVip) {
      throw new AliyunApiError(
        400,
        'CountLimitExceeded.HaVipOnECSInstance',
        'The amount of Instance associated with the specified HaVip reach its limits.',
      );
    }
    const held = [...this.haVips.values()].filter((h) => h.associatedInstances.includes(instanceId)).length;
    if (held >= this.maxHaVipsPerInstance) {
      throw new AliyunApiError(
        400,
        'CountLimitExceed.HaVipOnInstance',
        'The amount of HaVip associated with the specified Instance reach its limits.',
      );
    }
    hv.lastOperationAt = this.now();
    this.setStatus(hv, 'Associating');
    this.later(() => {
      hv.associatedInstances.push(instanceId);
      hv.associatedInstanceType = 'EcsInstance';
      this.emit({ kind: 'associated', haVipId, instanceId });
      this.setStatus(hv, 'InUse');
    });
  }

  /** UnassociateHaVip: validates synchronously, completes after transitionMs. */
  unassociate(haVipId: string, instanceId: string, force: boolean): void {
    const hv = this.requireHaVip(haVipId);
    const inst = this.requireInstance(instanceId);
    this.refuseRapidRepeat(hv);
    if (hv.status !== 'InUse') {
      throw new AliyunApiError(
        400,
        'IncorrectHaVipStatus',
        "HaVip can be operated by this action only when it's status is InUse.",
      );
    }
    if (inst.status !== 'Running' && inst.status !== 'Stopped') {
      throw new AliyunApiError(
        400,
        'IncorrectInstanceStatus',
        "ECS instance can be operated by this action only when it's status is Running or Stopped.",
      );
    }
    if (!hv.associatedInstances.includes(instanceId)) {
      throw new AliyunApiError(
        400,
        'ResourceNotAssociated',
        'The HaVip and ECS instance are not associated.',
      );
    }
    if (hv.masterInstanceId === instanceId && !force) {
      throw new AliyunApiError(
        400,
        'Forbidden.UnassociateMaster',
        'Unassociating a master instance is not allowed unless the parameter Force is True.',
      );
    }
    hv.lastOperationAt = this.now();
    this.setStatus(hv, 'Unassociating');
    this.later(() => {
      hv.associatedInstances = hv.associatedInstances.filter((id) => id !== instanceId);
      if (hv.associatedInstances.length === 0) hv.associatedInstanceType = '';
      this.emit({ kind: 'unassociated', haVipId, instanceId });
      if (hv.masterInstanceId === instanceId) {
        hv.masterInstanceId = '';
        this.emit({ kind: 'master', haVipId, masterInstanceId: undefined });
      }
      this.setStatus(hv, hv.associatedInstances.length > 0 ? 'InUse' : 'Available');
    });
  }

  /** HaVips matching DescribeHaVips filters (keys ANDed, values ORed). */
  findHaVips(filters: ReadonlyMap<string, readonly string[]>): HaVip[] {
    return [...this.haVips.values()].filter((hv) => {
      for (const [key, values] of filters) {
        const actual =
          key === 'HaVipId'
            ? hv.haVipId
            : key === 'VpcId'
              ? hv.vpcId
              : key === 'VSwitchId'
                ? hv.vSwitchId
                : key === 'Status'
                  ? hv.status
                  : key === 'HaVipAddress'
                    ? hv.ipAddress
                    : undefined;
        if (actual === undefined || !values.includes(actual)) return false;
      }
      return true;
    });
  }

  requireInstance(instanceId: string): EcsInstance {
    const inst = this.instances.get(instanceId);
    if (!inst)
      throw new AliyunApiError(404, 'InvalidInstanceId.NotFound', 'The specified InstanceId does not exist.');
    return inst;
  }

  /** Cancels pending transitions; the model stays readable. */
  dispose(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.listeners.clear();
  }

  /** Schedules model work after transitionMs, cancelled by dispose(). */
  later(fn: () => void, ms = this.transitionMs): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private requireInstanceForTest(instanceId: string): EcsInstance {
    const inst = this.instances.get(instanceId);
    if (!inst) throw new Error(`unknown instance ${instanceId}`);
    return inst;
  }

  private requireHaVip(haVipId: string): HaVip {
    const hv = this.haVips.get(haVipId);
    if (!hv)
      throw new AliyunApiError(404, 'InvalidHaVipId.NotFound', 'The specified HaVipId does not exist.');
    return hv;
  }

  private refuseRapidRepeat(hv: HaVip): void {
    if (this.minCallIntervalMs > 0 && this.now() - hv.lastOperationAt < this.minCallIntervalMs) {
      throw new AliyunApiError(
        400,
        'OperationConflict',
        'Request was denied due to conflict with a previous request.',
      );
    }
  }

  private setStatus(hv: HaVip, status: HaVipStatus): void {
    hv.status = status;
    this.emit({ kind: 'status', haVipId: hv.haVipId, status });
  }

  private emit(event: ModelEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch {
        // A listener's failure must not break the emulated control plane.
      }
    }
  }
}

/**
 * The VIP data path's view of an HaVip: `resolve()` names the backend of the current master,
 * `subscribe()` fires whenever the master may have changed. Shaped for startVipForwarder().
 */
export function vipBackendFromHaVip(
  model: AliyunModel,
  haVipId: string,
  instanceToBackend: (instanceId: string) => { host: string; port: number } | undefined,
): {
  resolve: () => { host: string; port: number } | undefined;
  subscribe: (cb: () => void) => () => void;
} {
  return {
    resolve: () => {
      const master = model.masterOf(haVipId);
      if (!master) return undefined;
      // A stopped master receives nothing even while the API still names it.
      if (model.instances.get(master)?.status !== 'Running') return undefined;
      return instanceToBackend(master);
    },
    subscribe: (cb) =>
      model.onChange((e) => {
        if (e.kind === 'instance' || ('haVipId' in e && e.haVipId === haVipId)) cb();
      }),
  };
}
