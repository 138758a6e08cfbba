/**
 * Kayenta's per-metric classifier applied to per-device summaries (one value per device, so no
 * pseudo-replication). Pure.
 *
 * Following Kayenta's MannWhitneyClassifier: empty cohort → NoData; identical or constant samples →
 * Pass; otherwise a two-sided Mann-Whitney with Hodges-Lehmann interval at `confidence`. The canary is
 * High when the interval's lower bound exceeds tolerance·|HL| and the effect reaches the allowed bound
 * (Low is the mirror). Only the direction of harm counts against the canary: a change the other way is
 * a Pass recorded as an improvement. Critical when the effect passes the critical bound.
 */
import type { Evidence } from '@fleet/protocol/canary';
import type { MetricCheck } from './judge-config.js';
import { mannWhitney } from '../stats/mann-whitney.js';

export type CheckResult = 'pass' | 'high' | 'low' | 'critical' | 'nodata';

export interface Classification {
  result: CheckResult;
  values: Evidence['values'];
  note?: string;
}

const mean = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
const round = (x: number, digits = 6): number => (Number.isFinite(x) ? Number(x.toPrecision(digits)) : x);
const num = (x: number): number | string => (Number.isFinite(x) ? round(x) : String(x));

/** Classifies canary against control for one check. `minDevices` per cohort, else NoData. */
export function classifyMetric(
  canary: readonly number[],
  control: readonly number[],
  check: MetricCheck,
  opts: { confidence: number; tolerance: number; minDevices: number },
): Classification {
  const base = { canaryDevices: canary.length, controlDevices: control.length };
  if (canary.length < opts.minDevices || control.length < opts.minDevices) {
    return { result: 'nodata', values: base, note: `needs at least ${opts.minDevices} devices with data in each cohort` };
  }
  const canaryMean = mean(canary);
  const controlMean = mean(control);
  const withMeans = { ...base, canaryMean: round(canaryMean), controlMean: round(controlMean) };
  const distinct = new Set([...canary, ...control]);
  if (distinct.size === 1) return { result: 'pass', values: withMeans, note: 'all values identical' };

  const mw = mannWhitney(canary, control, opts.confidence);
  const effect = check.effect === 'ratio'
    ? controlMean > 0 ? canaryMean / controlMean : canaryMean > 0 ? Infinity : 1
    : mw.estimate;
  const tol = opts.tolerance * Math.abs(mw.estimate);
  const up = mw.ciLower > tol;
  const down = mw.ciUpper < -tol;
  const neutral = check.effect === 'ratio' ? 1 : 0;
  const values: Evidence['values'] = {
    ...withMeans,
    effect: num(effect),
    effectKind: check.effect,
    allowed: check.allowed,
    critical: check.critical ?? null,
    hl: num(mw.estimate),
    ciLower: num(mw.ciLower),
    ciUpper: num(mw.ciUpper),
    confidence: mw.confidence,
    pValue: num(mw.pValue),
    w: mw.w,
  };

  if (check.direction === 'increase') {
    if (up && effect >= check.allowed) {
      const crit = check.critical !== undefined && effect >= check.critical;
      return { result: crit ? 'critical' : 'high', values };
    }
    if (down && effect < neutral) return { result: 'pass', values, note: 'improved' };
  } else {
    if (down && effect <= check.allowed) {
      const crit = check.critical !== undefined && effect <= check.critical;
      return { result: crit ? 'critical' : 'low', values };
    }
    if (up && effect > neutral) return { result: 'pass', values, note: 'improved' };
  }
  return { result: 'pass', values };
}
