/**
 * What the paced clock and the follower clock share: timers kept in a heap in simulated time, one
 * real driver timer that wakes when the next is due (or each tick), due timers fired in order one per
 * turn, and `ref` counting so that a pending sleep keeps the process alive and a plain timer does not.
 * How simulated time relates to real time, and what a wake-up measures, is each clock's own
 * (docs/simulated-time.md).
 *
 * I/O shell: real timers and perf_hooks. A subclass's `stop()` calls `stopDriver()`, after which
 * pending and new timers run on plain real timers (`realMsUntil` at the rate the clock stopped at).
 */
import { performance } from 'node:perf_hooks';
import type { TimerHandle } from '@fleet/protocol/clock';
import { TimerHeap, type HeapTimer } from './timer-heap.js';

interface Timer extends HeapTimer {
  fn: () => void;
  ref: boolean;
}

export abstract class HeapClock {
  private readonly heap = new TimerHeap<Timer>();
  private seq = 0;
  private refs = 0;
  protected driver: NodeJS.Timeout | undefined;
  /** Real time (performance.now()) the driver is planned to wake at. */
  protected wakeAt = 0;
  /** Due timers are being fired, one per turn. */
  protected draining = false;
  protected stopped = false;

  /** Real ms between wake-ups when no timer is due sooner. */
  protected constructor(private readonly tickMs: number) {}

  /** Simulated time now, whole ms, never going back. */
  abstract now(): number;

  /** Real ms from real time `t` until simulated time `due` at the current rate (negative: past). */
  protected abstract realMsUntil(due: number, t: number): number;

  /** Whether a timer set now that is due before the planned wake-up should bring it forward. */
  protected abstract mayWakeSooner(): boolean;

  /** What a wake-up at real time `t` does before due timers fire (credit time, measure lag). */
  protected abstract onWake(t: number): void;

  /** Simulated time (whole ms) up to which a wake-up fires the timers due. */
  protected abstract firingTime(): number;

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return { _timer: this.add(fn, ms, false) };
  }

  clearTimeout(handle: TimerHandle): void {
    const timer = handle._timer as Timer | undefined;
    if (!timer || timer.state !== 'pending') return;
    timer.state = 'done';
    if (timer.ref) this.unref();
    this.heap.noteCleared();
  }

  /** Unlike a timer, a pending sleep keeps the process alive. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.add(resolve, ms, true));
  }

  /** Ends the driver; pending timers move to plain real timers. For the subclass's `stop()`. */
  protected stopDriver(): void {
    this.stopped = true;
    if (this.driver) clearTimeout(this.driver);
    this.driver = undefined;
    for (const timer of this.heap.drain()) this.detach(timer);
  }

  /** Plans the next wake-up: the next due timer at the current rate, or one tick. */
  protected schedule(t = performance.now()): void {
    if (this.driver) clearTimeout(this.driver);
    let delay = this.tickMs;
    const next = this.heap.peek();
    if (next) delay = Math.min(delay, Math.max(0, this.realMsUntil(next.due, t)));
    delay = Math.ceil(delay);
    this.wakeAt = t + delay;
    this.driver = setTimeout(() => this.wake(), delay);
    if (this.refs === 0) this.driver.unref();
  }

  private add(fn: () => void, ms: number, ref: boolean): Timer {
    // Whole milliseconds, rounded up: `now()` in fn is never before the due time.
    const timer: Timer = { due: this.now() + Math.ceil(Math.max(0, ms)), seq: this.seq++, fn, ref, state: 'pending' };
    if (ref) this.addRef();
    if (this.stopped) {
      this.detach(timer);
      return timer;
    }
    this.heap.push(timer);
    if (this.mayWakeSooner()) {
      // Wake sooner if this timer is due before the planned wake-up.
      const t = performance.now();
      if (t + this.realMsUntil(timer.due, t) < this.wakeAt - 1) this.schedule(t);
    }
    return timer;
  }

  private detach(timer: Timer): void {
    const delay = Math.max(0, this.realMsUntil(timer.due, performance.now()));
    const real = setTimeout(() => {
      // Node's timers count from the event loop's cached time, so one may fire up to a millisecond
      // early by performance.now() — a whole second of simulated time at ×1000: wait out the rest.
      if (timer.state === 'pending' && this.realMsUntil(timer.due, performance.now()) > 0) this.detach(timer);
      else this.fire(timer);
    }, Math.ceil(delay));
    if (!timer.ref) real.unref();
  }

  private fire(timer: Timer): void {
    if (timer.state !== 'pending') return;
    timer.state = 'done';
    if (timer.ref) this.unref();
    try {
      timer.fn();
    } catch (err) {
      // As a throwing timer callback would: reported, without breaking the other timers of this wake-up.
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  private addRef(): void {
    if (this.refs++ === 0) this.driver?.ref();
  }

  private unref(): void {
    if (--this.refs === 0) this.driver?.unref();
  }

  private wake(): void {
    this.driver = undefined;
    if (this.stopped) return;
    this.onWake(performance.now());
    if (!this.draining) this.fireDue(this.firingTime(), this.seq);
    if (!this.stopped) this.schedule();
  }

  /**
   * Fires the timers due at `now`, in due order, one per turn: as with Node's timers, the promise jobs
   * a callback queued (an `await clock.sleep()` going on) run before the next timer fires. Timers set
   * meanwhile (seq from `limit` on) wait for the next wake-up.
   */
  private fireDue(now: number, limit: number): void {
    const due = (x: Timer | undefined): x is Timer => x !== undefined && x.due <= now && x.seq < limit;
    const top = this.heap.peek();
    this.draining = false;
    if (this.stopped || !due(top)) return;
    this.heap.pop();
    this.fire(top);
    if (!this.stopped && due(this.heap.peek())) {
      this.draining = true;
      setImmediate(() => this.fireDue(now, limit));
    }
  }
}
