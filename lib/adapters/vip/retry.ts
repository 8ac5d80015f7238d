/**
 * Retry with exponential backoff and full jitter, bounded by one absolute deadline. Provider-neutral:
 * the caller says which errors are worth another attempt.
 */

export interface RetryAttempt {
  /** 0 for the first call. */
  attempt: number;
  /** Epoch ms by which this attempt must be over (the overall deadline). */
  deadline: number;
}

export interface RetryOptions {
  /** Epoch ms after which no new attempt starts and the last error is thrown. */
  deadline: number;
  /** First backoff ceiling (ms); doubles per attempt. Default 100. */
  baseMs?: number;
  /** Largest backoff ceiling (ms). Default 2000. */
  maxMs?: number;
  /**
   * No new attempt starts with less time than this before the deadline: an attempt squeezed into
   * the last milliseconds can only time out, and would replace the informative error (say,
   * throttling) with a timeout. Default 0.
   */
  minAttemptMs?: number;
  isRetryable: (err: unknown) => boolean;
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
  /** Injected for tests; defaults to Math.random. */
  random?: () => number;
}

/**
 * Calls `fn` until it succeeds, it throws a non-retryable error (rethrown at once), or the deadline
 * leaves no room for the next backoff (the last error is rethrown). Full jitter (a uniform delay in
 * [0, min(maxMs, baseMs * 2^attempt)]) spreads retries of many callers hitting the same throttle.
 */
export async function retryWithin<T>(fn: (a: RetryAttempt) => Promise<T>, opts: RetryOptions): Promise<T> {
  const baseMs = opts.baseMs ?? 100;
  const maxMs = opts.maxMs ?? 2000;
  const random = opts.random ?? Math.random;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn({ attempt, deadline: opts.deadline });
    } catch (error) {
      if (!opts.isRetryable(error)) throw error;
      const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
      const delayMs = Math.floor(random() * ceiling);
      if (Date.now() + delayMs + (opts.minAttemptMs ?? 0) >= opts.deadline) throw error;
      opts.onRetry?.({ attempt, delayMs, error });
      if (delayMs > 0) await sleep(delayMs);
    }
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
