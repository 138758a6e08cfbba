/**
 * Stable device buckets and wave membership. Pure.
 *
 * bucket(id) = (first 4 bytes of SHA-256(UTF-8 id) as a big-endian uint32) mod 1024.
 *
 * A deployment picks an `offset` in 0..1023. A bucket's rank in that deployment is
 * (bucket − offset) mod 1024, and a wave that reaches a cumulative `percent` of the fleet covers the
 * ranks below ceil(percent · 1024 / 100). So waves are nested, each wave adds the next ranks, and a new
 * offset per deployment makes different devices the canaries each time. The coordinator's work to
 * publish a wave is proportional to buckets, never to devices.
 */
import { hash } from 'node:crypto';

export const BUCKET_COUNT = 1024;

export function bucketOf(deviceId: string): number {
  // The one-shot hash: no Hash object per call (every simulated device computes its bucket).
  return hash('sha256', deviceId, 'buffer').readUInt32BE(0) % BUCKET_COUNT;
}

/** Rank of a bucket in a deployment with the given offset: 0 is the first canary bucket. */
export function bucketRank(bucket: number, offset: number): number {
  return (((bucket - offset) % BUCKET_COUNT) + BUCKET_COUNT) % BUCKET_COUNT;
}

/** How many buckets a cumulative percentage covers (at least one bucket for any percent > 0). */
export function bucketsForPercent(percent: number): number {
  if (!(percent >= 0 && percent <= 100)) throw new RangeError(`wave percent must be 0..100, got ${percent}`);
  return Math.min(BUCKET_COUNT, Math.ceil((percent * BUCKET_COUNT) / 100));
}

/**
 * The buckets a wave adds, given the previous wave's cumulative percent and this wave's. Returned in
 * rank order.
 */
export function waveBuckets(offset: number, fromPercent: number, toPercent: number): number[] {
  const from = bucketsForPercent(fromPercent);
  const to = bucketsForPercent(toPercent);
  const out: number[] = [];
  for (let rank = from; rank < to; rank++) out.push((offset + rank) % BUCKET_COUNT);
  return out;
}

/** Index of the wave (0-based) that includes this bucket, for cumulative wave percentages. */
export function waveOfBucket(bucket: number, offset: number, cumulativePercents: readonly number[]): number {
  const rank = bucketRank(bucket, offset);
  for (let i = 0; i < cumulativePercents.length; i++) {
    if (rank < bucketsForPercent(cumulativePercents[i]!)) return i;
  }
  return -1;
}
