/**
 * AWS Signature Version 4 verification for the local emulators: rebuilds the canonical request from
 * what arrived on the wire and recomputes the signature with the configured secret, as AWS does.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export interface SigV4Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface SigV4Request {
  method: string;
  /** Path plus query string as received (`req.url`). */
  url: string;
  /** Header values as node:http gives them (lower-case names). */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface SigV4Expectation {
  service: string;
  region: string;
  credentials: readonly SigV4Credentials[];
  /** Allowed clock difference; AWS answers RequestExpired past 15 minutes. */
  maxSkewMs?: number;
  now?: number;
}

/** Why a request was refused, in AWS error-code terms (the emulator renders its own body). */
export interface SigV4Failure {
  code: string;
  message: string;
  status: number;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const FIFTEEN_MINUTES = 15 * 60 * 1000;

/**
 * Verifies a SigV4-signed request. Returns undefined when it is authentic, else the error AWS would
 * answer: MissingAuthenticationToken, IncompleteSignature, AuthFailure (unknown key or wrong scope),
 * RequestExpired, SignatureDoesNotMatch.
 */
export function verifySigV4(req: SigV4Request, expect: SigV4Expectation): SigV4Failure | undefined {
  const auth = headerValue(req.headers, 'authorization');
  if (!auth) {
    return {
      code: 'MissingAuthenticationToken',
      message: 'Request is missing Authentication Token',
      status: 401,
    };
  }
  const parsed = parseAuthorization(auth);
  if (!parsed) {
    return {
      code: 'IncompleteSignature',
      message: `Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters with algorithm ${ALGORITHM}.`,
      status: 400,
    };
  }
  const amzDate = headerValue(req.headers, 'x-amz-date');
  const when = amzDate ? parseAmzDate(amzDate) : undefined;
  if (!amzDate || when === undefined) {
    return {
      code: 'IncompleteSignature',
      message: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
      status: 400,
    };
  }
  const signed = parsed.signedHeaders.split(';');
  if (!signed.includes('host') || !signed.includes('x-amz-date')) {
    return {
      code: 'IncompleteSignature',
      message: "'Host' and 'X-Amz-Date' must be signed headers.",
      status: 400,
    };
  }

  const [keyId, scopeDate, scopeRegion, scopeService, terminator] = parsed.credential.split('/');
  const creds = expect.credentials.find((c) => c.accessKeyId === keyId);
  if (!creds) {
    return {
      code: 'AuthFailure',
      message: 'AWS was not able to validate the provided access credentials',
      status: 401,
    };
  }
  if (terminator !== 'aws4_request' || scopeService !== expect.service || scopeDate !== amzDate.slice(0, 8)) {
    return {
      code: 'IncompleteSignature',
      message: `Credential should be scoped to a valid date, service '${expect.service}' and 'aws4_request'.`,
      status: 400,
    };
  }
  if (scopeRegion !== expect.region) {
    return {
      code: 'AuthFailure',
      message: `Credential should be scoped to a valid region, not '${scopeRegion ?? ''}'.`,
      status: 401,
    };
  }

  const now = expect.now ?? Date.now();
  const maxSkew = expect.maxSkewMs ?? FIFTEEN_MINUTES;
  if (Math.abs(now - when) > maxSkew) {
    return {
      code: 'RequestExpired',
      message: `Request has expired. Timestamp date is ${amzDate}.`,
      status: 400,
    };
  }

  const bodyHash = createHash('sha256').update(req.body).digest('hex');
  const claimedHash = headerValue(req.headers, 'x-amz-content-sha256');
  if (claimedHash !== undefined && claimedHash !== bodyHash && claimedHash !== 'UNSIGNED-PAYLOAD') {
    return {
      code: 'SignatureDoesNotMatch',
      message: "The provided 'x-amz-content-sha256' header does not match what was computed.",
      status: 403,
    };
  }

  const canonical = buildCanonicalRequest(req, signed, claimedHash ?? bodyHash);
  const scope = `${scopeDate}/${scopeRegion}/${scopeService}/aws4_request`;
  const stringToSign = `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonical)}`;
  const key = deriveSigningKey(creds.secretAccessKey, scopeDate, scopeRegion, scopeService);
  const expected = createHmac('sha256', key).update(stringToSign).digest();
  const given = Buffer.from(parsed.signature, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return {
      code: 'SignatureDoesNotMatch',
      message:
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      status: 403,
    };
  }
  return undefined;
}

/** Builds the SigV4 canonical request (exported for the emulator tests and other emulators). */
export function buildCanonicalRequest(
  req: SigV4Request,
  signedHeaders: string[],
  payloadHash: string,
): string {
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const query = q < 0 ? '' : req.url.slice(q + 1);
  const headerLines = signedHeaders.map((name) => {
    const raw = req.headers[name];
    const value = Array.isArray(raw) ? raw.join(',') : (raw ?? '');
    return `${name}:${value.trim().replace(/\s+/g, ' ')}\n`;
  });
  return [
    req.method.toUpperCase(),
    canonicalPath(path),
    canonicalQuery(query),
    headerLines.join(''),
    signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
}

function parseAuthorization(
  value: string,
): { credential: string; signedHeaders: string; signature: string } | undefined {
  if (!value.startsWith(`${ALGORITHM} `)) return undefined;
  const fields = new Map<string, string>();
  for (const part of value.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!credential || !signedHeaders || !signature || !/^[0-9a-f]{64}$/.test(signature)) return undefined;
  return { credential, signedHeaders, signature };
}

function parseAmzDate(value: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  return Date.UTC(y, mo - 1, d, h, mi, s);
}

function deriveSigningKey(secret: string, date = '', region = '', service = ''): Buffer {
  const kDate = createHmac('sha256', `AWS4${secret}`).update(date).digest();
  const kRegion = createHmac('sha256', kDate).update(region).digest();
  const kService = createHmac('sha256', kRegion).update(service).digest();
  return createHmac('sha256', kService).update('aws4_request').digest();
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** RFC 3986 encoding as SigV4 wants it (encodeURIComponent leaves !'()* alone). */
function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** Non-S3 services sign the normalised path with each segment encoded twice. */
function canonicalPath(path: string): string {
  if (path === '' || path === '/') return '/';
  const segments: string[] = [];
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') segments.pop();
    else segments.push(seg);
  }
  const trailing = path.endsWith('/') && segments.length > 0 ? '/' : '';
  return `/${segments.map((s) => uriEncode(uriEncode(decodeURIComponent(s)))).join('/')}${trailing}`;
}

function canonicalQuery(query: string): string {
  if (!query) return '';
  const pairs: [string, string][] = [];
  for (const part of query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = decodeURIComponent((eq < 0 ? part : part.slice(0, eq)).replace(/\+/g, ' '));
    const v = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, ' '));
    pairs.push([uriEncode(k), uriEncode(v)]);
  }
  pairs.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function headerValue(headers: SigV4Request['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
