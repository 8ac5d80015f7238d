/**
 * A thin boundary around @alicloud/pop-core's RPCClient: one call, one typed outcome.
 *
 * pop-core has two traps this file closes:
 * - its errors carry the full signed URL (AccessKeyId, Signature) in `message`, `url` and
 *   `entry`; nothing of a pop-core error leaves this file except the code and a redacted message;
 * - it ignores the HTTP status, so a 5xx with a body without `Code` (e.g. `{}`) resolves as a
 *   success: callers validate the body, and a body without RequestId is a transient failure.
 */
import RPCClient from '@alicloud/pop-core';
import { redact } from '../../errors.ts';

/** What the adapter needs from an RPC client; RPCClient satisfies it, tests may pass their own. */
export interface RpcRequester {
  request<T>(action: string, params: object, options?: object): Promise<T>;
}

/** A failed Alibaba API call, reduced to what is safe to log and store. */
export class AliyunCallError extends Error {
  constructor(
    /** The API action that failed. */
    readonly action: string,
    /** The service's Code, or a local code (RequestTimeout, ECONNREFUSED, EmptyResponse, ...). */
    readonly code: string,
    /** Redacted: never holds the AccessKeySecret, the AccessKeyId or a signed URL. */
    message: string,
    readonly retryable: boolean,
    readonly throttled: boolean,
    readonly requestId?: string,
  ) {
    super(message);
    this.name = 'AliyunCallError';
  }
}

/** Codes a later attempt may cure: throttling, server trouble, a resource in transit, a busy lock. */
const TRANSIENT_CODES = new Set([
  'InternalError',
  'ServiceUnavailable',
  'SystemBusy',
  'UnknownError',
  'OperationConflict',
  'LastTokenProcessing',
  'IncorrectStatus',
  'IncorrectHaVipStatus',
  'IncorrectInstanceStatus',
  'InvalidVip.Status',
  'OperationFailed.DistibuteLock',
  // A nonce collision is cured by the fresh nonce of the next attempt.
  'SignatureNonceUsed',
  // Local codes for a transport failure or a swallowed 5xx.
  'RequestTimeout',
  'EmptyResponse',
  'InvalidResponse',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/** Whether an Alibaba error code is throttling (Throttling, Throttling.User, Throttling.Api, ...). */
export function isThrottlingCode(code: string): boolean {
  return code === 'Throttling' || code.startsWith('Throttling.');
}

/** Whether a call that failed with `code` is worth another attempt. */
export function isRetryableCode(code: string): boolean {
  return isThrottlingCode(code) || TRANSIENT_CODES.has(code);
}

export interface AliyunRpcOptions {
  endpoint: string;
  apiVersion: string;
  accessKeyId: string;
  accessKeySecret: string;
  /** A ready client (tests, or a shared one); by default a pop-core RPCClient is built. */
  client?: RpcRequester;
}

/**
 * One Alibaba RPC API (endpoint + version) with credentials. `call` POSTs the action (so the
 * signed parameters travel in the body, not in a URL that proxies and error messages repeat)
 * and returns the JSON body or throws an AliyunCallError.
 */
export class AliyunRpc {
  readonly #client: RpcRequester;
  readonly #secrets: string[];

  constructor(opts: AliyunRpcOptions) {
    this.#client =
      opts.client ??
      new RPCClient({
        accessKeyId: opts.accessKeyId,
        accessKeySecret: opts.accessKeySecret,
        endpoint: opts.endpoint,
        apiVersion: opts.apiVersion,
      });
    this.#secrets = secretVariants(opts.accessKeySecret, opts.accessKeyId);
  }

  /** Redacts credentials (raw and URL-encoded) and signed-URL parameters from any text. */
  redact(text: string): string {
    return redact(text, this.#secrets);
  }

  /**
   * Calls `action`; `timeoutMs` bounds connect and read. The body must carry RequestId (every
   * real success does), otherwise the call counts as a swallowed server error.
   */
  async call(
    action: string,
    params: Record<string, string>,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    let body: unknown;
    try {
      body = await this.#client.request(action, params, {
        method: 'POST',
        timeout: Math.max(1, Math.floor(timeoutMs)),
      });
    } catch (err) {
      throw this.#translate(action, err);
    }
    if (
      !body ||
      typeof body !== 'object' ||
      typeof (body as { RequestId?: unknown }).RequestId !== 'string'
    ) {
      throw new AliyunCallError(
        action,
        'EmptyResponse',
        'the service answered without a RequestId (a swallowed server error)',
        true,
        false,
      );
    }
    return body as Record<string, unknown>;
  }

  #translate(action: string, err: unknown): AliyunCallError {
    const e = (err ?? {}) as { code?: unknown; data?: unknown; name?: unknown; message?: unknown };
    const data = e.data && typeof e.data === 'object' ? (e.data as Record<string, unknown>) : undefined;
    if (data && typeof data.Code === 'string') {
      // A service error: only Code, Message and RequestId from the body; never err.message (signed URL).
      const code = data.Code;
      const requestId = typeof data.RequestId === 'string' ? data.RequestId : undefined;
      return new AliyunCallError(
        action,
        code,
        clip(this.redact(typeof data.Message === 'string' ? data.Message : '')),
        isRetryableCode(code),
        isThrottlingCode(code),
        requestId,
      );
    }
    const name = typeof e.name === 'string' ? e.name : '';
    const rawCode = typeof e.code === 'string' ? e.code : '';
    const message = clip(this.redact(typeof e.message === 'string' ? e.message : String(err)));
    if (name.startsWith('RequestTimeout'))
      return new AliyunCallError(action, 'RequestTimeout', message, true, false);
    if (name === 'SyntaxError') {
      return new AliyunCallError(
        action,
        'InvalidResponse',
        'the service answered with a body that is not JSON',
        true,
        false,
      );
    }
    if (/^E[A-Z_]+$/.test(rawCode))
      return new AliyunCallError(action, rawCode, message, isRetryableCode(rawCode), false);
    return new AliyunCallError(action, rawCode || name || 'UnknownClientError', message, false, false);
  }
}

/** Messages end up in audit records and task outputs: keep them a readable size. */
function clip(text: string, max = 300): string {
  return text.length <= max ? text : `${text.slice(0, max)}...`;
}

function secretVariants(secret: string, accessKeyId: string): string[] {
  const out = new Set<string>();
  for (const s of [secret, accessKeyId]) {
    if (!s) continue;
    out.add(s);
    out.add(encodeURIComponent(s));
    out.add(encodeURIComponent(encodeURIComponent(s)));
  }
  return [...out];
}
