/**
 * Per-device telemetry arithmetic: counter deltas from cumulative counters (with resets), running
 * metric sums for mean and least-squares slope, percentiles, error signatures. Pure.
 */
import { CONTINUOUS_METRICS, type ContinuousMetric, type EventCounter, type MetricSummary } from '@fleet/protocol/canary';

export type CounterValues = Record<EventCounter, number>;

export const ZERO_COUNTERS: CounterValues = { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 };

/**
 * Adds the events since the previous cumulative reading `prev` into `into`, allocating nothing (this
 * runs per message). A counter that went down was reset (the agent's data directory was wiped):
 * everything it now shows is new. With no previous reading the caller counts nothing, because it cannot
 * tell when those events happened.
 */
export function addCounterDeltas(into: CounterValues, prev: CounterValues, cur: CounterValues): void {
  into.crashes += cur.crashes >= prev.crashes ? cur.crashes - prev.crashes : cur.crashes;
  into.errors += cur.errors >= prev.errors ? cur.errors - prev.errors : cur.errors;
  into.reboots += cur.reboots >= prev.reboots ? cur.reboots - prev.reboots : cur.reboots;
  into.agentRestarts += cur.agentRestarts >= prev.agentRestarts ? cur.agentRestarts - prev.agentRestarts : cur.agentRestarts;
}

/** Sums for one metric over a span; t in hours from the span's reference time. */
export interface MetricSums {
  n: number;
  sum: number;
  sumsq: number;
  max: number;
  st: number;
  stt: number;
  sty: number;
}

export function emptySums(): MetricSums {
  return { n: 0, sum: 0, sumsq: 0, max: Number.NEGATIVE_INFINITY, st: 0, stt: 0, sty: 0 };
}

export function addSample(s: MetricSums, tH: number, y: number): void {
  s.n++;
  s.sum += y;
  s.sumsq += y * y;
  if (y > s.max) s.max = y;
  s.st += tH;
  s.stt += tH * tH;
  s.sty += tH * y;
}

/** Adds `b` (whose t is measured from a reference `shiftH` hours after a's) into `a`. */
export function mergeSums(a: MetricSums, b: MetricSums, shiftH: number): void {
  a.n += b.n;
  a.sum += b.sum;
  a.sumsq += b.sumsq;
  if (b.max > a.max) a.max = b.max;
  a.stt += b.stt + 2 * shiftH * b.st + b.n * shiftH * shiftH;
  a.sty += b.sty + shiftH * b.sum;
  a.st += b.st + b.n * shiftH;
}

/** Least-squares slope per hour; undefined with fewer than 3 samples or no spread in time. */
export function slopePerHour(s: MetricSums): number | undefined {
  if (s.n < 3) return undefined;
  const den = s.n * s.stt - s.st * s.st;
  if (!(Math.abs(den) > 1e-12)) return undefined;
  return (s.n * s.sty - s.st * s.sum) / den;
}

/** Nearest-rank percentile of unsorted values. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/** Summary for the snapshot; p99 from raw samples when given, else the maximum. */
export function summarize(s: MetricSums, raw: number[] | undefined): MetricSummary | undefined {
  if (s.n === 0) return undefined;
  const slope = slopePerHour(s);
  return {
    n: s.n,
    mean: s.sum / s.n,
    p99: raw && raw.length > 0 ? percentile(raw, 99) : s.max,
    ...(slope !== undefined ? { slopePerH: slope } : {}),
  };
}

/** Error lines with numbers and hex stripped, so the same fault on many devices reads the same. */
export function errorSignature(line: string): string {
  return line
    .replace(/0x[0-9a-fA-F]+/g, '<hex>')
    .replace(/\b[0-9a-fA-F]{8,}\b/g, '<hex>')
    .replace(/\d+(\.\d+)?/g, '<n>')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 256);
}

/** Values per metric in a packed rollup: n, sum, sumsq, max, st, stt, sty. */
const SUMS_WIDTH = 7;
export const PACKED_SUMS_BYTES = CONTINUOUS_METRICS.length * SUMS_WIDTH * 8;

/**
 * A rollup's metric sums as stored: for each of CONTINUOUS_METRICS in order, its seven sums as
 * little-endian float64 (n = 0 for a metric the slot never saw). Text would cost a shortest-digits
 * conversion per double at every commit, several µs per rollup, and -Infinity has no JSON.
 */
export function packSums(metrics: Readonly<Partial<Record<ContinuousMetric, MetricSums>>>): Buffer {
  const out = Buffer.alloc(PACKED_SUMS_BYTES);
  CONTINUOUS_METRICS.forEach((name, m) => {
    const s = metrics[name];
    if (!s || s.n === 0) return;
    const off = m * SUMS_WIDTH * 8;
    out.writeDoubleLE(s.n, off);
    out.writeDoubleLE(s.sum, off + 8);
    out.writeDoubleLE(s.sumsq, off + 16);
    out.writeDoubleLE(s.max, off + 24);
    out.writeDoubleLE(s.st, off + 32);
    out.writeDoubleLE(s.stt, off + 40);
    out.writeDoubleLE(s.sty, off + 48);
  });
  return out;
}

/** The metric sums of a packed rollup; throws on a length that is not the packed size. */
export function unpackSums(data: Uint8Array): Partial<Record<ContinuousMetric, MetricSums>> {
  if (data.length !== PACKED_SUMS_BYTES) throw new RangeError(`packed rollup sums are ${data.length} bytes, expected ${PACKED_SUMS_BYTES}`);
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  const out: Partial<Record<ContinuousMetric, MetricSums>> = {};
  CONTINUOUS_METRICS.forEach((name, m) => {
    const at = (k: number): number => buf.readDoubleLE((m * SUMS_WIDTH + k) * 8);
    const n = at(0);
    if (n > 0) out[name] = { n, sum: at(1), sumsq: at(2), max: at(3), st: at(4), stt: at(5), sty: at(6) };
  });
  return out;
}

export { CONTINUOUS_METRICS };
