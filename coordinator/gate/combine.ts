/**
 * The gate's combination rule. Pure.
 *
 * - `hard` and `statistical` verdicts count in full; the most cautious wins (Proceed < Monitor < Abort).
 * - An `advisory` (AI) verdict escalates but never relaxes: it is capped at Monitor unless the policy's
 *   `aiMayAbort` allows Abort — final = stat == Abort ? Abort : max(stat, min(ai, Monitor))
 *   (docs/canary-judge.md).
 * - An analyzer error is recorded, never a verdict. With no hard or statistical verdict at all the gate
 *   holds at Monitor: nothing may Proceed unjudged.
 */
import { RECOMMENDATION_ORDER, type Recommendation, type RiskLevel } from '@fleet/protocol/canary';
import type { AnalyzerOutcome, GatePolicy } from './analyzer.js';
import type { AnalyzerRecord, AnalyzerRole, DecisionRecord } from './decision.js';

export interface NamedOutcome {
  name: string;
  role: AnalyzerRole;
  outcome: AnalyzerOutcome;
}

export type CombinedVerdict = DecisionRecord['final'];

const rank = (r: Recommendation): number => RECOMMENDATION_ORDER.indexOf(r);
const RISK_ORDER: readonly RiskLevel[] = ['Low', 'Medium', 'High', 'Critical'];

/** The default role for an analyzer that does not declare one. */
export function defaultRole(name: string, role?: AnalyzerRole): AnalyzerRole {
  return role ?? (name === 'ai' || name.startsWith('ai-') ? 'advisory' : 'statistical');
}

/**
 * Error codes that mean an analyzer declined to judge by design rather than broke: the statistical
 * judge with no control devices left (the last wave). Still an error record, never a verdict.
 */
const ABSTENTIONS: ReadonlySet<string> = new Set(['no-control']);

export function abstained(code: string): boolean {
  return ABSTENTIONS.has(code);
}

/** What an advisory recommendation may contribute under the policy. */
export function capAdvisory(rec: Recommendation, policy: Pick<GatePolicy, 'aiMayAbort'>): Recommendation {
  if (rec === 'Abort' && !policy.aiMayAbort) return 'Monitor';
  return rec;
}

/** Combines analyzer outcomes into per-analyzer records and the final verdict with its rule. */
export function combineOutcomes(
  outcomes: readonly NamedOutcome[],
  policy: Pick<GatePolicy, 'aiMayAbort'>,
): { records: AnalyzerRecord[]; final: CombinedVerdict } {
  const records: AnalyzerRecord[] = [];
  let final: Recommendation | undefined;
  let decider: { name: string; rule: string; risk: RiskLevel; capped: boolean } | undefined;
  let authoritative = 0;
  const issues: string[] = [];

  for (const { name, role, outcome } of outcomes) {
    const base = { name, role, ok: outcome.ok, latencyMs: outcome.latencyMs, ...(outcome.meta ? { meta: outcome.meta } : {}) };
    if (!outcome.ok) {
      records.push({ ...base, error: outcome.error });
      issues.push(`${name} ${abstained(outcome.error.code) ? 'abstained' : 'failed'} (${outcome.error.code}): ${outcome.error.message}`);
      continue;
    }
    const v = outcome.verdict;
    const applied = role === 'advisory' ? capAdvisory(v.recommendation, policy) : v.recommendation;
    if (role !== 'advisory') authoritative++;
    records.push({ ...base, verdict: v, applied });
    for (const issue of v.issues) issues.push(`${name}: ${issue}`);
    // Strictly more cautious replaces the decider; ties keep the earlier (hard gates come first).
    if (final === undefined || rank(applied) > rank(final)) {
      final = applied;
      decider = { name, rule: v.rule, risk: v.riskLevel, capped: applied !== v.recommendation };
    }
  }

  if (authoritative === 0) {
    const rec: Recommendation = final !== undefined && rank(final) > rank('Monitor') ? final : 'Monitor';
    const rule =
      rec === 'Monitor'
        ? 'no-verdict: no hard or statistical analyzer returned a verdict; holding at Monitor'
        : `most-cautious: ${decider!.name}=${rec} (${decider!.rule})`;
    return { records, final: { recommendation: rec, riskLevel: rec === 'Abort' ? 'Critical' : 'Medium', rule, issues } };
  }

  const rec = final!;
  const d = decider!;
  let risk = d.risk;
  // An advisory Abort capped at Monitor keeps at least High risk, so operators see it.
  if (d.capped && RISK_ORDER.indexOf(risk) < RISK_ORDER.indexOf('High')) risk = 'High';
  if (d.capped && risk === 'Critical') risk = 'High';
  const rule = `most-cautious: ${d.name}=${rec} (${d.rule}${d.capped ? '; advisory capped at Monitor' : ''})`;
  return { records, final: { recommendation: rec, riskLevel: risk, rule, issues } };
}
