import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import * as errors from '../../lib/errors.ts';

interface TaskState {
  Type: string;
  Retry?: Array<{ ErrorEquals: string[]; MaxAttempts?: number; BackoffRate?: number }>;
  Catch?: Array<{ ErrorEquals: string[]; Next: string }>;
}

const definition = parse(readFileSync('infra/state-machine.yml', 'utf8')) as {
  States: Record<string, TaskState>;
};
const tasks = Object.entries(definition.States).filter(([, s]) => s.Type === 'Task');
const errorClasses = Object.values(errors).filter(
  (v): v is typeof errors.FailoverError =>
    typeof v === 'function' && v.prototype instanceof errors.FailoverError,
);
const terminal = errorClasses
  .filter(
    (k) => k !== errors.TransientFailoverError && !(k.prototype instanceof errors.TransientFailoverError),
  )
  .map((k) => k.name);

describe('the failover state machine', () => {
  it('retries every transient error name of lib/errors.ts with backoff in every task', () => {
    for (const [name, s] of tasks) {
      const retried = (s.Retry ?? []).flatMap((r) => r.ErrorEquals);
      for (const e of errors.TRANSIENT_ERROR_NAMES) expect(retried, `${name} retries ${e}`).toContain(e);
      for (const r of s.Retry ?? []) expect(r.BackoffRate ?? 1, name).toBeGreaterThan(1);
    }
  });

  it('never retries a terminal error and routes it to FailoverFailed', () => {
    expect(terminal).toEqual(
      expect.arrayContaining([
        'NoEligibleCandidateError',
        'ErrantTransactionsError',
        'RelayLogTimeoutError',
        'StaleEpochError',
        'CatchUpFailedError',
        'HookFailedError',
      ]),
    );
    for (const [name, s] of tasks) {
      const retried = (s.Retry ?? []).flatMap((r) => r.ErrorEquals);
      for (const e of terminal) expect(retried, `${name} must not retry ${e}`).not.toContain(e);
      if (name === 'FailoverFailed') continue;
      const caught = (s.Catch ?? []).find((c) => c.ErrorEquals.includes('States.ALL'));
      expect(caught?.Next, `${name} catches everything`).toBe('FailoverFailed');
    }
  });

  it('ends a failed execution in a Fail state after FailoverFailed', () => {
    const failed = definition.States.FailoverFailed as TaskState & { Next?: string };
    expect(definition.States[failed.Next ?? '']?.Type).toBe('Fail');
  });

  it('names only transient errors as transient in lib/errors.ts', () => {
    const transient = errorClasses
      .filter((k) => k.prototype instanceof errors.TransientFailoverError)
      .map((k) => k.name);
    expect([...transient].sort()).toEqual(
      errors.TRANSIENT_ERROR_NAMES.filter((n) => n !== 'TransientFailoverError').sort(),
    );
  });
});
