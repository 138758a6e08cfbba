/**
 * The clock of a device process: it follows the simulated time of the run's paced clock in the parent
 * process (TimeSync messages, several a second) instead of keeping its own, so that every device and
 * the coordinator share one simulated time. Between syncs it extrapolates at the parent's rate, but
 * never more than the parent's lag budget past the last sync: a parent that stalls stops time here
 * too. It measures its own process's load (event-loop lag and utilisation, the oldest real work in
 * flight) for the parent's pace controller, so the devices' work here holds the pace down as it did
 * when they ran in the parent (docs/simulated-time.md, "Several processes").
 *
 * I/O shell: real timers and perf_hooks. Timers are the paced clock's (heap-clock.ts): a heap in
 * simulated time fired in due order, one per turn. `stop()` (safe twice) ends the driver; later timers run on plain
 * real timers at the last rate.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { HeapClock } from './heap-clock.js';
import type { RemoteLoad, SimClock, TimeSync } from './paced-clock.js';

export interface FollowerClockOptions {
  /** The parent's time when this process starts. */
  initial: TimeSync;
  /** Real ms between wake-ups when no timer is due sooner. Default 20. */
  tickMs?: number;
  /** Real ms after which work in flight stops holding the pace (as the paced clock's). Default 10 s. */
  workHoldMaxMs?: number;
}

const epochNow = (): number => performance.timeOrigin + performance.now();

export class FollowerClock extends HeapClock implements SimClock {
  private sync: TimeSync;
  private lastReturned: number;
  private readonly workHoldMaxMs: number;
  private readonly work = new Map<number, number>();
  private workSeq = 0;
  private windowLag = 0;
  private elu: EventLoopUtilization | undefined;

  constructor(options: FollowerClockOptions) {
    super(options.tickMs ?? 20);
    this.sync = options.initial;
    this.lastReturned = options.initial.sim;
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

  override now(): number {
    const exact = this.exactAt(epochNow());
    if (exact > this.lastReturned) this.lastReturned = exact;
    return Math.floor(this.lastReturned);
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
    this.stopDriver();
  }

  private exactAt(epoch: number): number {
    const s = this.sync;
    return s.sim + Math.min(Math.max(0, epoch - s.epochMs) * s.rate, s.leadMs);
  }

  protected override realMsUntil(due: number, t: number): number {
    return (due - this.exactAt(performance.timeOrigin + t)) / Math.max(this.sync.rate, 1e-9);
  }

  protected override mayWakeSooner(): boolean {
    return this.driver !== undefined && !this.draining;
  }

  protected override onWake(t: number): void {
    this.windowLag = Math.max(this.windowLag, t - this.wakeAt);
  }

  protected override firingTime(): number {
    return this.now();
  }
}
