/**
 * Layer 4 of the statistical judge: continuous metrics (CPU, memory, power and battery, temperature,
 * boot time) compared per device — mean, tail (p99) and slope (leaks, drains) — with Kayenta's
 * classifier and a direction of harm per check. Pure.
 *
 * With several strata (hardware models differ in their baselines), the pooled comparison uses each
 * device's value relative to its own stratum's control median (a ratio or a difference, as the check
 * measures its effect), so the canary's model mix is not mistaken for an effect; and every stratum is
 * also compared on its own at a confidence corrected for the number of strata. With a v2 snapshot the
 * mean, slope and drain checks are also run on the window's last slots (onset: a leak that began
 * half-way has its full slope there, not half of it), again at a corrected confidence.
 */
import type { CanarySnapshot, DeviceSummary, Evidence } from '@fleet/protocol/canary';
import type { JudgeConfig, MetricCheck } from './judge-config.js';
import { classifyMetric, type CheckResult } from './kayenta-classifier.js';
import { strataOf, type Stratum } from './strata.js';
import { onsetSegments, segmentMetric, type Segment } from './series.js';
import { definedProps } from '@fleet/firmware/defined-props';

export interface MetricResult {
  check: MetricCheck;
  name: string;
  result: CheckResult;
  /** False when neither cohort reports the metric at all (not applicable, not NoData). */
  applicable: boolean;
  /** The whole-window pooled evidence first, then strata and onset segments. */
  evidence: Evidence[];
  issue?: string;
  stratum?: string;
  segment?: string;
}

type Reader = (d: DeviceSummary) => number | undefined;

function wholeValue(check: MetricCheck): Reader {
  return (d) => {
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
  };
}

function segmentValue(check: MetricCheck, seg: Segment, slotH: number): Reader | undefined {
  if (check.stat === 'p99') return undefined;
  return (d) => {
    const m = segmentMetric(d, check.metric, seg.from, slotH);
    if (check.stat === 'mean') return m.mean;
    if (m.slopePerH === undefined) return undefined;
    return check.stat === 'slope' ? m.slopePerH : -m.slopePerH;
  };
}

const isSlope = (c: MetricCheck): boolean => c.stat === 'slope' || c.stat === 'drain';

const collect = (ds: readonly DeviceSummary[], read: Reader, minHours: number, check: MetricCheck): number[] =>
  ds.flatMap((d) => {
    if (isSlope(check) && d.exposureH < minHours) return [];
    const v = read(d);
    return v === undefined || !Number.isFinite(v) ? [] : [v];
  });

const median = (xs: readonly number[]): number | undefined => {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Values relative to each stratum's control median (ratio checks divide, difference checks subtract). */
function normalised(strata: readonly Stratum[], read: Reader, check: MetricCheck, minHours: number): { canary: number[]; control: number[] } {
  const canary: number[] = [];
  const control: number[] = [];
  for (const s of strata) {
    const a = collect(s.canary, read, minHours, check);
    const b = collect(s.control, read, minHours, check);
    const ref = median(b);
    if (ref === undefined || !a.length) continue;
    const ratio = check.effect === 'ratio' && ref > 0;
    // Ratio checks keep the control median's scale (×ref/ref = 1) so the allowed bound means the same.
    const f = (v: number): number => (ratio ? v / ref : v - ref);
    canary.push(...a.map(f));
    control.push(...b.map(f));
  }
  return { canary, control };
}

export const checkName = (c: MetricCheck): string => `${c.metric}.${c.stat}`;

function describe(name: string, check: MetricCheck, values: Evidence['values'], result: CheckResult, where: string): string {
  const eff = values.effect;
  const shown = typeof eff === 'number'
    ? check.effect === 'ratio' ? `${eff.toFixed(3)}× control` : `${eff > 0 ? '+' : ''}${eff.toPrecision(3)} vs control`
    : String(eff);
  const bound = result === 'critical' ? `critical bound ${Number(check.critical?.toPrecision(3))}` : `allowed ${Number(check.allowed.toPrecision(3))}`;
  return `${name} ${result === 'critical' ? 'critically ' : ''}${check.direction === 'increase' ? 'higher' : 'lower'} on canary devices${where}: ${shown} (${bound}; ${String(values.confidence)} CI ${String(values.ciLower)}..${String(values.ciUpper)})`;
}

const RANK: Record<CheckResult, number> = { nodata: 0, pass: 1, low: 3, high: 3, critical: 4 };

/** Classifies every configured metric check. */
export function continuousLayer(snapshot: CanarySnapshot, cfg: JudgeConfig): MetricResult[] {
  const live = snapshot.devices.filter((d) => !d.silent);
  // Resource use follows the hardware model; from-version strata would only split the canaries thinner.
  const strata = strataOf(snapshot, false, live);
  const compared = strata.filter((s) => s.canary.length > 0 && s.control.length > 0).slice(0, cfg.maxStrata);
  const multi = compared.length >= 2;
  const segments = onsetSegments(snapshot, cfg.onsetFractions, cfg.minOnsetSlots);
  const slotH = (snapshot.slots?.slotMs ?? 0) / 3_600_000;
  const opts = (confidence: number) => ({ confidence, tolerance: cfg.tolerance, minDevices: cfg.minDevicesPerMetric });
  return cfg.metrics.map((check) => {
    const name = checkName(check);
    const read = wholeValue(check);
    const applicable = live.some((d) => read(d) !== undefined);
    const runs: { name: string; stratum?: string; segment?: Segment; a: number[]; b: number[]; confidence: number }[] = [];
    const pooled = multi ? normalised(compared, read, check, cfg.minSlopeHours) : { canary: collect(live.filter((d) => d.cohort === 'canary'), read, cfg.minSlopeHours, check), control: collect(live.filter((d) => d.cohort === 'control'), read, cfg.minSlopeHours, check) };
    runs.push({ name, a: pooled.canary, b: pooled.control, confidence: cfg.confidence });
    if (multi) {
      const conf = 1 - (1 - cfg.confidence) / compared.length;
      for (const s of compared) runs.push({ name: `${name}[${s.key}]`, stratum: s.key, a: collect(s.canary, read, cfg.minSlopeHours, check), b: collect(s.control, read, cfg.minSlopeHours, check), confidence: conf });
    }
    const usable = segments.filter((seg) => !isSlope(check) || seg.hours >= cfg.minSlopeHours);
    for (const seg of usable) {
      const r = segmentValue(check, seg, slotH);
      if (!r) continue;
      const v = normalised(compared.length ? compared : strata, r, check, 0);
      runs.push({ name: `${name}@${seg.name}`, segment: seg, a: v.canary, b: v.control, confidence: 1 - (1 - cfg.confidence) / usable.length });
    }
    const results = runs.map((r) => {
      const c = classifyMetric(r.a, r.b, check, opts(r.confidence));
      const values = { ...c.values, ...definedProps({ stratum: r.stratum }), ...(r.segment ? { segment: r.segment.name, segmentStartsAtH: Number(r.segment.startsAtH.toPrecision(4)) } : {}), ...(multi && !r.stratum ? { normalisedByStratum: true } : {}) };
      const evidence: Evidence = { check: r.name, result: c.result, values, ...(c.note ? { note: c.note } : {}) };
      return { run: r, result: c.result, evidence };
    });
    let decider = results[0]!;
    for (const x of results.slice(1)) if (RANK[x.result] > RANK[decider.result]) decider = x;
    // The whole window's NoData stands when nothing else found harm: too few devices to say anything.
    const result = RANK[decider.result] > RANK.pass ? decider.result : results[0]!.result;
    const bad = result === 'high' || result === 'low' || result === 'critical';
    const where = `${decider.run.stratum !== undefined ? ` (${decider.run.stratum})` : ''}${decider.run.segment ? ` in the window's ${decider.run.segment.name} (from ${decider.run.segment.startsAtH.toFixed(1)} h)` : ''}`;
    return {
      check,
      name,
      result,
      applicable,
      evidence: results.map((x) => x.evidence),
      ...(bad ? { issue: describe(name, check, decider.evidence.values, result, where) } : {}),
      ...(bad && decider.run.stratum !== undefined ? { stratum: decider.run.stratum } : {}),
      ...(bad && decider.run.segment ? { segment: decider.run.segment.name } : {}),
    };
  });
}
