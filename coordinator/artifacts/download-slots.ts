/**
 * Download slots: at most `global` downloads at once, and at most `perDevice` for one authenticated
 * device, so that neither a reconnect storm nor one device (or whoever holds its secret) can take every
 * slot. A slot is a lease whose release is idempotent, so every path out of a download may call it.
 *
 * A request that finds every slot taken may wait for one in a FIFO queue of at most `queue` places
 * instead of being refused at once: a wave's devices asking together are then served as slots free up,
 * not told to come back after a blind backoff (a retry storm in the field, idle slots in between).
 * A device's queued requests count against its `perDevice` cap like its downloads do, so one device
 * cannot fill the queue either. Bounding the wait is the caller's (it owns the clock). Pure data
 * structure.
 */
export interface SlotLimits {
  global: number;
  perDevice: number;
  /** Requests that may wait for a slot; 0 (the default) refuses at once when every slot is taken. */
  queue?: number;
}

/** A held slot; `release` is idempotent. */
export type Release = () => void;

export type SlotGrant = { ok: true; release: Release } | { ok: false; scope: 'global' | 'device' };

export type SlotRequest =
  | { kind: 'granted'; release: Release }
  /** Waiting: `onGrant` is called (once) when a slot frees up, unless `cancel` was called first. */
  | { kind: 'queued'; cancel: () => void }
  | { kind: 'refused'; scope: 'global' | 'device' };

interface Waiter {
  deviceId: string | undefined;
  onGrant: (release: Release) => void;
  done: boolean;
}

export class DownloadSlots {
  private active = 0;
  /** Slots held plus places queued, per device. */
  private readonly byDevice = new Map<string, number>();
  private readonly waiting: Waiter[] = [];
  /** Live waiters (cancelled ones stay in the array until they reach its head). */
  private queued = 0;

  constructor(private readonly limits: SlotLimits) {}

  /** Downloads holding a slot now. */
  get activeCount(): number {
    return this.active;
  }

  /** Requests waiting for a slot now. */
  get queuedCount(): number {
    return this.queued;
  }

  /** Slots held and places queued by `deviceId`. */
  activeFor(deviceId: string): number {
    return this.byDevice.get(deviceId) ?? 0;
  }

  /** A slot now or a refusal, never a place in the queue (undefined: an anonymous client). */
  acquire(deviceId: string | undefined): SlotGrant {
    const r = this.request(deviceId, () => undefined, false);
    return r.kind === 'granted' ? { ok: true, release: r.release } : { ok: false, scope: r.kind === 'refused' ? r.scope : 'global' };
  }

  /**
   * A slot for `deviceId` (undefined: an anonymous client, bounded by the global limit only): granted
   * now, queued behind earlier requests (granted later through `onGrant`), or refused.
   */
  request(deviceId: string | undefined, onGrant: (release: Release) => void, mayWait = true): SlotRequest {
    if (deviceId !== undefined && this.activeFor(deviceId) >= this.limits.perDevice) return { kind: 'refused', scope: 'device' };
    // Nobody overtakes the queue: a free slot with waiters is about to be theirs.
    if (this.active < this.limits.global && this.queued === 0) {
      this.count(deviceId, 1);
      return { kind: 'granted', release: this.lease(deviceId) };
    }
    if (!mayWait || this.queued >= (this.limits.queue ?? 0)) return { kind: 'refused', scope: 'global' };
    const waiter: Waiter = { deviceId, onGrant, done: false };
    this.waiting.push(waiter);
    this.queued++;
    this.count(deviceId, 1);
    return {
      kind: 'queued',
      cancel: () => {
        if (waiter.done) return;
        waiter.done = true;
        this.queued--;
        this.count(deviceId, -1);
        // Cancelled places behind a long-waiting head would pile up under churn: sweep them now and then.
        if (this.waiting.length > 2 * this.queued + 64) this.waiting.splice(0, this.waiting.length, ...this.waiting.filter((w) => !w.done));
        this.drain();
      },
    };
  }

  private lease(deviceId: string | undefined): Release {
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.count(deviceId, -1);
      this.drain();
    };
  }

  /** Hands free slots to the queue's head, in order. */
  private drain(): void {
    while (this.active < this.limits.global && this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      if (next.done) continue;
      next.done = true;
      this.queued--;
      // Its place already counts against its device; the slot takes it over.
      next.onGrant(this.lease(next.deviceId));
    }
    // Cancelled waiters at the head would otherwise stay until the next release.
    while (this.waiting[0]?.done) this.waiting.shift();
  }

  private count(deviceId: string | undefined, delta: number): void {
    if (deviceId === undefined) return;
    const n = this.activeFor(deviceId) + delta;
    if (n > 0) this.byDevice.set(deviceId, n);
    else this.byDevice.delete(deviceId);
  }
}
