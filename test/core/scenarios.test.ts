import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ANALYSIS_CODES, analyzeTopology, DEFAULT_ANALYZE_OPTIONS } from '../../lib/core/analyze-topology.ts';
import type { ElectionFacts } from '../../lib/core/decision-types.ts';
import { electCandidate } from '../../lib/core/elect-candidate.ts';
import type { AnalysisCode, ClusterSnapshot, ElectionPolicy, Evidence } from '../../lib/core/types.ts';

/** expected.json of a scenario folder. */
interface Expected {
  about: string;
  code: AnalysisCode;
  actionable: boolean;
  evidence: Evidence | null;
  findings: { code: AnalysisCode; nodeId?: string }[];
}

/**
 * election.json of a scenario folder (optional): the election on the same snapshot. The policy
 * defaults to auto, the snapshot's node order, no rules and maxLagSeconds 60.
 */
interface ExpectedElection {
  about: string;
  policy?: Partial<ElectionPolicy>;
  facts?: ElectionFacts;
  /** The chosen node, or null for a veto. */
  candidate: string | null;
  receivedGtid?: string;
  /** Node id -> a text its verdict's reasons must contain. */
  reasons?: Record<string, string>;
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
    election: existsSync(new URL(`${name}/election.json`, root))
      ? readJson<ExpectedElection>(name, 'election.json')
      : undefined,
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

describe('electCandidate scenarios', () => {
  it('has election expectations for MariaDB and MySQL snapshots alike', () => {
    const flavors = scenarios
      .filter((s) => s.election !== undefined)
      .map((s) => (s.snapshot.nodes.some((n) => n.version?.includes('MariaDB')) ? 'mariadb' : 'mysql'));
    expect(new Set(flavors)).toEqual(new Set(['mariadb', 'mysql']));
  });

  for (const { name, snapshot, election } of scenarios) {
    if (election === undefined) continue;
    it(`elects in ${name}: ${election.about}`, () => {
      const policy: ElectionPolicy = {
        mode: 'auto',
        order: snapshot.nodes.map((n) => n.nodeId),
        rules: {},
        maxLagSeconds: 60,
        ...election.policy,
      };
      const e = electCandidate(snapshot, policy, election.facts ?? {});
      expect(e.kind === 'candidate' ? e.nodeId : null).toBe(election.candidate);
      if (election.receivedGtid !== undefined && e.kind === 'candidate')
        expect(e.receivedGtid).toBe(election.receivedGtid);
      for (const [nodeId, text] of Object.entries(election.reasons ?? {})) {
        expect(e.verdicts.find((v) => v.nodeId === nodeId)?.reasons.join(' | ')).toContain(text);
      }
    });
  }
});
