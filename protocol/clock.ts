/**
 * The clock seam. Core code never calls Date.now or setTimeout directly; the shell passes a Clock.
 * The simulator passes its paced clock (simulator/paced-clock.ts) so that a 30-minute soak passes in
 * seconds; tests pass a manual one. Pure contract plus the real clock.
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
