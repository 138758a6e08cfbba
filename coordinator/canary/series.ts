/**
 * Reading a v2 snapshot's per-device series: the slots of an onset segment (the window's last
 * fraction), a device's exposure and events over a range of slots, and its metric mean and slope over
 * them. Pure.
 */
import type { CanarySnapshot, ContinuousMetric, DeviceSummary, EventCounter } from '@fleet/protocol/canary';
import { definedProps } from '@fleet/firmware/defined-props';

export interface Segment {
  /** `last-50%` */
  name: string;
  /** First slot index of the segment; it runs to the last slot. */
  from: number;
  /** Hours into the window where the segment starts. */
  startsAtH: number;
  hours: number;
}

/** The onset segments of a snapshot, or none without enough slots. Deduplicated, longest first. */
export function onsetSegments(snapshot: CanarySnapshot, fractions: readonly number[], minSlots: number): Segment[] {
  const slots = snapshot.slots;
  if (!slots || slots.count < minSlots) return [];
  const seen = new Set<number>();
  const out: Segment[] = [];
  for (const f of [...fractions].sort((a, b) => b - a)) {
    const from = Math.min(slots.count - 1, Math.max(1, slots.count - Math.max(1, Math.round(f * slots.count))));
    if (seen.has(from)) continue;
    seen.add(from);
    out.push({
      name: `last-${Math.round(((slots.count - from) / slots.count) * 100)}%`,
      from,
      startsAtH: (slots.from + from * slots.slotMs - snapshot.window.from) / 3_600_000,
      hours: ((slots.count - from) * slots.slotMs) / 3_600_000,
    });
  }
  return out;
}

const sumFrom = (xs: readonly number[] | undefined, from: number): number => {
  if (!xs) return 0;
  let s = 0;
  for (let i = from; i < xs.length; i++) s += xs[i]!;
  return s;
};

/** Device-hours in slots from `from` on (0 without a series). */
export const segmentExposure = (d: DeviceSummary, from: number): number => sumFrom(d.series?.exposureH, from);

/** Events of a counter in slots from `from` on. */
export const segmentEvents = (d: DeviceSummary, counter: EventCounter, from: number): number => sumFrom(d.series?.events[counter], from);

/**
 * A metric over slots from `from` on: the sample-weighted mean, and the least-squares slope per hour
 * of the slot means against slot centres (weighted by samples; needs 3 slots with data).
 */
export function segmentMetric(d: DeviceSummary, metric: ContinuousMetric, from: number, slotH: number): { mean?: number; slopePerH?: number } {
  const m = d.series?.metrics[metric];
  if (!m) return {};
  let w = 0;
  let sw = 0;
  let st = 0;
  let stt = 0;
  let sty = 0;
  let used = 0;
  for (let i = from; i < m.n.length; i++) {
    const n = m.n[i]!;
    if (n <= 0) continue;
    const y = m.mean[i]!;
    const t = (i + 0.5) * slotH;
    used++;
    w += n;
    sw += n * y;
    st += n * t;
    stt += n * t * t;
    sty += n * t * y;
  }
  if (w === 0) return {};
  const den = w * stt - st * st;
  const slope = used >= 3 && Math.abs(den) > 1e-12 ? (w * sty - st * sw) / den : undefined;
  return { mean: sw / w, ...definedProps({ slopePerH: slope }) };
}
