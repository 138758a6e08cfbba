/**
 * The simulator's clock: simulated time runs `scale` times faster than real time while the process
 * keeps up, and slower (down to `minScale`, real time by default) while it does not, so that no
 * simulated deadline fires merely because the CPU was busy. One instance drives every agent and the
 * embedded coordinator of a run. See docs/simulated-time.md for the why.
 *
 * - Simulated time is credited from real time at each wake-up of one driver timer: what the wake-up
 *   asked for, plus its lateness up to the lag budget (30 simulated seconds): a stalled event loop
 *   (a busy CPU, a long GC) costs no more simulated time than that. (Unpaced, `pacing: false`, it
 *   is wall-clock time at the scale.)
 * - Each control window (100 ms real) feeds the pace controller (pace-controller.ts, pure) with the
 *   largest event-loop lag, the loop's utilisation and the age of the oldest real operation still in
 *   flight (`track`: downloads, connects, a coordinator restart).
 * - Timers are a heap in simulated time, fired in due order, never before their due time, with the
 *   promise jobs of one callback run before the next (as Node does): heap-clock.ts, shared with the
 *   follower clock of a device process.
 *
 * I/O shell: real timers and perf_hooks. `start()` begins the driver; `stop()` (safe twice) ends it,
 * after which pending and new timers run on plain real timers at the full scale, so nothing that
 * still waits on the clock (a bounded shutdown) hangs.
 */
import { createHistogram, performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { Clock } from '@fleet/protocol/clock';
import { HeapClock } from './heap-clock.js';
import { DEFAULT_PACE_TUNING, floorPace, nextPaceOf, type PaceCause, type PaceTuning } from './pace-controller.js';

export interface PacedClockOptions {
  /** Target simulated milliseconds per real millisecond. */
  scale: number;
  /** Simulated time at the start (default Date.now()). */
  start?: number;
  /**
   * How the pace follows the load (defaults: DEFAULT_PACE_TUNING). `false`: wall-clock time at a
   * fixed scale, stalls included — real time (scale 1) against a coordinator that keeps real time
   * itself, whose clock the devices' must not drift from.
   */
  pacing?: Partial<PaceTuning> | false;
  /** Real ms between wake-ups when no timer is due sooner. Default 20. */
  tickMs?: number;
  /** Real ms per control window. Default 100. */
  windowMs?: number;
  /**
   * Real ms after which an operation still in flight stops holding the pace down: it is stuck, and
   * its own real-time timeout (a download's idle timeout) ends it. Default 10 s.
   */
  workHoldMaxMs?: number;
}

/** What the clock measured over a run (real milliseconds unless said otherwise). */
export interface ClockStats {
  /** Target scale. */
  scale: number;
  paced: boolean;
  realMs: number;
  simulatedMs: number;
  /** Simulated ms per real ms over the run. */
  effectiveScale: number;
  /** The lowest scale a control window ran at. */
  lowestScale: number;
  /** Share of real time run below full pace. */
  slowedShare: number;
  /** Real ms of control windows in which each signal held the pace below full. */
  slowedBy: Record<PaceCause, number>;
  /** Stalls beyond the lag budget, not credited to simulated time. */
  uncreditedMs: number;
  /** Event-loop lag seen by the driver's wake-ups. */
  lagMs: { p50: number; p99: number; max: number };
  /** Real operations tracked, the longest one in flight, and those that overran `workHoldMaxMs`. */
  work: { tracked: number; longestMs: number; stuck: number };
}

/** A clock whose pace follows the load, with a seam for the real work it must wait for. */
export interface SimClock extends Clock {
  /** Counts `work` as real work in flight until it settles; returns it. */
  track<T>(work: Promise<T>): Promise<T>;
  /** Marks the start of real work; call the returned function (idempotent) when it ends. */
  begin(): () => void;
}

/** What a device process that follows this clock measured over its last window (real ms). */
export interface RemoteLoad {
  lagMs: number;
  utilization: number;
  oldestWorkMs: number;
}

/**
 * Where simulated time stands, for a clock in another process to follow: simulated time `sim` at
 * wall-clock time `epochMs` (performance.timeOrigin + performance.now(), shared by every process of
 * the machine), advancing at `rate` simulated ms per real ms until the next sync.
 */
export interface TimeSync {
  sim: number;
  epochMs: number;
  rate: number;
  /** Simulated ms the follower may extrapolate past `sim` without a newer sync (the lag budget). */
  leadMs: number;
}

export class PacedClock extends HeapClock implements SimClock {
  private readonly scale: number;
  private readonly tuning: PaceTuning | null;
  private readonly windowMs: number;
  private readonly workHoldMaxMs: number;
  private pace = 1;
  /** Simulated time at `baseReal` (exact, not rounded). */
  private base: number;
  private baseReal = 0;
  private lastTick = 0;
  private lastReturned: number;
  private readonly simStart: number;
  private realStart = 0;
  private running = false;
  private stoppedAt: number | undefined;
  // Measurements.
  private readonly lag = createHistogram();
  private windowStart = 0;
  private windowLag = 0;
  private elu: EventLoopUtilization | undefined;
  private slowedMs = 0;
  private readonly slowedBy: Record<PaceCause, number> = { lag: 0, saturation: 0, work: 0 };
  private uncreditedMs = 0;
  private lowestScale: number;
  private readonly work = new Map<number, number>();
  private workSeq = 0;
  private workTracked = 0;
  private workLongest = 0;
  private workStuck = new Set<number>();
  /** Load reported by device processes that follow this clock, merged into the current window. */
  private remote: RemoteLoad = { lagMs: 0, utilization: 0, oldestWorkMs: 0 };

  constructor(options: PacedClockOptions) {
    if (!(options.scale > 0) || !Number.isFinite(options.scale)) throw new RangeError(`time scale must be a positive number, got ${options.scale}`);
    super(options.tickMs ?? 20);
    this.scale = options.scale;
    this.tuning = options.pacing === false ? null : { ...DEFAULT_PACE_TUNING, ...options.pacing };
    this.windowMs = options.windowMs ?? 100;
    this.workHoldMaxMs = options.workHoldMaxMs ?? 10_000;
    this.base = this.simStart = this.lastReturned = options.start ?? Date.now();
    this.lowestScale = this.scale;
  }

  /** Starts simulated time. Timers set before run from here. */
  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    const t = performance.now();
    this.realStart = this.baseReal = this.lastTick = this.windowStart = t;
    this.elu = performance.eventLoopUtilization();
    this.schedule(t);
  }

  /** Ends the driver. Pending and later timers run on real timers at the full scale. Safe twice. */
  stop(): void {
    if (this.stopped) return;
    const t = performance.now();
    if (this.running) {
      this.base = Math.max(this.exactAt(t), this.lastReturned);
      this.baseReal = t;
    }
    this.stoppedAt = t;
    this.stopDriver();
  }

  override now(): number {
    const exact = this.exactAt(performance.now());
    if (exact > this.lastReturned) this.lastReturned = exact;
    return Math.floor(this.lastReturned);
  }

  begin(): () => void {
    const id = ++this.workSeq;
    this.work.set(id, performance.now());
    this.workTracked++;
    return () => {
      const started = this.work.get(id);
      if (started === undefined) return;
      this.work.delete(id);
      this.workLongest = Math.max(this.workLongest, performance.now() - started);
    };
  }

  track<T>(work: Promise<T>): Promise<T> {
    return work.finally(this.begin());
  }

  /** Where simulated time stands now, for device processes that follow this clock. */
  timeSync(): TimeSync {
    const t = performance.now();
    const sim = Math.max(this.exactAt(t), this.lastReturned);
    const leadMs = this.tuning && this.running && !this.stopped ? this.tuning.lagBudgetSimMs : Number.MAX_SAFE_INTEGER;
    return { sim, epochMs: performance.timeOrigin + t, rate: this.currentScale, leadMs };
  }

  /**
   * Load measured by a device process that follows this clock: its devices' real work must hold the
   * pace too, as if it ran here. The worst of every report in a window counts for that window.
   */
  noteRemoteLoad(load: RemoteLoad): void {
    const r = this.remote;
    this.remote = { lagMs: Math.max(r.lagMs, load.lagMs), utilization: Math.max(r.utilization, load.utilization), oldestWorkMs: Math.max(r.oldestWorkMs, load.oldestWorkMs) };
  }

  /** The current effective scale (simulated ms per real ms). */
  get currentScale(): number {
    return this.running && !this.stopped ? this.rate() : this.scale;
  }

  stats(): ClockStats {
    const end = this.stoppedAt ?? performance.now();
    const realMs = this.running ? end - this.realStart : 0;
    const simulatedMs = Math.floor(this.stopped ? this.base : this.exactAt(end)) - this.simStart;
    const pct = (p: number): number => (this.lag.count > 0 ? this.lag.percentile(p) : 0);
    return {
      scale: this.scale,
      paced: this.tuning !== null,
      realMs,
      simulatedMs,
      effectiveScale: realMs > 0 ? simulatedMs / realMs : this.scale,
      lowestScale: this.lowestScale,
      slowedShare: realMs > 0 ? Math.min(1, this.slowedMs / realMs) : 0,
      slowedBy: { ...this.slowedBy },
      uncreditedMs: this.uncreditedMs,
      lagMs: { p50: pct(50), p99: pct(99), max: this.lag.count > 0 ? this.lag.max : 0 },
      work: { tracked: this.workTracked, longestMs: Math.max(this.workLongest, this.oldestWork(end)), stuck: this.workStuck.size },
    };
  }

  private rate(): number {
    return this.scale * this.pace;
  }

  /** Simulated time (exact) at real time `t`: never more than the current wake-up may credit. */
  private exactAt(t: number): number {
    if (!this.running) return this.base;
    if (this.stopped || !this.tuning) return this.base + (t - this.baseReal) * this.scale;
    const cap = Math.max(0, this.wakeAt - this.lastTick) + this.graceMs();
    return this.base + Math.min(Math.max(0, t - this.baseReal), cap) * this.rate();
  }

  /** Real lateness a wake-up may credit: one lag budget of simulated time at the current rate. */
  private graceMs(): number {
    return this.tuning ? this.tuning.lagBudgetSimMs / this.rate() : Number.POSITIVE_INFINITY;
  }

  protected override realMsUntil(due: number, t: number): number {
    return (due - this.exactAt(t)) / this.currentScale;
  }

  protected override mayWakeSooner(): boolean {
    return this.running;
  }

  protected override firingTime(): number {
    return Math.floor(this.exactAt(performance.now()));
  }

  /** Credits the simulated time since the last wake-up, and closes a control window when one is over. */
  protected override onWake(t: number): void {
    const dt = Math.max(0, t - this.lastTick);
    const asked = Math.max(0, this.wakeAt - this.lastTick);
    const late = Math.max(0, t - this.wakeAt);
    // A wake-up that came late credits what it asked for plus at most one lag budget, not the stall.
    const credit = Math.min(dt, asked + this.graceMs());
    this.uncreditedMs += dt - credit;
    if (this.pace < 0.999) this.slowedMs += dt;
    this.base = Math.max(this.base + credit * this.rate(), this.lastReturned);
    this.baseReal = this.lastTick = t;
    this.lag.record(Math.max(1, Math.round(late)));
    this.windowLag = Math.max(this.windowLag, late);
    if (t - this.windowStart >= this.windowMs) this.control(t);
  }

  private control(t: number): void {
    const mark = performance.eventLoopUtilization();
    const utilization = this.elu ? performance.eventLoopUtilization(mark, this.elu).utilization : 0;
    this.elu = mark;
    if (this.tuning) {
      const realMs = t - this.windowStart;
      const r = this.remote;
      const sample = { realMs, lagMs: Math.max(this.windowLag, r.lagMs), utilization: Math.max(utilization, r.utilization), oldestWorkMs: Math.max(this.oldestWork(t), r.oldestWorkMs) };
      const next = nextPaceOf(this.pace, sample, this.scale, this.tuning);
      this.pace = Math.max(next.pace, floorPace(this.scale, this.tuning));
      if (next.cause !== null && this.pace < 1) this.slowedBy[next.cause] += realMs;
    }
    this.lowestScale = Math.min(this.lowestScale, this.rate());
    this.windowStart = t;
    this.windowLag = 0;
    this.remote = { lagMs: 0, utilization: 0, oldestWorkMs: 0 };
  }

  /** Real age of the oldest operation in flight that has not overrun the hold limit (0: none). */
  private oldestWork(t: number): number {
    // A Map iterates in insertion order: the first entries are the oldest.
    for (const [id, started] of this.work) {
      const age = t - started;
      if (age <= this.workHoldMaxMs) return age;
      this.workStuck.add(id);
    }
    return 0;
  }
}
