/**
 * The EC2 actions the emulator serves, validated as EC2 validates them. Each returns the inner XML of
 * its `<ActionResponse>` or throws Ec2ApiError.
 */
import {
  type Ec2Instance,
  type Ec2Model,
  INSTANCE_STATE_CODES,
  type InstanceStateName,
  isEniId,
  isInstanceId,
  isRouteTableId,
  type NetworkInterface,
  parseCidr,
  parseIpv4,
  type RouteTable,
} from './model.ts';
import {
  bool,
  Ec2ApiError,
  el,
  filters,
  list,
  matchFilters,
  OWNER_ID,
  type Params,
  paginate,
  required,
} from './query.ts';

export type ActionHandler = (model: Ec2Model, params: Params) => string;

function findEni(model: Ec2Model, id: string): NetworkInterface {
  if (!isEniId(id)) {
    throw new Ec2ApiError('InvalidNetworkInterfaceID.Malformed', `Invalid id: "${id}" (expecting "eni-...")`);
  }
  const eni = model.networkInterface(id);
  if (!eni) {
    throw new Ec2ApiError(
      'InvalidNetworkInterfaceID.NotFound',
      `The networkInterface ID '${id}' does not exist`,
    );
  }
  return eni;
}

function findTable(model: Ec2Model, id: string): RouteTable {
  if (!isRouteTableId(id)) {
    throw new Ec2ApiError('InvalidRouteTableId.Malformed', `Invalid id: "${id}" (expecting "rtb-...")`);
  }
  const table = model.routeTable(id);
  if (!table)
    throw new Ec2ApiError('InvalidRouteTableID.NotFound', `The routeTable ID '${id}' does not exist`);
  return table;
}

function addressList(params: Params): string[] {
  const ips = list(params, 'PrivateIpAddress');
  if (ips.length === 0) {
    throw new Ec2ApiError('MissingParameter', 'The request must contain the parameter PrivateIpAddress');
  }
  for (const ip of ips) {
    if (parseIpv4(ip) === undefined) {
      throw new Ec2ApiError('InvalidParameterValue', `Invalid value '${ip}' for IP address. Malformed.`);
    }
  }
  return ips;
}

const assignPrivateIpAddresses: ActionHandler = (model, params) => {
  const eni = findEni(model, required(params, 'NetworkInterfaceId'));
  if (!model.authorize({ action: 'AssignPrivateIpAddresses', networkInterface: eni }))
    throw unauthorized('AssignPrivateIpAddresses', `network-interface/${eni.networkInterfaceId}`);
  if (params.has('SecondaryPrivateIpAddressCount')) {
    throw new Ec2ApiError('InvalidParameterValue', 'SecondaryPrivateIpAddressCount is not supported here');
  }
  const ips = addressList(params);
  const reassign = bool(params, 'AllowReassignment');
  const subnet = model.subnet(eni.subnetId);
  // Validate everything first: EC2 applies all addresses of a call or none.
  for (const ip of ips) {
    if (!subnet || !model.subnetContains(subnet, ip)) {
      throw new Ec2ApiError(
        'InvalidParameterValue',
        `Address ${ip} does not fall within the subnet's address range`,
      );
    }
    const n = parseIpv4(ip) ?? 0;
    const host = (n & ~subnet.mask) >>> 0;
    // AWS reserves the first four addresses and the last one of every subnet.
    if (host < 4 || host === ~subnet.mask >>> 0) {
      throw new Ec2ApiError(
        'InvalidParameterValue',
        `Address ${ip} is reserved by AWS in the subnet's range`,
      );
    }
    const holder = model.intendedHolder(ip);
    if (holder && holder.eni !== eni.networkInterfaceId && (holder.primary || !reassign)) {
      throw new Ec2ApiError('InvalidIPAddress.InUse', `Address ${ip} is in use.`);
    }
    if (holder?.primary && holder.eni === eni.networkInterfaceId) {
      throw new Ec2ApiError(
        'InvalidParameterValue',
        `Address ${ip} is the primary private IP address of ${eni.networkInterfaceId}`,
      );
    }
  }
  for (const ip of ips) model.assign(eni.networkInterfaceId, ip);
  const items = ips.map((ip) => `<item>${el('privateIpAddress', ip)}</item>`).join('');
  return `${el('networkInterfaceId', eni.networkInterfaceId)}<assignedPrivateIpAddressesSet>${items}</assignedPrivateIpAddressesSet><assignedIpv4PrefixSet/>`;
};

const unassignPrivateIpAddresses: ActionHandler = (model, params) => {
  const eni = findEni(model, required(params, 'NetworkInterfaceId'));
  const ips = addressList(params);
  for (const ip of ips) {
    const holder = model.intendedHolder(ip);
    if (!holder || holder.eni !== eni.networkInterfaceId || holder.primary) {
      throw new Ec2ApiError(
        'InvalidParameterValue',
        `Some of the specified addresses are not assigned to interface ${eni.networkInterfaceId}`,
      );
    }
  }
  for (const ip of ips) model.unassign(eni.networkInterfaceId, ip);
  return el('return', true);
};

const ENI_FILTERS: Record<string, (e: NetworkInterface) => readonly (string | undefined)[]> = {
  'addresses.private-ip-address': (e) => [e.privateIpAddress, ...e.secondary],
  'private-ip-address': (e) => [e.privateIpAddress],
  'network-interface-id': (e) => [e.networkInterfaceId],
  'subnet-id': (e) => [e.subnetId],
  'vpc-id': (e) => [e.vpcId],
  'availability-zone': (e) => [e.availabilityZone],
  'attachment.instance-id': (e) => [e.instanceId],
  description: (e) => [e.description],
  status: (e) => [e.instanceId ? 'in-use' : 'available'],
};

function renderEni(e: NetworkInterface): string {
  const attached = e.instanceId !== undefined;
  const hexId = e.networkInterfaceId.slice(4);
  const attachment = attached
    ? `<attachment>${el('attachmentId', `eni-attach-${hexId}`)}${el('instanceId', e.instanceId)}${el('instanceOwnerId', OWNER_ID)}${el('deviceIndex', 0)}${el('status', 'attached')}${el('deleteOnTermination', true)}</attachment>`
    : '';
  const addresses = [
    `<item>${el('privateIpAddress', e.privateIpAddress)}${el('primary', true)}</item>`,
    ...e.secondary.map((ip) => `<item>${el('privateIpAddress', ip)}${el('primary', false)}</item>`),
  ].join('');
  const mac = `02:${hexId.padEnd(10, '0').slice(0, 10).match(/../g)?.join(':') ?? '00:00:00:00:00'}`;
  return `<item>${el('networkInterfaceId', e.networkInterfaceId)}${el('subnetId', e.subnetId)}${el('vpcId', e.vpcId)}${el('availabilityZone', e.availabilityZone)}${el('description', e.description ?? '')}${el('ownerId', OWNER_ID)}${el('requesterManaged', false)}${el('status', attached ? 'in-use' : 'available')}${el('macAddress', mac)}${el('privateIpAddress', e.privateIpAddress)}${el('sourceDestCheck', true)}${el('interfaceType', 'interface')}<groupSet/>${attachment}<privateIpAddressesSet>${addresses}</privateIpAddressesSet><ipv6AddressesSet/><tagSet>${Object.entries(
    e.tags,
  )
    .map(([k, v]) => `<item>${el('key', k)}${el('value', v)}</item>`)
    .join('')}</tagSet></item>`;
}

const describeNetworkInterfaces: ActionHandler = (model, params) => {
  const ids = list(params, 'NetworkInterfaceId');
  if (ids.length > 0 && params.has('MaxResults')) {
    throw new Ec2ApiError(
      'InvalidParameterCombination',
      'The parameter NetworkInterfaceIds cannot be used with the parameter MaxResults',
    );
  }
  const wanted = ids.map((id) => findEni(model, id));
  const given = filters(params);
  const source = wanted.length > 0 ? wanted : [...model.networkInterfaces()];
  const matched = source.filter((e) => matchFilters(e, given, ENI_FILTERS));
  const { page, nextToken } = paginate(matched, params, 'DescribeNetworkInterfaces', { min: 5, max: 1000 });
  return `<networkInterfaceSet>${page.map(renderEni).join('')}</networkInterfaceSet>${el('nextToken', nextToken)}`;
};

const replaceRoute: ActionHandler = (model, params) => {
  const table = findTable(model, required(params, 'RouteTableId'));
  const cidr = required(params, 'DestinationCidrBlock');
  if (!parseCidr(cidr)) {
    throw new Ec2ApiError(
      'InvalidParameterValue',
      `Value (${cidr}) for parameter destinationCidrBlock is invalid.`,
    );
  }
  const eni = findEni(model, required(params, 'NetworkInterfaceId'));
  if (model.intendedRouteTarget(table.routeTableId, cidr) === undefined) {
    throw new Ec2ApiError(
      'InvalidRoute.NotFound',
      `There is no route defined for '${cidr}' in the route table. Use CreateRoute instead.`,
    );
  }
  if (eni.vpcId !== table.vpcId) {
    throw new Ec2ApiError(
      'InvalidParameterValue',
      `route table ${table.routeTableId} and network interface ${eni.networkInterfaceId} belong to different networks`,
    );
  }
  if (!model.authorize({ action: 'ReplaceRoute', routeTableId: table.routeTableId }))
    throw unauthorized('ReplaceRoute', `route-table/${table.routeTableId}`);
  if (bool(params, 'DryRun')) {
    throw new Ec2ApiError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);
  }
  model.replaceRoute(table.routeTableId, cidr, eni.networkInterfaceId);
  return el('return', true);
};

const TABLE_FILTERS: Record<string, (t: RouteTable) => readonly (string | undefined)[]> = {
  'route-table-id': (t) => [t.routeTableId],
  'vpc-id': (t) => [t.vpcId],
  'route.destination-cidr-block': (t) => [...t.routes.keys()],
  'route.network-interface-id': (t) => [...t.routes.values()],
};

function renderTable(t: RouteTable, model: Ec2Model): string {
  const routes = [...t.routes]
    .map(([cidr, eniId]) => {
      const instanceId = model.networkInterface(eniId)?.instanceId;
      return `<item>${el('destinationCidrBlock', cidr)}${el('instanceId', instanceId)}${instanceId ? el('instanceOwnerId', OWNER_ID) : ''}${el('networkInterfaceId', eniId)}${el('state', 'active')}${el('origin', 'CreateRoute')}</item>`;
    })
    .join('');
  return `<item>${el('routeTableId', t.routeTableId)}${el('vpcId', t.vpcId)}${el('ownerId', OWNER_ID)}<routeSet>${routes}</routeSet><associationSet/><propagatingVgwSet/><tagSet/></item>`;
}

const describeRouteTables: ActionHandler = (model, params) => {
  const ids = list(params, 'RouteTableId');
  const wanted = ids.map((id) => findTable(model, id));
  const given = filters(params);
  const source = wanted.length > 0 ? wanted : [...model.routeTables()];
  const matched = source.filter((t) => matchFilters(t, given, TABLE_FILTERS));
  const { page, nextToken } = paginate(matched, params, 'DescribeRouteTables', { min: 5, max: 100 });
  return `<routeTableSet>${page.map((t) => renderTable(t, model)).join('')}</routeTableSet>${el('nextToken', nextToken)}`;
};

/** Resolves instance ids as EC2 does: every malformed id first, then every unknown one in one error. */
function findInstances(model: Ec2Model, ids: string[]): Ec2Instance[] {
  for (const id of ids) {
    if (!isInstanceId(id)) {
      throw new Ec2ApiError('InvalidInstanceID.Malformed', `Invalid id: "${id}" (expecting "i-...")`);
    }
  }
  const missing = ids.filter((id) => !model.instance(id));
  if (missing.length === 1) {
    throw new Ec2ApiError('InvalidInstanceID.NotFound', `The instance ID '${missing[0]}' does not exist`);
  }
  if (missing.length > 1) {
    throw new Ec2ApiError(
      'InvalidInstanceID.NotFound',
      `The instance IDs '${missing.join(', ')}' do not exist`,
    );
  }
  return ids.map((id) => model.instance(id) as Ec2Instance);
}

function stateXml(tag: string, state: InstanceStateName): string {
  return `<${tag}>${el('code', INSTANCE_STATE_CODES[state])}${el('name', state)}</${tag}>`;
}

/** EC2's answer to a call (or DryRun) the caller's policy does not allow: 403, for every resource type. */
function unauthorized(action: string, resource: string): Ec2ApiError {
  return new Ec2ApiError(
    'UnauthorizedOperation',
    `You are not authorized to perform this operation. User: arn:aws:sts::${OWNER_ID}:assumed-role/mysql-failover-local/function is not authorized to perform: ec2:${action} on resource: arn:aws:ec2:us-east-1:${OWNER_ID}:${resource} because no identity-based policy allows the ec2:${action} action. Encoded authorization failure message: local-emulator`,
    403,
  );
}

const stopInstances: ActionHandler = (model, params) => {
  const ids = list(params, 'InstanceId');
  if (ids.length === 0) {
    throw new Ec2ApiError('MissingParameter', 'The request must contain the parameter InstanceId');
  }
  const instances = findInstances(model, ids);
  for (const inst of instances) {
    if (!model.authorize({ action: 'StopInstances', instance: inst }))
      throw unauthorized('StopInstances', `instance/${inst.instanceId}`);
  }
  // DryRun checks the permission only, whatever state the instances are in.
  if (bool(params, 'DryRun')) {
    throw new Ec2ApiError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);
  }
  // All or nothing, as EC2 validates the whole call before stopping any instance.
  for (const inst of instances) {
    if (inst.state === 'pending' || inst.state === 'shutting-down' || inst.state === 'terminated') {
      throw new Ec2ApiError(
        'IncorrectInstanceState',
        `This instance '${inst.instanceId}' is not in a state from which it can be stopped.`,
      );
    }
  }
  const force = bool(params, 'Force');
  const items = instances
    .map((inst) => {
      const { previous, current } = model.stopInstance(inst.instanceId, force);
      return `<item>${el('instanceId', inst.instanceId)}${stateXml('currentState', current)}${stateXml('previousState', previous)}</item>`;
    })
    .join('');
  return `<instancesSet>${items}</instancesSet>`;
};

const INSTANCE_FILTERS: Record<string, (i: Ec2Instance, model: Ec2Model) => readonly (string | undefined)[]> =
  {
    'instance-id': (i) => [i.instanceId],
    'instance-state-name': (i) => [i.state],
    'instance-state-code': (i) => [String(INSTANCE_STATE_CODES[i.state])],
    'network-interface.network-interface-id': (i, m) => enisOf(m, i).map((e) => e.networkInterfaceId),
    'private-ip-address': (i, m) => [enisOf(m, i)[0]?.privateIpAddress],
  };

function enisOf(model: Ec2Model, inst: Ec2Instance): NetworkInterface[] {
  return [...model.networkInterfaces()].filter((e) => e.instanceId === inst.instanceId);
}

function renderInstance(inst: Ec2Instance, model: Ec2Model): string {
  const enis = enisOf(model, inst);
  const primary = enis[0];
  const reason =
    inst.state === 'stopped' || inst.state === 'stopping'
      ? `<stateReason>${el('code', 'Client.UserInitiatedShutdown')}${el('message', 'Client.UserInitiatedShutdown: User initiated shutdown')}</stateReason>`
      : '';
  const nis = enis
    .map(
      (e, i) =>
        `<item>${el('networkInterfaceId', e.networkInterfaceId)}${el('subnetId', e.subnetId)}${el('vpcId', e.vpcId)}${el('ownerId', OWNER_ID)}${el('status', 'in-use')}${el('privateIpAddress', e.privateIpAddress)}<attachment>${el('attachmentId', `eni-attach-${e.networkInterfaceId.slice(4)}`)}${el('deviceIndex', i)}${el('status', 'attached')}</attachment></item>`,
    )
    .join('');
  return `<item>${el('instanceId', inst.instanceId)}${el('imageId', 'ami-0a000000000000001')}${stateXml('instanceState', inst.state)}${el('privateDnsName', primary ? `ip-${primary.privateIpAddress.replace(/\./g, '-')}.ec2.internal` : '')}${el('reason', inst.stateTransitionReason)}${el('instanceType', 'r6i.large')}<placement>${el('availabilityZone', primary?.availabilityZone)}${el('tenancy', 'default')}</placement>${el('subnetId', primary?.subnetId)}${el('vpcId', primary?.vpcId)}${el('privateIpAddress', primary?.privateIpAddress)}${reason}<networkInterfaceSet>${nis}</networkInterfaceSet><tagSet>${Object.entries(
    inst.tags,
  )
    .map(([k, v]) => `<item>${el('key', k)}${el('value', v)}</item>`)
    .join('')}</tagSet></item>`;
}

const describeInstances: ActionHandler = (model, params) => {
  const ids = list(params, 'InstanceId');
  if (ids.length > 0 && params.has('MaxResults')) {
    throw new Ec2ApiError(
      'InvalidParameterCombination',
      'The parameter instancesSet cannot be used with the parameter maxResults',
    );
  }
  const wanted = findInstances(model, ids);
  const given = filters(params);
  const source = wanted.length > 0 ? wanted : [...model.instances()];
  const matched = source.filter((i) =>
    matchFilters(
      i,
      given,
      Object.fromEntries(
        Object.entries(INSTANCE_FILTERS).map(([k, f]) => [k, (x: Ec2Instance) => f(x, model)]),
      ),
    ),
  );
  const { page, nextToken } = paginate(matched, params, 'DescribeInstances', { min: 5, max: 1000 });
  // One reservation per instance, as separate RunInstances calls would have made them.
  const reservations = page
    .map(
      (i) =>
        `<item>${el('reservationId', `r-${i.instanceId.slice(2)}`)}${el('ownerId', OWNER_ID)}<groupSet/><instancesSet>${renderInstance(i, model)}</instancesSet></item>`,
    )
    .join('');
  return `<reservationSet>${reservations}</reservationSet>${el('nextToken', nextToken)}`;
};

/** Action name -> handler. */
export const EC2_ACTIONS: Readonly<Record<string, ActionHandler>> = {
  AssignPrivateIpAddresses: assignPrivateIpAddresses,
  UnassignPrivateIpAddresses: unassignPrivateIpAddresses,
  DescribeNetworkInterfaces: describeNetworkInterfaces,
  ReplaceRoute: replaceRoute,
  DescribeRouteTables: describeRouteTables,
  StopInstances: stopInstances,
  DescribeInstances: describeInstances,
};
