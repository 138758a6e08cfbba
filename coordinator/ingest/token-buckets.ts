/**
 * Token buckets, one per key (a device id): each holds up to `burst` tokens and refills at
 * `perSecond`; a message takes a token or is shed. Bounded: past `maxKeys`, buckets that have refilled
 * completely (idle devices, which lose nothing by starting full again) are dropped, then the oldest.
 * Pure apart from the injected time.
 */

export interface RateLimit {
  /** Sustained messages per second. */
  perSecond: number;
  /** Messages that may arrive at once after a quiet period. */
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number,
    private readonly maxKeys = 200_000,
  ) {}

  /** Takes a token for `key`: true when the message may pass. */
  take(key: string): boolean {
    const now = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.evict(now);
      b = { tokens: this.limit.burst, at: now };
      this.buckets.set(key, b);
    } else if (now > b.at) {
      b.tokens = Math.min(this.limit.burst, b.tokens + ((now - b.at) * this.limit.perSecond) / 1000);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }

  private evict(now: number): void {
    const fullAfterMs = (this.limit.burst / this.limit.perSecond) * 1000;
    for (const [k, b] of this.buckets) if (now - b.at >= fullAfterMs) this.buckets.delete(k);
    for (const k of this.buckets.keys()) {
      if (this.buckets.size < this.maxKeys) return;
      this.buckets.delete(k);
    }
  }
}
