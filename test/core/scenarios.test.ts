import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ANALYSIS_CODES, analyzeTopology, DEFAULT_ANALYZE_OPTIONS } from '../../lib/core/analyze-topology.ts';
import type { AnalysisCode, ClusterSnapshot, Evidence } from '../../lib/core/types.ts';

/** expected.json of a scenario folder. */
interface Expected {
  about: string;
  code: AnalysisCode;
  actionable: boolean;
  evidence: Evidence | null;
  findings: { code: AnalysisCode; nodeId?: string }[];
}

const root = new URL('./scenarios/', import.meta.url);
const readJson = <T>(name: string, file: string): T =>
  JSON.parse(readFileSync(new URL(`${name}/${file}`, root), 'utf8')) as T;
const scenarios = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort()
  .map((name) => ({
    name,
    snapshot: readJson<ClusterSnapshot>(name, 'snapshot.json'),
    history: existsSync(new URL(`${name}/history.json`, root))
      ? readJson<ClusterSnapshot[]>(name, 'history.json')
      : [],
    expected: readJson<Expected>(name, 'expected.json'),
  }));

describe('analyzeTopology scenarios', () => {
  it('has at least one scenario folder for every analysis code', () => {
    const covered = new Set(scenarios.map((s) => s.expected.code));
    expect([...Object.keys(ANALYSIS_CODES)].filter((c) => !covered.has(c as AnalysisCode))).toEqual([]);
  });

  for (const { name, snapshot, history, expected } of scenarios) {
    it(`classifies ${name}: ${expected.about}`, () => {
      const analysis = analyzeTopology(snapshot, history, DEFAULT_ANALYZE_OPTIONS);
      expect({
        code: analysis.code,
        actionable: analysis.actionable,
        evidence: analysis.evidence ?? null,
        findings: analysis.findings.map((f) =>
          f.nodeId === undefined ? { code: f.code } : { code: f.code, nodeId: f.nodeId },
        ),
      }).toEqual({
        code: expected.code,
        actionable: expected.actionable,
        evidence: expected.evidence,
        findings: expected.findings,
      });
      expect(analysis.actionable).toBe(ANALYSIS_CODES[analysis.code].actionable);
      expect(analysis.description.length).toBeGreaterThan(0);
      for (const f of analysis.findings) expect(f.description).not.toBe('');
    });
  }
});
