/**
 * Failed-login throttling per client id and per source address, with exponential backoff. A key
 * (`client id` or `address`) may fail a few times freely; each failure after that blocks it for twice
 * as long as the last, up to a cap, and while it is blocked the broker refuses at once, without
 * spending a password check. A success clears the client id's record. Bounded: idle records are
 * forgotten and the table never holds more than `maxEntries` per kind (oldest dropped first).
 * Pure apart from the injected time (callers pass `now`).
 */

export interface BackoffOptions {
  /** Failures allowed before the first block. */
  freeFailures: number;
  /** The first block; each further failure doubles it. */
  baseMs: number;
  maxMs: number;
  /** A record with no failure for this long (and not blocked) is forgotten. */
  forgetAfterMs: number;
  maxEntries: number;
}

interface Entry {
  failures: number;
  lastFailureAt: number;
  blockedUntil: number;
}

/** One kind of key (client ids or addresses). */
export class BackoffTable {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly o: BackoffOptions) {}

  /** Milliseconds `key` stays blocked (0: not blocked). */
  blockedFor(key: string, now: number): number {
    const e = this.entries.get(key);
    if (!e) return 0;
    if (e.blockedUntil <= now && now - e.lastFailureAt > this.o.forgetAfterMs) {
      this.entries.delete(key);
      return 0;
    }
    return Math.max(0, e.blockedUntil - now);
  }

  /** Records a failure; returns how long the key is now blocked (0: still within its free failures). */
  failure(key: string, now: number): number {
    const e = this.entries.get(key) ?? { failures: 0, lastFailureAt: now, blockedUntil: 0 };
    if (now - e.lastFailureAt > this.o.forgetAfterMs) e.failures = 0;
    e.failures++;
    e.lastFailureAt = now;
    const over = e.failures - this.o.freeFailures;
    if (over > 0) e.blockedUntil = now + Math.min(this.o.maxMs, this.o.baseMs * 2 ** Math.min(30, over - 1));
    // Re-inserted so that Map order is least recently failed first: eviction drops the stalest.
    this.entries.delete(key);
    this.entries.set(key, e);
    if (this.entries.size > this.o.maxEntries) this.evict(now);
    return Math.max(0, e.blockedUntil - now);
  }

  clear(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  private evict(now: number): void {
    for (const [k, e] of this.entries) {
      if (this.entries.size <= this.o.maxEntries) return;
      if (e.blockedUntil <= now) this.entries.delete(k);
    }
    // Everything left is blocked: drop the oldest until within bounds.
    for (const k of this.entries.keys()) {
      if (this.entries.size <= this.o.maxEntries) return;
      this.entries.delete(k);
    }
  }
}

export interface LoginThrottleOptions {
  perClient: BackoffOptions;
  perAddress: BackoffOptions;
}

/**
 * Defaults: a client id may fail 3 times, then 1 s, 2 s, … up to 60 s, its failures forgotten after 10
 * quiet minutes; an address (a whole NAT may sit behind one) may fail 20 times, then 1 s … up to 30 s,
 * its failures forgotten after a quiet minute, so a few misconfigured devices retrying with backoff
 * never block their neighbours.
 */
export const DEFAULT_LOGIN_THROTTLE: LoginThrottleOptions = {
  perClient: { freeFailures: 3, baseMs: 1_000, maxMs: 60_000, forgetAfterMs: 10 * 60_000, maxEntries: 100_000 },
  perAddress: { freeFailures: 20, baseMs: 1_000, maxMs: 30_000, forgetAfterMs: 60_000, maxEntries: 100_000 },
};

export type ThrottleVerdict = { throttled: false } | { throttled: true; by: 'client' | 'address'; retryInMs: number };

export class LoginThrottle {
  private readonly clients: BackoffTable;
  private readonly addresses: BackoffTable;

  constructor(options: LoginThrottleOptions = DEFAULT_LOGIN_THROTTLE) {
    this.clients = new BackoffTable(options.perClient);
    this.addresses = new BackoffTable(options.perAddress);
  }

  check(clientId: string, address: string, now: number): ThrottleVerdict {
    const c = this.clients.blockedFor(clientId, now);
    if (c > 0) return { throttled: true, by: 'client', retryInMs: c };
    const a = this.addresses.blockedFor(address, now);
    if (a > 0) return { throttled: true, by: 'address', retryInMs: a };
    return { throttled: false };
  }

  failed(clientId: string, address: string, now: number): void {
    this.clients.failure(clientId, now);
    this.addresses.failure(address, now);
  }

  /** A correct password: the client id starts afresh (its address keeps its record: others may share it). */
  succeeded(clientId: string): void {
    this.clients.clear(clientId);
  }
}
