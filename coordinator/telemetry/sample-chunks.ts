/**
 * Packing of raw telemetry samples into chunks: a sample is its receive time and the six continuous
 * metrics as little-endian float64 (NaN where the device did not report the metric), samples one after
 * another. The samples serve tails (p99) and warm-up cut-offs; rollups carry everything else. Pure.
 */
import { CONTINUOUS_METRICS, type ContinuousMetric } from '@fleet/protocol/canary';

/** Values per sample: `at`, then CONTINUOUS_METRICS in order. */
const WIDTH = 1 + CONTINUOUS_METRICS.length;
const BYTES = WIDTH * 8;

export interface Sample {
  at: number;
  values: Partial<Record<ContinuousMetric, number>>;
}

/** Samples of one device on one firmware version, gathered for one write. */
export class SampleChunk {
  readonly values: number[] = [];
  firstAt = Number.POSITIVE_INFINITY;
  lastAt = Number.NEGATIVE_INFINITY;

  constructor(
    readonly deviceId: string,
    readonly firmwareVersion: string,
  ) {}

  get length(): number {
    return this.values.length / WIDTH;
  }

  add(at: number, metrics: Readonly<Partial<Record<ContinuousMetric, number | undefined>>>): void {
    this.values.push(at);
    for (const name of CONTINUOUS_METRICS) this.values.push(metrics[name] ?? Number.NaN);
    if (at < this.firstAt) this.firstAt = at;
    if (at > this.lastAt) this.lastAt = at;
  }

  pack(): Buffer {
    const buf = Buffer.allocUnsafe(this.values.length * 8);
    for (let i = 0; i < this.values.length; i++) buf.writeDoubleLE(this.values[i]!, i * 8);
    return buf;
  }
}

/** The samples in a packed chunk taken in [from, to]. Throws on a chunk whose length is not whole samples. */
export function unpackSamples(data: Uint8Array, from: number, to: number): Sample[] {
  if (data.length % BYTES !== 0) throw new RangeError(`sample chunk of ${data.length} bytes is not a whole number of ${BYTES}-byte samples`);
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  const out: Sample[] = [];
  for (let off = 0; off < buf.length; off += BYTES) {
    const at = buf.readDoubleLE(off);
    if (at < from || at > to) continue;
    const values: Partial<Record<ContinuousMetric, number>> = {};
    CONTINUOUS_METRICS.forEach((name, i) => {
      const v = buf.readDoubleLE(off + 8 * (i + 1));
      if (!Number.isNaN(v)) values[name] = v;
    });
    out.push({ at, values });
  }
  return out;
}
