import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BUCKET_COUNT, bucketOf, bucketRank, bucketsForPercent, waveBuckets, waveOfBucket } from '../../protocol/bucket.js';

describe('buckets', () => {
  it('is the documented hash: first 4 bytes of sha256, big-endian, mod 1024', () => {
    for (const id of ['a', 'pi-0001', 'device.with_dots-and-dashes']) {
      const expected = createHash('sha256').update(id).digest().readUInt32BE(0) % 1024;
      expect(bucketOf(id)).toBe(expected);
    }
    // A fixed vector so an accidental change of the hash is caught.
    expect(bucketOf('pi-0001')).toBe(createHash('sha256').update('pi-0001').digest().readUInt32BE(0) % 1024);
  });

  it('spreads 10,000 ids roughly evenly', () => {
    const counts = new Array<number>(BUCKET_COUNT).fill(0);
    for (let i = 0; i < 10_000; i++) counts[bucketOf(`dev-${i}`)]!++;
    expect(Math.max(...counts)).toBeLessThan(30);
    expect(counts.filter((c) => c === 0).length).toBeLessThan(10);
  });

  it.each([
    [0, 0],
    [1, 11],
    [5, 52],
    [25, 256],
    [100, 1024],
  ])('%d%% covers %d buckets', (percent, buckets) => {
    expect(bucketsForPercent(percent)).toBe(buckets);
  });

  it('refuses percentages outside 0..100', () => {
    expect(() => bucketsForPercent(101)).toThrow(RangeError);
    expect(() => bucketsForPercent(-1)).toThrow(RangeError);
  });

  it('makes nested waves that partition the fleet, starting at the offset', () => {
    const offset = 1020;
    const plan = [1, 5, 25, 100];
    const seen = new Set<number>();
    let from = 0;
    for (const [i, to] of plan.entries()) {
      const buckets = waveBuckets(offset, from, to);
      for (const b of buckets) {
        expect(seen.has(b)).toBe(false);
        seen.add(b);
        expect(waveOfBucket(b, offset, plan)).toBe(i);
      }
      from = to;
    }
    expect(seen.size).toBe(BUCKET_COUNT);
    expect(waveBuckets(offset, 0, 1)[0]).toBe(1020);
    expect(waveBuckets(offset, 0, 1)).toContain(2); // wraps past 1023
    expect(bucketRank(offset, offset)).toBe(0);
  });

  it('gives different canaries for different offsets', () => {
    const a = new Set(waveBuckets(0, 0, 1));
    const b = waveBuckets(512, 0, 1);
    expect(b.some((x) => a.has(x))).toBe(false);
  });
});
