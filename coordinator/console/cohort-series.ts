/**
 * Canary against control over a gate's window, from the canary snapshot the gate judged: per slot
 * (snapshot format 2) each cohort's event rate per device-hour and sample-weighted metric mean, and
 * whole-window totals (every format). What the console plots beside the decision. Pure.
 */
import {
  CONTINUOUS_METRICS,
  EVENT_COUNTERS,
  type CanarySnapshot,
  type Cohort,
  type ContinuousMetric,
  type EventCounter,
} from '@fleet/protocol/canary';
import type { CohortSeries } from '@fleet/protocol/console';

type Totals = CohortSeries['totals']['canary'];

function totals(snapshot: CanarySnapshot, cohort: Cohort): Totals {
  const devices = snapshot.devices.filter((d) => d.cohort === cohort);
  const events = Object.fromEntries(EVENT_COUNTERS.map((e) => [e, 0])) as Record<EventCounter, number>;
  let exposureH = 0;
  const metricSums = new Map<ContinuousMetric, { sum: number; n: number }>();
  for (const d of devices) {
    exposureH += d.exposureH;
    for (const e of EVENT_COUNTERS) events[e] += d.events[e];
    for (const m of CONTINUOUS_METRICS) {
      const s = d.metrics[m];
      if (!s) continue;
      const acc = metricSums.get(m) ?? { sum: 0, n: 0 };
      acc.sum += s.mean;
      acc.n++;
      metricSums.set(m, acc);
    }
  }
  const metrics: Partial<Record<ContinuousMetric, number>> = {};
  for (const [m, s] of metricSums) metrics[m] = s.sum / s.n;
  return { devices: devices.length, exposureH, events, metrics };
}

/** Per slot of one cohort: events per device-hour for each counter, the weighted mean of each metric. */
function slotColumns(snapshot: CanarySnapshot, cohort: Cohort, count: number) {
  const exposure = new Array<number>(count).fill(0);
  const events = new Map<EventCounter, number[]>(EVENT_COUNTERS.map((e) => [e, new Array<number>(count).fill(0)]));
  const weighted = new Map<ContinuousMetric, { sum: number[]; n: number[] }>();
  for (const d of snapshot.devices) {
    if (d.cohort !== cohort || !d.series) continue;
    const s = d.series;
    for (let i = 0; i < count; i++) exposure[i]! += s.exposureH[i] ?? 0;
    for (const e of EVENT_COUNTERS) {
      const col = s.events[e];
      if (!col) continue;
      const acc = events.get(e)!;
      for (let i = 0; i < count; i++) acc[i]! += col[i] ?? 0;
    }
    for (const m of CONTINUOUS_METRICS) {
      const col = s.metrics[m];
      if (!col) continue;
      let acc = weighted.get(m);
      if (!acc) weighted.set(m, (acc = { sum: new Array<number>(count).fill(0), n: new Array<number>(count).fill(0) }));
      for (let i = 0; i < count; i++) {
        const n = col.n[i] ?? 0;
        acc.sum[i]! += n * (col.mean[i] ?? 0);
        acc.n[i]! += n;
      }
    }
  }
  const rates = new Map<EventCounter, (number | null)[]>();
  for (const [e, col] of events) rates.set(e, col.map((v, i) => (exposure[i]! > 0 ? v / exposure[i]! : null)));
  const means = new Map<ContinuousMetric, (number | null)[]>();
  for (const [m, acc] of weighted) means.set(m, acc.sum.map((v, i) => (acc.n[i]! > 0 ? v / acc.n[i]! : null)));
  return { rates, means };
}

export function cohortSeries(snapshot: CanarySnapshot, decisionId: string): CohortSeries {
  const slots = snapshot.v >= 2 ? snapshot.slots : undefined;
  const count = slots?.count ?? 0;
  const canary = slotColumns(snapshot, 'canary', count);
  const control = slotColumns(snapshot, 'control', count);
  const empty = (): (number | null)[] => new Array<number | null>(count).fill(null);
  const events = Object.fromEntries(
    EVENT_COUNTERS.map((e) => [e, { canary: canary.rates.get(e) ?? empty(), control: control.rates.get(e) ?? empty() }]),
  ) as CohortSeries['events'];
  const metrics: CohortSeries['metrics'] = {};
  for (const m of CONTINUOUS_METRICS) {
    const a = canary.means.get(m);
    const b = control.means.get(m);
    if (a || b) metrics[m] = { canary: a ?? empty(), control: b ?? empty() };
  }
  return {
    deploymentId: snapshot.deploymentId,
    decisionId,
    wave: snapshot.wave,
    toVersion: snapshot.toVersion,
    fromVersions: snapshot.fromVersions,
    window: snapshot.window,
    t: slots ? Array.from({ length: count }, (_, i) => slots.from + i * slots.slotMs) : [],
    slotMs: slots?.slotMs ?? null,
    totals: { canary: totals(snapshot, 'canary'), control: totals(snapshot, 'control') },
    events,
    metrics,
  };
}
