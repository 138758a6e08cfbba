/**
 * Layer 4 of the statistical judge: continuous metrics (CPU, memory, power and battery, temperature,
 * boot time) compared per device — mean, tail (p99) and slope (leaks, drains) — with Kayenta's
 * classifier and a direction of harm per check. Pure.
 */
import type { CanarySnapshot, DeviceSummary, Evidence } from '../../protocol/canary.js';
import type { JudgeConfig, MetricCheck } from './judge-config.js';
import { classifyMetric, type CheckResult } from './kayenta-classifier.js';

export interface MetricResult {
  check: MetricCheck;
  name: string;
  result: CheckResult;
  /** False when neither cohort reports the metric at all (not applicable, not NoData). */
  applicable: boolean;
  evidence: Evidence;
  issue?: string;
}

function valueOf(d: DeviceSummary, check: MetricCheck): number | undefined {
  const s = d.metrics[check.metric];
  if (!s) return undefined;
  switch (check.stat) {
    case 'mean':
      return s.mean;
    case 'p99':
      return s.p99;
    case 'slope':
      return s.slopePerH;
    case 'drain':
      return s.slopePerH === undefined ? undefined : -s.slopePerH;
  }
}

const collect = (ds: readonly DeviceSummary[], check: MetricCheck, minSlopeHours: number): number[] =>
  ds.flatMap((d) => {
    if ((check.stat === 'slope' || check.stat === 'drain') && d.exposureH < minSlopeHours) return [];
    const v = valueOf(d, check);
    return v === undefined || !Number.isFinite(v) ? [] : [v];
  });

export const checkName = (c: MetricCheck): string => `${c.metric}.${c.stat}`;

function describe(name: string, check: MetricCheck, values: Evidence['values'], result: CheckResult): string {
  const eff = values.effect;
  const shown = typeof eff === 'number'
    ? check.effect === 'ratio' ? `${eff.toFixed(3)}× control` : `${eff > 0 ? '+' : ''}${eff.toPrecision(3)} vs control`
    : String(eff);
  const bound = result === 'critical' ? `critical bound ${Number(check.critical?.toPrecision(3))}` : `allowed ${Number(check.allowed.toPrecision(3))}`;
  return `${name} ${result === 'critical' ? 'critically ' : ''}${check.direction === 'increase' ? 'higher' : 'lower'} on canary devices: ${shown} (${bound}; ${String(values.confidence)} CI ${String(values.ciLower)}..${String(values.ciUpper)})`;
}

/** Classifies every configured metric check. */
export function continuousLayer(snapshot: CanarySnapshot, cfg: JudgeConfig): MetricResult[] {
  const canary = snapshot.devices.filter((d) => d.cohort === 'canary' && !d.silent);
  const control = snapshot.devices.filter((d) => d.cohort === 'control' && !d.silent);
  return cfg.metrics.map((check) => {
    const name = checkName(check);
    const a = collect(canary, check, cfg.minSlopeHours);
    const b = collect(control, check, cfg.minSlopeHours);
    const applicable = [...canary, ...control].some((d) => valueOf(d, check) !== undefined);
    const c = classifyMetric(a, b, check, { confidence: cfg.confidence, tolerance: cfg.tolerance, minDevices: cfg.minDevicesPerMetric });
    const evidence: Evidence = { check: name, result: c.result, values: c.values, ...(c.note ? { note: c.note } : {}) };
    const bad = c.result === 'high' || c.result === 'low' || c.result === 'critical';
    return { check, name, result: c.result, applicable, evidence, ...(bad ? { issue: describe(name, check, c.values, c.result) } : {}) };
  });
}
