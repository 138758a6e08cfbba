/**
 * At most one event per key per interval: the first goes out at once, later ones within the interval
 * are held (the newest replaces the one held) and go out when the key's interval has passed. Devices
 * change many times a second in a busy rollout; a dashboard needs the latest state, not every step.
 * Timers from the injected clock; one timer at a time.
 */
import type { Clock, TimerHandle } from '@fleet/protocol/clock';

export class Coalescer<T> {
  private readonly lastSent = new Map<string, number>();
  private readonly held = new Map<string, T>();
  private timer: { handle: TimerHandle; at: number } | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly send: (key: string, value: T) => void,
  ) {}

  push(key: string, value: T): void {
    const now = this.clock.now();
    const last = this.lastSent.get(key);
    if (last === undefined || now - last >= this.intervalMs) {
      this.held.delete(key);
      this.lastSent.set(key, now);
      this.send(key, value);
      return;
    }
    this.held.set(key, value);
    this.arm(last + this.intervalMs);
  }

  /** Values held, not yet sent. */
  get pending(): number {
    return this.held.size;
  }

  /** Drops what is held and every timer. */
  clear(): void {
    if (this.timer) this.clock.clearTimeout(this.timer.handle);
    this.timer = undefined;
    this.held.clear();
    this.lastSent.clear();
  }

  private arm(at: number): void {
    if (this.timer && this.timer.at <= at) return;
    if (this.timer) this.clock.clearTimeout(this.timer.handle);
    const handle = this.clock.setTimeout(() => this.fire(), Math.max(0, at - this.clock.now()));
    this.timer = { handle, at };
  }

  private fire(): void {
    this.timer = undefined;
    const now = this.clock.now();
    let next: number | undefined;
    for (const [key, value] of [...this.held]) {
      const due = (this.lastSent.get(key) ?? 0) + this.intervalMs;
      if (due <= now) {
        this.held.delete(key);
        this.lastSent.set(key, now);
        this.send(key, value);
      } else if (next === undefined || due < next) next = due;
    }
    // Keys quiet for a whole interval need no memory: their next event goes out at once anyway.
    for (const [key, at] of this.lastSent) if (now - at >= this.intervalMs && !this.held.has(key)) this.lastSent.delete(key);
    if (next !== undefined) this.arm(next);
  }
}
