import type { LambdaClient } from '@aws-sdk/client-lambda';

export interface HookResult {
  ok: boolean;
  ms: number;
  /** The hook's JSON answer (ok) or the failure (function error, SDK error). */
  payload?: unknown;
  error?: string;
}

export interface HookInvoker {
  /** Invokes a hook synchronously. Never throws: failures come back as `ok: false`. */
  invoke(functionName: string, payload: Record<string, unknown>): Promise<HookResult>;
}

/** Hook Lambdas called with RequestResponse, so a failure is seen (FunctionError) and counted. */
export class LambdaHookInvoker implements HookInvoker {
  private client: LambdaClient | undefined;

  constructor(options: { client?: LambdaClient } = {}) {
    this.client = options.client;
  }

  async invoke(functionName: string, payload: Record<string, unknown>): Promise<HookResult> {
    const t0 = Date.now();
    try {
      // The SDK is loaded on the first hook call, not at import (cold start).
      const sdk = await import('./sdk/lambda.ts');
      this.client ??= new sdk.LambdaClient({});
      const r = await this.client.send(
        new sdk.InvokeCommand({
          FunctionName: functionName,
          InvocationType: 'RequestResponse',
          Payload: new TextEncoder().encode(JSON.stringify(payload)),
        }),
      );
      const text = r.Payload ? new TextDecoder().decode(r.Payload) : '';
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        // plain text answer
      }
      if (r.FunctionError) {
        const msg = (body as { errorMessage?: string } | undefined)?.errorMessage ?? text;
        return {
          ok: false,
          ms: Date.now() - t0,
          error: `${functionName} failed (${r.FunctionError}): ${msg}`,
        };
      }
      return { ok: true, ms: Date.now() - t0, payload: body };
    } catch (err) {
      return {
        ok: false,
        ms: Date.now() - t0,
        error: `Invoke ${functionName}: ${(err as Error).name}: ${(err as Error).message}`,
      };
    }
  }
}
