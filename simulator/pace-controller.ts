/**
 * The pace controller of the simulator's paced clock: from what the process measured over the last
 * window of real time (event-loop lag, event-loop utilisation, the oldest real operation still in
 * flight), how fast simulated time may run next, as a fraction of the target scale. Pure.
 *
 * Why: simulated deadlines (a wave's, the silence limit, a rollback's) wait for real work — downloads,
 * scrypt, SQLite commits, MQTT round trips. A real millisecond of that work costs `scale × pace`
 * simulated milliseconds, so when the machine is busy the pace must fall until the work's simulated
 * cost is back under a budget; when the load goes, the pace comes back. See docs/simulated-time.md.
 */

export interface PaceTuning {
  /**
   * Simulated time one event-loop lag may cost: the pace is at most
   * `lagBudgetSimMs / (lag × scale)`. Default 15 s (at ×300: 50 ms of lag run at full pace).
   */
  lagBudgetSimMs: number;
  /**
   * Simulated time a real operation may have been in flight before the clock slows for it: the pace
   * is at most `workBudgetSimMs / (age × scale)`. Default 5 minutes (at ×300: one real second).
   */
  workBudgetSimMs: number;
  /** Event-loop utilisation at which the loop has no headroom left: the pace falls by a fifth. Default 0.97. */
  saturatedUtilization: number;
  /** Lowest effective scale (simulated ms per real ms) the pace may fall to. Default 1: real time. */
  minScale: number;
  /** Pace regained per real second once the load is gone. Default 1: from the floor to full in a second. */
  recoverPerS: number;
}

export const DEFAULT_PACE_TUNING: PaceTuning = {
  lagBudgetSimMs: 15_000,
  workBudgetSimMs: 5 * 60_000,
  saturatedUtilization: 0.97,
  minScale: 1,
  recoverPerS: 1,
};

/** What one control window measured, all in real milliseconds. */
export interface PaceSample {
  /** Real time the window covered. */
  realMs: number;
  /** The largest event-loop lag seen in the window (a timer's lateness). */
  lagMs: number;
  /** Share of the window the event loop was busy, 0…1. */
  utilization: number;
  /** Age of the oldest real operation still in flight at the window's end (0: none). */
  oldestWorkMs: number;
}

/** The lowest pace for a scale: `minScale` simulated ms per real ms (never above full pace). */
export function floorPace(scale: number, tuning: PaceTuning): number {
  return Math.min(1, tuning.minScale / scale);
}

/** The pace the measurements allow, before smoothing: 1 when the process keeps up. */
export function allowedPace(current: number, s: PaceSample, scale: number, tuning: PaceTuning): number {
  let target = 1;
  if (s.lagMs > 0) target = Math.min(target, tuning.lagBudgetSimMs / (s.lagMs * scale));
  if (s.oldestWorkMs > 0) target = Math.min(target, tuning.workBudgetSimMs / (s.oldestWorkMs * scale));
  if (s.utilization >= tuning.saturatedUtilization) target = Math.min(target, current * 0.8);
  return Math.max(floorPace(scale, tuning), target);
}

/**
 * The next pace: down at once to what the window allows (a deadline must never outrun late work),
 * up gradually (`recoverPerS`), so that a load that only just cleared does not come straight back.
 */
export function nextPace(current: number, s: PaceSample, scale: number, tuning: PaceTuning = DEFAULT_PACE_TUNING): number {
  const target = allowedPace(current, s, scale, tuning);
  if (target <= current) return target;
  return Math.min(target, current + (tuning.recoverPerS * s.realMs) / 1000);
}
