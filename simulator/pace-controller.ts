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
   * `lagBudgetSimMs / (lag × scale)`. Default 30 s (at ×300: 100 ms of lag run at full pace) —
   * small against the shortest simulated deadline a device's real work races (20 minutes of
   * silence), and on top of the clock's own cap on what one late wake-up may credit.
   */
  lagBudgetSimMs: number;
  /**
   * Simulated time a real operation may have been in flight before the clock slows for it: the pace
   * is at most `workBudgetSimMs / (age × scale)`. Default 5 minutes (at ×300: one real second).
   */
  workBudgetSimMs: number;
  /**
   * Event-loop utilisation at which the loop has no headroom left: once its lag has also reached
   * half the lag budget, the pace falls by a fifth per window, before the lag breaches the budget.
   * (A loop that is busy but still turns quickly keeps up: its lag says so.) Default 0.97.
   */
  saturatedUtilization: number;
  /** Lowest effective scale (simulated ms per real ms) the pace may fall to. Default 1: real time. */
  minScale: number;
  /** Pace regained per real second once the load is gone. Default 2: from the floor to full in half a second. */
  recoverPerS: number;
}

export const DEFAULT_PACE_TUNING: PaceTuning = {
  lagBudgetSimMs: 30_000,
  workBudgetSimMs: 5 * 60_000,
  saturatedUtilization: 0.97,
  minScale: 1,
  recoverPerS: 2,
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

/** What held the pace below full: event-loop lag, a saturated loop, or real work in flight. */
export type PaceCause = 'lag' | 'saturation' | 'work';

/** The pace the measurements allow, before smoothing (1 when the process keeps up), and what bound it. */
export function allowedPaceOf(current: number, s: PaceSample, scale: number, tuning: PaceTuning): { pace: number; cause: PaceCause | null } {
  let pace = 1;
  let cause: PaceCause | null = null;
  const limit = (p: number, c: PaceCause): void => {
    if (p < pace) {
      pace = p;
      cause = c;
    }
  };
  if (s.lagMs > 0) limit(tuning.lagBudgetSimMs / (s.lagMs * scale), 'lag');
  if (s.oldestWorkMs > 0) limit(tuning.workBudgetSimMs / (s.oldestWorkMs * scale), 'work');
  const lagWarning = tuning.lagBudgetSimMs / (2 * scale);
  if (s.utilization >= tuning.saturatedUtilization && s.lagMs >= lagWarning) limit(current * 0.8, 'saturation');
  return { pace: Math.max(floorPace(scale, tuning), pace), cause };
}

export function allowedPace(current: number, s: PaceSample, scale: number, tuning: PaceTuning): number {
  return allowedPaceOf(current, s, scale, tuning).pace;
}

/**
 * The next pace: down at once to what the window allows (a deadline must never outrun late work),
 * up gradually (`recoverPerS`), so that a load that only just cleared does not come straight back.
 * `cause` is what held it down this window (null when nothing did).
 */
export function nextPaceOf(current: number, s: PaceSample, scale: number, tuning: PaceTuning = DEFAULT_PACE_TUNING): { pace: number; cause: PaceCause | null } {
  const allowed = allowedPaceOf(current, s, scale, tuning);
  if (allowed.pace <= current) return allowed;
  return { pace: Math.min(allowed.pace, current + (tuning.recoverPerS * s.realMs) / 1000), cause: allowed.cause };
}

export function nextPace(current: number, s: PaceSample, scale: number, tuning: PaceTuning = DEFAULT_PACE_TUNING): number {
  return nextPaceOf(current, s, scale, tuning).pace;
}
