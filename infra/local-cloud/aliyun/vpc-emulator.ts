/**
 * VPC API (Version 2016-04-28) actions of the emulator: AssociateHaVip, UnassociateHaVip,
 * DescribeHaVips. Request and response shapes follow the VPC API reference (JSON format).
 */
import { createHash } from 'node:crypto';
import { AliyunApiError, type AliyunModel, type HaVip } from './model.ts';

export type RpcParams = Readonly<Record<string, string>>;
export type RpcHandler = (params: RpcParams, ctx: { requestId: string }) => Record<string, unknown>;

export const VPC_API_VERSION = '2016-04-28';

/** Throws the gateway's Missing{Name} error for the first absent parameter. */
export function requireParams(params: RpcParams, ...names: string[]): void {
  for (const name of names) {
    if (params[name] === undefined || params[name] === '') {
      throw new AliyunApiError(400, `Missing${name}`, `${name} is mandatory for this action.`);
    }
  }
}

/**
 * ClientToken idempotency: the same token with the same parameters answers the first response
 * again without acting twice; the same token with other parameters is refused.
 */
export class IdempotencyCache {
  private readonly entries = new Map<string, { fingerprint: string; response: Record<string, unknown> }>();

  run(action: string, params: RpcParams, act: () => Record<string, unknown>): Record<string, unknown> {
    const token = params.ClientToken;
    if (!token) return act();
    if (token.length > 64 || !/^[\x20-\x7e]+$/.test(token)) {
      throw new AliyunApiError(
        400,
        'InvalidClientToken.Malformed',
        'The specified ClientToken is malformed.',
      );
    }
    const fingerprint = fingerprintParams(action, params);
    const key = `${action}\n${token}`;
    const prev = this.entries.get(key);
    if (prev) {
      if (prev.fingerprint !== fingerprint) {
        throw new AliyunApiError(
          400,
          'IdempotentParameterMismatch',
          'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).',
        );
      }
      return prev.response;
    }
    const response = act();
    this.entries.set(key, { fingerprint, response });
    return response;
  }
}

const VOLATILE = new Set([
  'Signature',
  'SignatureNonce',
  'Timestamp',
  'AccessKeyId',
  'SecurityToken',
  'ClientToken',
]);

function fingerprintParams(action: string, params: RpcParams): string {
  const stable = Object.keys(params)
    .filter((k) => !VOLATILE.has(k))
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  return createHash('sha256').update(`${action}?${stable}`).digest('hex');
}

/** Parses Filter.N.Key / Filter.N.Value.M into key -> values. */
function parseFilters(params: RpcParams): Map<string, string[]> {
  const filters = new Map<string, string[]>();
  for (let n = 1; n <= 5; n++) {
    const key = params[`Filter.${n}.Key`];
    if (!key) continue;
    if (!['VpcId', 'VSwitchId', 'Status', 'HaVipId', 'HaVipAddress'].includes(key)) {
      throw new AliyunApiError(
        404,
        'InvalidFilterKey.ValueNotSupported',
        `Specified filter key is not supported: Filter.${n}.Key`,
      );
    }
    const values: string[] = [];
    for (let m = 1; m <= 5; m++) {
      const v = params[`Filter.${n}.Value.${m}`];
      if (v !== undefined) values.push(v);
    }
    filters.set(key, [...(filters.get(key) ?? []), ...values]);
  }
  return filters;
}

function renderHaVip(model: AliyunModel, hv: HaVip): Record<string, unknown> {
  return {
    HaVipId: hv.haVipId,
    RegionId: model.regionId,
    VpcId: hv.vpcId,
    VSwitchId: hv.vSwitchId,
    IpAddress: hv.ipAddress,
    Status: hv.status,
    MasterInstanceId: hv.masterInstanceId,
    AssociatedInstanceType: hv.associatedInstanceType,
    AssociatedInstances: { associatedInstance: [...hv.associatedInstances] },
    AssociatedEipAddresses: { associatedEipAddresse: [] },
    Description: hv.description,
    Name: '',
    CreateTime: hv.createTime,
  };
}

function parseIntParam(params: RpcParams, name: string, dflt: number, min: number, max: number): number {
  const raw = params[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new AliyunApiError(400, `Invalid${name}.Malformed`, `Specified parameter ${name} is not valid.`);
  }
  return n;
}

/** Builds the VPC action table over a model. */
export function createVpcHandlers(model: AliyunModel): Record<string, RpcHandler> {
  const idem = new IdempotencyCache();
  const inRegion = (params: RpcParams) => params.RegionId === model.regionId;

  return {
    AssociateHaVip: (params, { requestId }) => {
      requireParams(params, 'RegionId', 'HaVipId', 'InstanceId');
      return idem.run('AssociateHaVip', params, () => {
        if (!inRegion(params))
          throw new AliyunApiError(404, 'InvalidHaVipId.NotFound', 'The specified HaVipId does not exist.');
        model.associate(params.HaVipId!, params.InstanceId!, params.InstanceType || 'EcsInstance');
        return { RequestId: requestId };
      });
    },
    UnassociateHaVip: (params, { requestId }) => {
      requireParams(params, 'RegionId', 'HaVipId', 'InstanceId');
      return idem.run('UnassociateHaVip', params, () => {
        if (!inRegion(params))
          throw new AliyunApiError(404, 'InvalidHaVipId.NotFound', 'The specified HaVipId does not exist.');
        const force = (params.Force ?? 'false').toLowerCase() === 'true';
        model.unassociate(params.HaVipId!, params.InstanceId!, force);
        return { RequestId: requestId };
      });
    },
    DescribeHaVips: (params, { requestId }) => {
      requireParams(params, 'RegionId');
      const pageNumber = parseIntParam(params, 'PageNumber', 1, 1, 1_000_000);
      const pageSize = parseIntParam(params, 'PageSize', 10, 1, 50);
      const all = inRegion(params) ? model.findHaVips(parseFilters(params)) : [];
      const page = all.slice((pageNumber - 1) * pageSize, pageNumber * pageSize);
      return {
        RequestId: requestId,
        TotalCount: all.length,
        PageNumber: pageNumber,
        PageSize: pageSize,
        HaVips: { HaVip: page.map((hv) => renderHaVip(model, hv)) },
      };
    },
  };
}
