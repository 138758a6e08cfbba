/**
 * Admission of MQTT CONNECTs on one broker node: a node takes CONNECTs only as fast as it can answer
 * them. A CONNECT is "in progress" from its authentication until its session is ready (CONNACK sent)
 * or its connection ends; past `maxConnecting` in progress, or past the token bucket's rate, a new one
 * is refused at once — CONNACK 3, server unavailable — before any store, scrypt or Redis work. Without
 * this, a fleet connecting at once (after a restart) queues more CONNECTs than the node can answer
 * within the clients' connect timeout: each one times out, is retried, and is paid for again, and the
 * node stays saturated while answering nobody in time (BENCHMARKS.md §5). A refused client backs off
 * with jitter and tries again, or moves to the next node. Pure (time passed in).
 */

export interface ConnectAdmissionOptions {
  /** CONNECTs in progress at once (authentication to session ready); past it, refused. */
  maxConnecting: number;
  /** New CONNECTs admitted per second, on average (token bucket); 0: no rate limit. */
  perSecond: number;
  /** Admissions the bucket holds, i.e. the largest burst at once. Default: one second's worth (at least 1). */
  burst?: number;
}

/**
 * Defaults: 1,000 in progress, no rate limit. A node's CONNECT takes a few milliseconds of its own
 * work, so a thousand waiting is still answered well within a client's connect timeout (mqtt.js 30 s),
 * while the demo and small fleets never meet the bound.
 */
export const DEFAULT_CONNECT_ADMISSION: ConnectAdmissionOptions = { maxConnecting: 1_000, perSecond: 0 };

export type AdmissionVerdict = { admitted: true } | { admitted: false; by: 'in-progress' | 'rate' };

export class ConnectAdmission {
  private inProgress = 0;
  private tokens: number;
  private refilledAt: number | undefined;
  private readonly burst: number;

  constructor(private readonly o: ConnectAdmissionOptions) {
    this.burst = Math.max(1, o.burst ?? o.perSecond);
    this.tokens = this.burst;
  }

  /** Admits a CONNECT (the caller must `release` it exactly once), or says why not. */
  admit(now: number): AdmissionVerdict {
    if (this.inProgress >= this.o.maxConnecting) return { admitted: false, by: 'in-progress' };
    if (this.o.perSecond > 0) {
      if (this.refilledAt !== undefined) {
        const elapsed = Math.max(0, now - this.refilledAt);
        this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.o.perSecond) / 1000);
      }
      this.refilledAt = now;
      if (this.tokens < 1) return { admitted: false, by: 'rate' };
      this.tokens -= 1;
    }
    this.inProgress++;
    return { admitted: true };
  }

  /** An admitted CONNECT finished: its session is ready, it was refused, or its connection ended. */
  release(): void {
    if (this.inProgress > 0) this.inProgress--;
  }

  /** CONNECTs in progress (metrics, tests). */
  get connecting(): number {
    return this.inProgress;
  }
}
