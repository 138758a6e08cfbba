/**
 * Missing data is evidence too: a continuous metric the control reports and the canaries stopped
 * reporting (a release that disables battery telemetry, a broken sensor driver) holds the wave with its
 * own reason instead of dropping out of the comparison. Pure.
 *
 * Per stratum, among devices that report any continuous metric (so a canary still in its warm-up is not
 * counted as having lost anything): the metric is lost when at least `lostMetricControlShare` of the
 * control devices report it, canaries report it on at most half that share, and Fisher's exact test
 * says the canaries lack it more often than control does (p < alpha).
 */
import { CONTINUOUS_METRICS, type CanarySnapshot, type ContinuousMetric, type DeviceSummary, type Evidence } from '@fleet/protocol/canary';
import { fisherExact } from '../stats/counts.js';
import type { JudgeConfig } from './judge-config.js';
import { strataOf } from './strata.js';

export interface LostMetric {
  metric: ContinuousMetric;
  stratum: string;
  canaryWith: number;
  canaryReporting: number;
  controlWith: number;
  controlReporting: number;
  p: number;
}

const reportsMetrics = (d: DeviceSummary): boolean => !d.silent && Object.keys(d.metrics).length > 0;

/** Metrics the canaries lost, per stratum. */
export function findLostMetrics(snapshot: CanarySnapshot, cfg: JudgeConfig): LostMetric[] {
  const out: LostMetric[] = [];
  for (const s of strataOf(snapshot, false)) {
    const canary = s.canary.filter(reportsMetrics);
    const control = s.control.filter(reportsMetrics);
    if (canary.length < 2 || control.length < cfg.minDevicesPerMetric) continue;
    for (const metric of CONTINUOUS_METRICS) {
      const controlWith = control.filter((d) => d.metrics[metric]).length;
      const canaryWith = canary.filter((d) => d.metrics[metric]).length;
      const controlShare = controlWith / control.length;
      if (controlWith < cfg.minDevicesPerMetric || controlShare < cfg.lostMetricControlShare) continue;
      if (canaryWith / canary.length > controlShare / 2) continue;
      const p = fisherExact(canary.length - canaryWith, canaryWith, control.length - controlWith, controlWith).pGreater;
      if (p < cfg.alpha) out.push({ metric, stratum: s.key, canaryWith, canaryReporting: canary.length, controlWith, controlReporting: control.length, p });
    }
  }
  return out;
}

export function lostMetricsLayer(snapshot: CanarySnapshot, cfg: JudgeConfig): { evidence: Evidence; lost: LostMetric[]; issues: { rule: string; issue: string }[] } {
  const lost = findLostMetrics(snapshot, cfg);
  const evidence: Evidence = {
    check: 'lost-metrics',
    result: lost.length ? 'flag' : 'pass',
    values: {
      lost: lost.length,
      ...Object.fromEntries(lost.slice(0, 8).map((l, i) => [`lost${i + 1}`, `${l.metric} on ${l.stratum}: canary ${l.canaryWith}/${l.canaryReporting}, control ${l.controlWith}/${l.controlReporting} (p ${Number(l.p.toPrecision(3))})`])),
    },
  };
  const byMetric = new Map<ContinuousMetric, LostMetric[]>();
  for (const l of lost) byMetric.set(l.metric, [...(byMetric.get(l.metric) ?? []), l]);
  const issues = [...byMetric].map(([metric, ls]) => ({
    rule: `lost-metric:${metric}`,
    issue: `canaries stopped reporting ${metric} (${ls.map((l) => `${l.stratum}: ${l.canaryWith} of ${l.canaryReporting} canaries report it, ${l.controlWith} of ${l.controlReporting} control devices`).join('; ')}); a metric that disappears cannot be judged, so the wave holds`,
  }));
  return { evidence, lost, issues };
}
