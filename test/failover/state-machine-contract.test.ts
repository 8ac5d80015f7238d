import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  FailoverPolicySchema,
  MAX_RELAY_LOG_TIMEOUT_SECONDS,
  MAX_SWITCHOVER_CATCH_UP_SECONDS,
} from '../../lib/config/schema.ts';
import * as errors from '../../lib/errors.ts';

interface Retrier {
  ErrorEquals: string[];
  IntervalSeconds?: number;
  MaxAttempts?: number;
  BackoffRate?: number;
  MaxDelaySeconds?: number;
}
interface State {
  Type: string;
  TimeoutSeconds?: number;
  Retry?: Retrier[];
  Catch?: Array<{ ErrorEquals: string[]; Next: string }>;
  Next?: string;
  End?: boolean;
  Branches?: Machine[];
  Choices?: Array<{ Next: string }>;
  Default?: string;
}
interface Machine {
  StartAt: string;
  TimeoutSeconds?: number;
  States: Record<string, State>;
}

const load = (file: string) => parse(readFileSync(file, 'utf8')) as Machine;

/** Every Task state, nested Parallel branches included. */
function taskStates(m: Machine): Array<[string, State]> {
  return Object.entries(m.States).flatMap(
    ([name, s]): Array<[string, State]> => [
      ...(s.Type === 'Task' ? ([[name, s]] as Array<[string, State]>) : []),
      ...(s.Branches ?? []).flatMap(taskStates),
    ],
  );
}

/** A task's worst case: every attempt runs to its TimeoutSeconds, plus the longest backoff. */
function taskWorstSeconds(s: State): number {
  const timeout = s.TimeoutSeconds ?? 60; // the service's default for a Task without one
  let attempts = 1;
  let backoff = 0;
  for (const r of s.Retry ?? []) {
    const max = r.MaxAttempts ?? 3;
    attempts += max;
    for (let i = 0; i < max; i++) {
      const delay = (r.IntervalSeconds ?? 1) * (r.BackoffRate ?? 2) ** i;
      backoff += Math.min(delay, r.MaxDelaySeconds ?? Number.POSITIVE_INFINITY);
    }
  }
  return timeout * attempts + backoff;
}

/**
 * The longest path through a machine (a DAG here): a state's own worst case plus the longest of
 * its successors (Next, Catch targets, Choices); a Parallel state costs its longest branch.
 */
function worstPathSeconds(m: Machine, from = m.StartAt, memo = new Map<string, number>()): number {
  const cached = memo.get(from);
  if (cached !== undefined) return cached;
  const s = m.States[from];
  if (!s) throw new Error(`unknown state ${from}`);
  let own = 0;
  if (s.Type === 'Task') own = taskWorstSeconds(s);
  if (s.Type === 'Parallel') own = Math.max(...(s.Branches ?? []).map((b) => worstPathSeconds(b)));
  const next = [
    ...(s.Next ? [s.Next] : []),
    ...(s.Catch ?? []).map((c) => c.Next),
    ...(s.Choices ?? []).map((c) => c.Next),
    ...(s.Default ? [s.Default] : []),
  ];
  const total = own + Math.max(0, ...next.map((n) => worstPathSeconds(m, n, memo)));
  memo.set(from, total);
  return total;
}

const errorClasses = Object.values(errors).filter(
  (v): v is typeof errors.FailoverError =>
    typeof v === 'function' && v.prototype instanceof errors.FailoverError,
);
const terminal = errorClasses
  .filter(
    (k) => k !== errors.TransientFailoverError && !(k.prototype instanceof errors.TransientFailoverError),
  )
  .map((k) => k.name);

const machines = [
  {
    file: 'infra/state-machine.yml',
    cleanup: 'FailoverFailed',
    // Every task may be retried on a transient error.
    noRetry: [] as string[],
  },
  {
    file: 'infra/switchover-state-machine.yml',
    cleanup: 'SwitchoverAborted',
    // Blocking writes and waiting for the catch-up are not repeated: a failure aborts and undoes.
    noRetry: ['BlockWrites', 'WaitCandidateCaughtUp'],
  },
];

for (const { file, cleanup, noRetry } of machines) {
  const definition = load(file);
  const tasks = taskStates(definition);

  describe(`the state machine ${file}`, () => {
    it('retries every transient error name of lib/errors.ts with backoff', () => {
      for (const [name, s] of tasks) {
        if (noRetry.includes(name)) {
          expect(s.Retry, `${name} is not retried`).toBeUndefined();
          continue;
        }
        const retried = (s.Retry ?? []).flatMap((r) => r.ErrorEquals);
        for (const e of errors.TRANSIENT_ERROR_NAMES) expect(retried, `${name} retries ${e}`).toContain(e);
        for (const r of s.Retry ?? []) expect(r.BackoffRate ?? 1, name).toBeGreaterThan(1);
      }
    });

    it(`never retries a terminal error, and every top-level task is caught by ${cleanup}`, () => {
      expect(terminal).toEqual(
        expect.arrayContaining([
          'NoEligibleCandidateError',
          'ErrantTransactionsError',
          'RelayLogTimeoutError',
          'StaleEpochError',
          'CatchUpFailedError',
          'HookFailedError',
          'SwitchoverPreCheckFailedError',
          'SwitchoverCatchUpTimeoutError',
        ]),
      );
      for (const [name, s] of tasks) {
        const retried = (s.Retry ?? []).flatMap((r) => r.ErrorEquals);
        for (const e of terminal) expect(retried, `${name} must not retry ${e}`).not.toContain(e);
      }
      for (const [name, s] of Object.entries(definition.States)) {
        if (name === cleanup || (s.Type !== 'Task' && s.Type !== 'Parallel')) continue;
        const caught = (s.Catch ?? []).find((c) => c.ErrorEquals.includes('States.ALL'));
        expect(caught?.Next, `${name} catches everything`).toBe(cleanup);
      }
    });

    it('has every Task pass its own name and TimeoutSeconds to the worker, which never outlives it', () => {
      // One failoverWorker serves every state: it ends itself at the state's TimeoutSeconds
      // (functions/failover-worker.ts), which the cleanup's wait for open tasks counts on.
      for (const [name, s] of tasks) {
        const p = (s as { Parameters?: { task?: unknown; timeoutSeconds?: unknown } }).Parameters;
        expect(p?.task, `${name} passes its name`).toBe(name);
        expect(p?.timeoutSeconds, `${name} passes its TimeoutSeconds`).toBe(s.TimeoutSeconds);
      }
    });

    it(`ends a failed execution in a Fail state after ${cleanup}`, () => {
      expect(definition.States[definition.States[cleanup]?.Next ?? '']?.Type).toBe('Fail');
    });

    it('times out only after the worst case of its longest path (every retry and backoff)', () => {
      const worst = worstPathSeconds(definition);
      expect(
        definition.TimeoutSeconds,
        `${file} TimeoutSeconds vs worst case ${worst} s`,
      ).toBeGreaterThanOrEqual(worst);
    });
  });
}

describe('the input limits', () => {
  const failover = load('infra/state-machine.yml');
  const switchover = load('infra/switchover-state-machine.yml');
  const task = (m: Machine, name: string) => Object.fromEntries(taskStates(m))[name];

  it('keep CatchUpCandidate (own relay log, one more replica, its copy) inside its task timeout', () => {
    expect(3 * MAX_RELAY_LOG_TIMEOUT_SECONDS + 30).toBeLessThanOrEqual(
      task(failover, 'CatchUpCandidate')?.TimeoutSeconds ?? 0,
    );
    const over = FailoverPolicySchema.safeParse({
      relayLogTimeoutSeconds: MAX_RELAY_LOG_TIMEOUT_SECONDS + 1,
    });
    expect(over.success).toBe(false);
    expect(JSON.stringify(over.error?.issues)).toContain('CatchUpCandidate');
    expect(
      FailoverPolicySchema.safeParse({ relayLogTimeoutSeconds: MAX_RELAY_LOG_TIMEOUT_SECONDS }).success,
    ).toBe(true);
  });

  it("keep the switchover's catch-up inside WaitCandidateCaughtUp", async () => {
    expect(MAX_SWITCHOVER_CATCH_UP_SECONDS + 30).toBeLessThanOrEqual(
      task(switchover, 'WaitCandidateCaughtUp')?.TimeoutSeconds ?? 0,
    );
    const { plain } = await import('../../functions/switchover.ts');
    await expect(
      plain({ cluster: 'x', catchUpTimeoutSeconds: MAX_SWITCHOVER_CATCH_UP_SECONDS + 1 }),
    ).rejects.toThrow(/catchUpTimeoutSeconds/);
  });
});

describe('lib/errors.ts', () => {
  it('names only transient errors as transient', () => {
    const transient = errorClasses
      .filter((k) => k.prototype instanceof errors.TransientFailoverError)
      .map((k) => k.name);
    expect([...transient].sort()).toEqual(
      errors.TRANSIENT_ERROR_NAMES.filter((n) => n !== 'TransientFailoverError').sort(),
    );
  });

  it('classifies the dialect errors of the named MySQL operations (all terminal: a retry cures none)', () => {
    const dialect = [
      'UnsupportedServerError',
      'InvalidSqlValueError',
      'SemiSyncUnavailableError',
      'ReplicationNotRunningError',
      'NotAReplicaError',
      'MysqlOperationError',
    ];
    expect(terminal).toEqual(expect.arrayContaining(dialect));
    for (const name of dialect) expect(errors.TRANSIENT_ERROR_NAMES as readonly string[]).not.toContain(name);
    // A node that does not answer while an operation runs stays the transient NodeUnreachableError.
    expect(new errors.NodeUnreachableError('x').transient).toBe(true);
    expect(new errors.MysqlOperationError('x').transient).toBe(false);
  });

  it('holds every error the operator actions throw', async () => {
    const common = await import('../../lib/operator/common.ts');
    expect(common.OperatorRefusedError).toBe(errors.OperatorRefusedError);
    expect(common.SwitchoverPreCheckFailedError).toBe(errors.SwitchoverPreCheckFailedError);
    expect(common.SwitchoverCatchUpTimeoutError).toBe(errors.SwitchoverCatchUpTimeoutError);
  });
});
