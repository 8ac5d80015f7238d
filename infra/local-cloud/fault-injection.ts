/**
 * Generic fault injection for the local cloud emulators. An emulator asks `admit(action)` once per
 * authenticated request and renders the verdict in its own wire format (EC2 XML, Alibaba JSON, ...),
 * so the same injector serves every provider.
 */

/** One fault to inject for an action (or for every action with the key '*'). */
export type Fault =
  | { latencyMs: number }
  | { throttleNext: number }
  | { serverErrorNext: number }
  | { permanentError: { code: string; message: string; status?: number } }
  | { hang: true };

/** What the emulator should do with a request after the injector has seen it. */
export type FaultVerdict =
  | { kind: 'pass' }
  | { kind: 'throttle' }
  | { kind: 'server-error' }
  | { kind: 'error'; code: string; message: string; status: number }
  /** The request hung until the emulator closed or the client went away: answer nothing. */
  | { kind: 'drop' };

interface FaultState {
  latencyMs?: number;
  throttleNext?: number;
  serverErrorNext?: number;
  permanentError?: { code: string; message: string; status: number };
  hang?: boolean;
}

const ANY = '*';

/**
 * Per-action fault settings plus call counters. `set` merges into what the action already has, so
 * latency and a throttle burst can be combined; `clear` drops settings (and releases hung requests).
 */
export class FaultInjector {
  readonly #faults = new Map<string, FaultState>();
  readonly #calls = new Map<string, number>();
  readonly #hung = new Set<() => void>();
  #closed = false;

  /** Adds a fault for `action` ('*' = every action). */
  set(action: string, fault: Fault): void {
    const state = this.#faults.get(action) ?? {};
    if ('latencyMs' in fault) state.latencyMs = fault.latencyMs;
    else if ('throttleNext' in fault) state.throttleNext = fault.throttleNext;
    else if ('serverErrorNext' in fault) state.serverErrorNext = fault.serverErrorNext;
    else if ('permanentError' in fault) {
      state.permanentError = { status: 400, ...fault.permanentError };
    } else state.hang = true;
    this.#faults.set(action, state);
  }

  /** Removes the faults of one action, or all of them; hung requests then proceed normally. */
  clear(action?: string): void {
    if (action === undefined) this.#faults.clear();
    else this.#faults.delete(action);
    this.#wakeHung();
  }

  /** Requests seen for `action` ('*' = all actions) since the start or the last `resetCalls`. */
  calls(action: string): number {
    return this.#calls.get(action) ?? 0;
  }

  resetCalls(): void {
    this.#calls.clear();
  }

  /**
   * Counts the request, applies latency and hangs, and says how to answer it. `gone` resolves when
   * the client has gone away, which ends a hang early so a dropped request holds nothing.
   */
  async admit(action: string, gone?: Promise<void>): Promise<FaultVerdict> {
    this.#calls.set(action, this.calls(action) + 1);
    this.#calls.set(ANY, this.calls(ANY) + 1);

    const latencyMs = this.#pick(action, 'latencyMs');
    if (latencyMs !== undefined && latencyMs > 0) {
      if (await this.#wait(gone, latencyMs)) return { kind: 'drop' };
    }
    while (this.#pick(action, 'hang')) {
      if (this.#closed || (await this.#wait(gone))) return { kind: 'drop' };
    }
    if (this.#closed) return { kind: 'drop' };
    if (this.#consume(action, 'throttleNext')) return { kind: 'throttle' };
    if (this.#consume(action, 'serverErrorNext')) return { kind: 'server-error' };
    const permanent = this.#pick(action, 'permanentError');
    if (permanent) return { kind: 'error', ...permanent };
    return { kind: 'pass' };
  }

  /** Releases every hung request as dropped; called by the emulator when it closes. */
  close(): void {
    this.#closed = true;
    this.#wakeHung();
  }

  #pick<K extends keyof FaultState>(action: string, key: K): FaultState[K] | undefined {
    return this.#faults.get(action)?.[key] ?? this.#faults.get(ANY)?.[key];
  }

  /** Decrements the first non-empty counter (the action's own before '*'); true if one was used. */
  #consume(action: string, key: 'throttleNext' | 'serverErrorNext'): boolean {
    for (const k of [action, ANY]) {
      const state = this.#faults.get(k);
      const left = state?.[key];
      if (state && left !== undefined && left > 0) {
        state[key] = left - 1;
        return true;
      }
    }
    return false;
  }

  /** Waits for a timeout (if given), a clear/close, or the client leaving; true when the client left. */
  #wait(gone: Promise<void> | undefined, ms?: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (left: boolean) => {
        if (timer) clearTimeout(timer);
        this.#hung.delete(wake);
        resolve(left);
      };
      const wake = () => done(false);
      if (ms !== undefined) timer = setTimeout(wake, ms);
      else this.#hung.add(wake);
      gone?.then(() => done(true));
    });
  }

  #wakeHung(): void {
    for (const wake of [...this.#hung]) wake();
  }
}
