/**
 * The CI quality gate for the statistical judge.
 *
 * The golden set (golden-set.ts): every case is built through the real telemetry store and snapshot
 * builder, written as a file and read back as `fleet canary judge --input` would; the judge must agree with the rubric's label on at
 * least 90 % of the cases, never Proceed where the label holds or aborts, never Abort where it proceeds,
 * and agree exactly on every hard-limit case. Disagreements are listed. The version 1 fixtures (v1/,
 * snapshots of the first format) must still parse and get their labels.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CANARY_SNAPSHOT_VERSIONS, CanarySnapshotSchema, RecommendationSchema, type CanarySnapshot, type Verdict } from '../../protocol/canary.js';
import { parseValue } from '../../protocol/parse.js';
import { DEFAULT_GATE_POLICY } from '../../coordinator/gate/analyzer.js';
import { judgeSnapshot } from '../../coordinator/canary/stat-judge.js';
import { GOLDEN } from './golden-set.js';
import { sharedGoldenSet } from './shared-golden-set.js';

const here = dirname(fileURLToPath(import.meta.url));

function load(dir: string, name: string): CanarySnapshot {
  const parsed = parseValue(CanarySnapshotSchema, JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')), name, CANARY_SNAPSHOT_VERSIONS);
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}

describe('golden set (through the real telemetry pipeline)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await sharedGoldenSet();
    expect(readdirSync(dir).sort()).toEqual([...Object.keys(GOLDEN).map((n) => `${n}.json`), 'labels.json'].sort());
  }, 120_000);

  const verdicts = new Map<string, Verdict>();
  for (const [name, c] of Object.entries(GOLDEN)) {
    it(`${name}: ${c.description} (rubric ${c.rubric.join(', ')}: ${c.label})`, () => {
      const snapshot = load(dir, name);
      expect(snapshot.v).toBe(2);
      expect(snapshot.slots?.count).toBeGreaterThanOrEqual(4);
      const verdict = judgeSnapshot(snapshot, DEFAULT_GATE_POLICY);
      verdicts.set(name, verdict);
      // Never unsafe: no Proceed on a release the rubric holds or rolls back, no Abort of one it passes.
      if (c.label !== 'Proceed') expect({ name, got: verdict.recommendation, issues: verdict.issues }).not.toMatchObject({ got: 'Proceed' });
      if (c.label === 'Proceed') expect({ name, got: verdict.recommendation, issues: verdict.issues }).not.toMatchObject({ got: 'Abort' });
      if (c.rubric.includes('R3')) expect(verdict.rule).toMatch(/^hard-limit:/);
      if (verdict.recommendation !== 'Proceed') expect(verdict.issues.length).toBeGreaterThan(0);
      expect(judgeSnapshot(load(dir, name), DEFAULT_GATE_POLICY)).toEqual(verdict);
    });
  }

  it('agrees with the rubric on at least 90 % of the cases', () => {
    const misses = Object.entries(GOLDEN).filter(([n, c]) => verdicts.get(n)?.recommendation !== c.label);
    console.info(`golden set: ${Object.keys(GOLDEN).length - misses.length}/${Object.keys(GOLDEN).length} agree${misses.map(([n, c]) => `\n  ${n}: label ${c.label}, judge ${verdicts.get(n)?.recommendation} (${verdicts.get(n)?.rule})`).join('')}`);
    expect(verdicts.size).toBe(Object.keys(GOLDEN).length);
    expect(misses.length / verdicts.size).toBeLessThanOrEqual(0.1);
  });

  it('covers strata, onset, lost metrics, control outages, offline gaps, a pathological device, incidents and improvements', () => {
    const rules = new Set(Object.values(GOLDEN).flatMap((c) => c.rubric));
    for (const r of ['R1', 'R2', 'R3', 'R4', 'R5', 'R6', 'R7', 'R8', 'R9', 'R10', 'R11', 'R12', 'R13', 'R14', 'R15']) expect(rules).toContain(r);
    expect(new Set(Object.values(GOLDEN).map((c) => c.label))).toEqual(new Set(['Proceed', 'Monitor', 'Abort']));
  });
});

describe('version 1 snapshots', () => {
  const dir = join(here, 'v1');
  const labels = z.record(z.string(), z.object({ label: RecommendationSchema, description: z.string() }))
    .parse(JSON.parse(readFileSync(join(dir, 'labels.json'), 'utf8')));
  for (const [name, { label, description }] of Object.entries(labels)) {
    it(`${name} (${description}) → ${label}`, () => {
      const snapshot = load(dir, name);
      expect(snapshot.v).toBe(1);
      const verdict = judgeSnapshot(snapshot, DEFAULT_GATE_POLICY);
      expect({ name, recommendation: verdict.recommendation, rule: verdict.rule }).toMatchObject({ name, recommendation: label });
      expect(verdict.evidence.map((e) => e.check)).toEqual(expect.arrayContaining(['trial-failures', 'sufficiency', 'crashes', 'cpuPct.mean', 'lost-metrics', 'score']));
    });
  }
});
