/**
 * The regression gate for an analyzer (typically the AI risk scorer) over labelled canary snapshots:
 * runs every case, scores exact agreement with the label, and reports errors and unsafe answers
 * (Proceed where the label holds or aborts) separately. An error is a miss, never a pass. Shell-side
 * (reads files); the scoring is pure.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { CANARY_SNAPSHOT_VERSIONS, CanarySnapshotSchema, RecommendationSchema, type CanarySnapshot, type Recommendation } from '@fleet/protocol/canary';
import { parsePayload } from '@fleet/protocol/parse';
import type { GateAnalyzer, GatePolicy } from '../gate/analyzer.js';

export interface LabelledCase {
  name: string;
  label: Recommendation;
  snapshot: CanarySnapshot;
}

export interface CaseResult {
  name: string;
  label: Recommendation;
  got: Recommendation | null;
  error?: { code: string; message: string };
  latencyMs: number;
  meta?: Record<string, unknown>;
}

export interface RegressionReport {
  analyzer: string;
  cases: CaseResult[];
  /** Exact agreements / cases, 0..1. */
  score: number;
  agreed: number;
  errors: number;
  /** Answers of Proceed where the label is Monitor or Abort. */
  unsafe: number;
  threshold: number;
  passed: boolean;
}

const LabelsSchema = z.record(z.string(), z.object({ label: RecommendationSchema, description: z.string().optional() }));

/** Loads `labels.json` and each `<name>.json` snapshot from a golden directory. */
export async function loadLabelledCases(dir: string): Promise<LabelledCase[]> {
  const names = new Set((await readdir(dir)).filter((f) => f.endsWith('.json')));
  if (!names.has('labels.json')) throw new Error(`${dir} has no labels.json`);
  const labels = LabelsSchema.parse(JSON.parse(await readFile(join(dir, 'labels.json'), 'utf8')));
  const out: LabelledCase[] = [];
  for (const [name, { label }] of Object.entries(labels)) {
    const parsed = parsePayload(CanarySnapshotSchema, await readFile(join(dir, `${name}.json`), 'utf8'), `golden snapshot ${name}`, CANARY_SNAPSHOT_VERSIONS);
    if (!parsed.ok) throw parsed.error;
    out.push({ name, label, snapshot: parsed.value });
  }
  return out;
}

/** Scores results against labels. Pure. */
export function scoreResults(analyzer: string, cases: CaseResult[], threshold: number): RegressionReport {
  const agreed = cases.filter((c) => c.got === c.label).length;
  const errors = cases.filter((c) => c.got === null).length;
  const unsafe = cases.filter((c) => c.got === 'Proceed' && c.label !== 'Proceed').length;
  const score = cases.length ? agreed / cases.length : 0;
  return { analyzer, cases, score, agreed, errors, unsafe, threshold, passed: cases.length > 0 && score >= threshold };
}

/** Runs the analyzer over every case, one at a time (endpoints rate-limit), and scores it. */
export async function runRegression(analyzer: GateAnalyzer, cases: readonly LabelledCase[], policy: GatePolicy, threshold: number, now: () => number = Date.now): Promise<RegressionReport> {
  const results: CaseResult[] = [];
  for (const c of cases) {
    const out = await analyzer.analyze(c.snapshot, { policy, now: now() });
    results.push({
      name: c.name,
      label: c.label,
      got: out.ok ? out.verdict.recommendation : null,
      ...(out.ok ? {} : { error: out.error }),
      latencyMs: out.latencyMs,
      ...(out.meta ? { meta: out.meta } : {}),
    });
  }
  return scoreResults(analyzer.name, results, threshold);
}
