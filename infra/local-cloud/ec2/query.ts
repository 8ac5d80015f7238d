/**
 * EC2 Query protocol pieces: reading `Name.N` / `Filter.N.Value.M` parameters, EC2 errors and the
 * XML the SDK parses.
 */

export const EC2_XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';
export const EC2_API_VERSION = '2016-11-15';
/** Account id the emulator reports as owner. */
export const OWNER_ID = '123456789012';

/** An error EC2 would answer; the emulator renders it as `<Response><Errors>...`. */
export class Ec2ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = 'Ec2ApiError';
  }
}

export type Params = Map<string, string>;

/** Reads a required scalar, answering MissingParameter as EC2 does. */
export function required(params: Params, name: string): string {
  const v = params.get(name);
  if (v === undefined || v === '') {
    throw new Ec2ApiError('MissingParameter', `The request must contain the parameter ${name}`);
  }
  return v;
}

/** Reads `prefix.1`, `prefix.2`, ... in index order. */
export function list(params: Params, prefix: string): string[] {
  const found: [number, string][] = [];
  const head = `${prefix}.`;
  for (const [k, v] of params) {
    if (!k.startsWith(head)) continue;
    const n = Number(k.slice(head.length));
    if (Number.isInteger(n) && n > 0) found.push([n, v]);
  }
  return found.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

export interface Filter {
  name: string;
  values: string[];
}

/** Reads `Filter.N.Name` / `Filter.N.Value.M`. */
export function filters(params: Params): Filter[] {
  const out: Filter[] = [];
  for (let n = 1; ; n++) {
    const name = params.get(`Filter.${n}.Name`);
    if (name === undefined) break;
    out.push({ name, values: list(params, `Filter.${n}.Value`) });
  }
  return out;
}

/** Applies EC2's filter semantics: every filter must match, any of a filter's values may. */
export function matchFilters<T>(
  item: T,
  given: Filter[],
  known: Record<string, (item: T) => readonly (string | undefined)[]>,
): boolean {
  for (const f of given) {
    const get = known[f.name];
    if (!get) throw new Ec2ApiError('InvalidParameterValue', `The filter '${f.name}' is invalid`);
    const have = get(item);
    if (!f.values.some((v) => have.some((h) => h !== undefined && globMatch(v, h)))) return false;
  }
  return true;
}

/** EC2 filter values accept * and ? wildcards. */
function globMatch(pattern: string, value: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern === value;
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return re.test(value);
}

/**
 * Cuts a result list into a page for MaxResults / NextToken, as EC2 does (the token is opaque to
 * clients; here it encodes the offset and the action so it cannot be replayed elsewhere).
 */
export function paginate<T>(
  items: T[],
  params: Params,
  action: string,
  range: { min: number; max: number },
): { page: T[]; nextToken: string | undefined } {
  const rawMax = params.get('MaxResults');
  const token = params.get('NextToken');
  let offset = 0;
  if (token !== undefined) {
    const decoded = Buffer.from(token, 'base64url').toString('utf8');
    const m = /^(\w+):(\d+)$/.exec(decoded);
    if (!m || m[1] !== action) throw new Ec2ApiError('InvalidPaginationToken', 'Invalid pagination token');
    offset = Number(m[2]);
  }
  if (rawMax === undefined) return { page: items.slice(offset), nextToken: undefined };
  const max = Number(rawMax);
  if (!Number.isInteger(max) || max < range.min || max > range.max) {
    throw new Ec2ApiError(
      'InvalidParameterValue',
      `Value ( ${rawMax} ) for parameter maxResults is invalid. Expecting a value between ${range.min} and ${range.max}.`,
    );
  }
  const end = offset + max;
  const nextToken = end < items.length ? Buffer.from(`${action}:${end}`).toString('base64url') : undefined;
  return { page: items.slice(offset, end), nextToken };
}

/** Reads a boolean parameter the way the SDK sends it ("true"/"false"). */
export function bool(params: Params, name: string): boolean {
  return params.get(name)?.toLowerCase() === 'true';
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) =>
    c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '&' ? '&amp;' : c === "'" ? '&apos;' : '&quot;',
  );
}

/** `<name>value</name>`, or nothing when the value is undefined. */
export function el(name: string, value: string | number | boolean | undefined): string {
  return value === undefined ? '' : `<${name}>${escapeXml(String(value))}</${name}>`;
}

export function successXml(action: string, requestId: string, inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_XMLNS}"><requestId>${requestId}</requestId>${inner}</${action}Response>`;
}

export function errorXml(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
}
