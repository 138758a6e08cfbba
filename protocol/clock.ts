/**
 * The clock seam. Core code never calls Date.now or setTimeout directly; the shell passes a Clock.
 * The simulator passes an accelerated one so that a 30-minute soak passes in seconds.
 */
export interface TimerHandle {
  /** Opaque. */
  readonly _timer: unknown;
}

export interface Clock {
  /** Milliseconds since the epoch, in this clock's time. */
  now(): number;
  /** Calls fn after `ms` of this clock's time. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** Resolves after `ms` of this clock's time. */
  sleep(ms: number): Promise<void>;
}

/** Real time. `unref` timers so a pending timer never holds a process open by itself. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { _timer: t };
  },
  clearTimeout(handle) {
    clearTimeout(handle._timer as NodeJS.Timeout);
  },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * Real time running `scale` times faster, anchored at construction. One instance is shared by every
 * component of a simulated run.
 */
export function scaledClock(scale: number, start: number = Date.now()): Clock {
  if (!(scale > 0)) throw new RangeError(`time scale must be > 0, got ${scale}`);
  const realStart = Date.now();
  const now = (): number => Math.round(start + (Date.now() - realStart) * scale);
  // Node's timers run on the event loop's cached time, which lags Date.now after a busy turn: a timer
  // fires up to a few real ms early, and the scale makes that seconds of this clock. A timer that wakes
  // before it is due waits out the rest, so `now()` in fn is never before the due time.
  const after = (fn: () => void, ms: number, unref: boolean): { _timer: NodeJS.Timeout | undefined } => {
    const due = now() + ms;
    const handle: { _timer: NodeJS.Timeout | undefined } = { _timer: undefined };
    const wait = (left: number): void => {
      handle._timer = setTimeout(() => {
        const rest = due - now();
        if (rest > 0) wait(rest);
        else fn();
      }, Math.max(0, left / scale));
      if (unref) handle._timer.unref();
    };
    wait(ms);
    return handle;
  };
  return {
    now,
    setTimeout: (fn, ms) => after(fn, ms, true),
    clearTimeout(handle) {
      clearTimeout(handle._timer as NodeJS.Timeout);
    },
    sleep: (ms) => new Promise((resolve) => after(resolve, ms, false)),
  };
}

/** A manual clock for tests: time moves only when `advance` is called. */
export class ManualClock implements Clock {
  private current: number;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  constructor(start = 0) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { at: this.current + Math.max(0, ms), fn });
    return { _timer: id };
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle._timer as number);
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= target && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.timers.delete(next[0]);
      this.current = next[1].at;
      next[1].fn();
    }
    this.current = target;
  }
}
