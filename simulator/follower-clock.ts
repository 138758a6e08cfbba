/**
 * The clock of a device process: it follows the simulated time of the run's paced clock in the parent
 * process (TimeSync messages, several a second) instead of keeping its own, so that every device and
 * the coordinator share one simulated time. Between syncs it extrapolates at the parent's rate, but
 * never more than the parent's lag budget past the last sync: a parent that stalls stops time here
 * too. It measures its own process's load (event-loop lag and utilisation, the oldest real work in
 * flight) for the parent's pace controller, so the devices' work here holds the pace down as it did
 * when they ran in the parent (docs/simulated-time.md, "Several processes").
 *
 * I/O shell: real timers and perf_hooks. Timers are a heap in simulated time fired in due order, one
 * per turn, as in the paced clock. `stop()` (safe twice) ends the driver; later timers run on plain
 * real timers at the last rate.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { TimerHandle } from '@fleet/protocol/clock';
import { TimerHeap, type HeapTimer } from './timer-heap.js';
import type { RemoteLoad, SimClock, TimeSync } from './paced-clock.js';

interface Timer extends HeapTimer {
  fn: () => void;
  ref: boolean;
}

export interface FollowerClockOptions {
  /** The parent's time when this process starts. */
  initial: TimeSync;
  /** Real ms between wake-ups when no timer is due sooner. Default 20. */
  tickMs?: number;
  /** Real ms after which work in flight stops holding the pace (as the paced clock's). Default 10 s. */
  workHoldMaxMs?: number;
}

const epochNow = (): number => performance.timeOrigin + performance.now();

export class FollowerClock implements SimClock {
  private sync: TimeSync;
  private lastReturned: number;
  private readonly heap = new TimerHeap<Timer>();
  private readonly tickMs: number;
  private readonly workHoldMaxMs: number;
  private seq = 0;
  private refs = 0;
  private driver: NodeJS.Timeout | undefined;
  private wakeAt = 0;
  private draining = false;
  private stopped = false;
  private readonly work = new Map<number, number>();
  private workSeq = 0;
  private windowLag = 0;
  private elu: EventLoopUtilization | undefined;

  constructor(options: FollowerClockOptions) {
    this.sync = options.initial;
    this.lastReturned = options.initial.sim;
    this.tickMs = options.tickMs ?? 20;
    this.workHoldMaxMs = options.workHoldMaxMs ?? 10_000;
  }

  start(): void {
    if (this.driver || this.stopped) return;
    this.elu = performance.eventLoopUtilization();
    this.schedule();
  }

  /** A newer position of the parent's clock. Older ones (reordered) are ignored. */
  follow(sync: TimeSync): void {
    if (sync.epochMs < this.sync.epochMs) return;
    this.sync = sync;
    if (!this.stopped && !this.draining) this.schedule();
  }

  now(): number {
    const exact = this.exactAt(epochNow());
    if (exact > this.lastReturned) this.lastReturned = exact;
    return Math.floor(this.lastReturned);
  }

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

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.add(resolve, ms, true));
  }

  begin(): () => void {
    const id = ++this.workSeq;
    this.work.set(id, performance.now());
    return () => void this.work.delete(id);
  }

  track<T>(work: Promise<T>): Promise<T> {
    return work.finally(this.begin());
  }

  /** This process's load since the previous call, for the parent's pace controller. */
  takeLoad(): RemoteLoad {
    const mark = performance.eventLoopUtilization();
    const utilization = this.elu ? performance.eventLoopUtilization(mark, this.elu).utilization : 0;
    this.elu = mark;
    const lagMs = this.windowLag;
    this.windowLag = 0;
    const t = performance.now();
    let oldestWorkMs = 0;
    for (const started of this.work.values()) {
      const age = t - started;
      if (age <= this.workHoldMaxMs) {
        oldestWorkMs = age;
        break;
      }
    }
    return { lagMs, utilization, oldestWorkMs };
  }

  stop(): void {
    if (this.stopped) return;
    this.lastReturned = Math.max(this.lastReturned, this.exactAt(epochNow()));
    this.sync = { ...this.sync, sim: this.lastReturned, epochMs: epochNow(), leadMs: Number.MAX_SAFE_INTEGER };
    this.stopped = true;
    if (this.driver) clearTimeout(this.driver);
    this.driver = undefined;
    for (const timer of this.heap.drain()) this.detach(timer);
  }

  private exactAt(epoch: number): number {
    const s = this.sync;
    return s.sim + Math.min(Math.max(0, epoch - s.epochMs) * s.rate, s.leadMs);
  }

  private add(fn: () => void, ms: number, ref: boolean): Timer {
    const timer: Timer = { due: this.now() + Math.ceil(Math.max(0, ms)), seq: this.seq++, fn, ref, state: 'pending' };
    if (ref) this.addRef();
    if (this.stopped) {
      this.detach(timer);
      return timer;
    }
    this.heap.push(timer);
    const realDue = performance.now() + (timer.due - this.exactAt(epochNow())) / this.sync.rate;
    if (this.driver && realDue < this.wakeAt - 1 && !this.draining) this.schedule();
    return timer;
  }

  private detach(timer: Timer): void {
    const delay = Math.max(0, (timer.due - this.exactAt(epochNow())) / Math.max(this.sync.rate, 1e-9));
    const real = setTimeout(() => this.fire(timer), Math.ceil(delay));
    if (!timer.ref) real.unref();
  }

  private fire(timer: Timer): void {
    if (timer.state !== 'pending') return;
    timer.state = 'done';
    if (timer.ref) this.unref();
    try {
      timer.fn();
    } catch (err) {
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

  private schedule(): void {
    if (this.driver) clearTimeout(this.driver);
    const t = performance.now();
    let delay = this.tickMs;
    const next = this.heap.peek();
    if (next) delay = Math.min(delay, Math.max(0, (next.due - this.exactAt(epochNow())) / Math.max(this.sync.rate, 1e-9)));
    delay = Math.ceil(delay);
    this.wakeAt = t + delay;
    this.driver = setTimeout(() => this.wake(), delay);
    if (this.refs === 0) this.driver.unref();
  }

  private wake(): void {
    this.driver = undefined;
    if (this.stopped) return;
    this.windowLag = Math.max(this.windowLag, performance.now() - this.wakeAt);
    if (!this.draining) this.fireDue(this.now(), this.seq);
    if (!this.stopped) this.schedule();
  }

  /** Fires the timers due at `now`, one per turn (see PacedClock.fireDue). */
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
