/**
 * A clock for tests of rollouts that last days: real time plus an offset the test moves forward with
 * `jump`. Timers keep their due time on this clock, so a jump fires every timer it passes at once and
 * the rest run in real time as usual — the coordinator and its agents carry on as if days went by.
 */
import type { Clock, TimerHandle } from '../../protocol/clock.js';

interface Pending {
  due: number;
  fn: () => void;
  real: NodeJS.Timeout;
}

export class JumpClock implements Clock {
  private offset = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  now(): number {
    return Date.now() + this.offset;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.arm(id, this.now() + Math.max(0, ms), fn);
    return { _timer: id };
  }

  clearTimeout(handle: TimerHandle): void {
    const t = this.pending.get(handle._timer as number);
    if (!t) return;
    clearTimeout(t.real);
    this.pending.delete(handle._timer as number);
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  /** Moves time forward by `ms`: timers due by then fire now, in due order. */
  jump(ms: number): void {
    this.offset += ms;
    const all = [...this.pending.entries()].sort((a, b) => a[1].due - b[1].due);
    for (const [id, t] of all) {
      clearTimeout(t.real);
      this.arm(id, t.due, t.fn);
    }
  }

  private arm(id: number, due: number, fn: () => void): void {
    const real = setTimeout(() => {
      this.pending.delete(id);
      fn();
    }, Math.max(0, due - this.now()));
    // Like systemClock's: a pending timer never holds a process open by itself.
    real.unref();
    this.pending.set(id, { due, fn, real });
  }
}
