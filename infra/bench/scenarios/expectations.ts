import type { ScenarioExpectations, Trial } from '../trial-env.ts';

/**
 * What in one trial breaks the scenario's expectations, one readable line per field ("ackedLost
 * 12, expected 0"). Empty when everything held. A trial that threw fails with its error.
 */
export function unmetExpectations(trial: Trial, expect: ScenarioExpectations | undefined): string[] {
  const unmet: string[] = [];
  if (trial.error !== undefined) unmet.push(`error: ${trial.error}`);
  if (expect === undefined) {
    if (!trial.ok && trial.error === undefined) unmet.push('ok false');
    return unmet;
  }
  if (trial.failovers !== expect.failovers)
    unmet.push(`failovers ${trial.failovers}, expected ${expect.failovers}`);
  for (const field of expect.zero) {
    const v = trial[field];
    if (v !== 0 && v !== null)
      unmet.push(`${field} ${v === undefined ? 'not measured' : String(v)}, expected 0`);
  }
  for (const field of expect.true ?? []) {
    if (trial[field] !== true) unmet.push(`${field} ${String(trial[field])}, expected true`);
  }
  // The timeline did not happen as designed (e.g. the injected fault was never reached).
  if (typeof trial.invalid === 'string') unmet.push(`trial invalid: ${trial.invalid}`);
  return unmet;
}
