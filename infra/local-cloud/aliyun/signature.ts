/**
 * Alibaba Cloud RPC signature (SignatureVersion 1.0, HMAC-SHA1) as the emulator checks it.
 *
 * The string to sign is METHOD & pct('/') & pct(canonical query), the canonical query being
 * the pct-encoded `k=v` pairs of every parameter except Signature, sorted by key. pct is
 * encodeURIComponent plus escaping of ! ' ( ) *, which is what @alicloud/pop-core sends.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** RFC 3986 percent-encoding the way Alibaba's RPC gateway canonicalises parameters. */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The canonical query string: sorted, pct-encoded pairs without Signature. */
export function canonicalizeParams(params: Readonly<Record<string, string>>): string {
  return Object.keys(params)
    .filter((k) => k !== 'Signature')
    .sort()
    .map((k) => `${percentEncode(k)}=${percentEncode(params[k] ?? '')}`)
    .join('&');
}

/** The exact text that is HMAC'd. Real error messages echo it back ("server string to sign is: ..."). */
export function buildStringToSign(method: string, params: Readonly<Record<string, string>>): string {
  return `${method.toUpperCase()}&${percentEncode('/')}&${percentEncode(canonicalizeParams(params))}`;
}

/** Computes the base64 HMAC-SHA1 signature for a request's parameters. */
export function computeRpcSignature(
  method: string,
  params: Readonly<Record<string, string>>,
  accessKeySecret: string,
): string {
  return createHmac('sha1', `${accessKeySecret}&`).update(buildStringToSign(method, params)).digest('base64');
}

/** Constant-time comparison of a received signature with the expected one. */
export function signaturesMatch(received: string, expected: string): boolean {
  const a = Buffer.from(received);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Decodes an `a=b&c=d` string. Unlike URLSearchParams it does not turn '+' into a space:
 * the RPC gateway percent-decodes only, and pop-core never sends a literal '+'.
 */
export function parseFormString(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const part of text.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const rawKey = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    out[safeDecode(rawKey)] = safeDecode(rawValue);
  }
  return out;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
