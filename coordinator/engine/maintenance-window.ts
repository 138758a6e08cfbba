/**
 * Maintenance windows: "is `now` inside a window" and "when does the next window open", for cron
 * start times read in an IANA time zone (UTC when a window names none, as every window did before
 * time zones existed). Pure. Croner does the cron and the calendar: its syntax (5 fields, or 6 with
 * leading seconds; names, lists, ranges, steps, `L`, `W`, `#`, `@daily`…), day-of-month OR
 * day-of-week when both are restricted (Vixie cron), and daylight saving time (docs/maintenance-windows.md).
 *
 * A window lasts `durationMs` of real time from each start, so a 4 h window that opens at 02:00 on
 * the night the clocks go back closes at 05:00 by the new wall clock.
 */
import { Cron, CronPattern } from 'croner';
import { ValidationError, errorMessage } from '@fleet/protocol/errors';
import type { MaintenanceWindow } from './types.js';

/** When a window opens: a cron expression and the time zone it is read in. */
export type WindowSchedule = Pick<MaintenanceWindow, 'cron' | 'timeZone'>;

/**
 * A start time in the gap when the clocks go forward opens the window at the first time after it,
 * whether one time or a list or range names it (`0 2,14 * * *`): Vixie cron's rule, so no night's
 * window is skipped. Only wildcards and steps are intervals, whose times in the gap are skipped.
 */
const CRON_OPTIONS = { paused: true, mode: '5-or-6-parts', fixedTimeRule: 'no-wildcard' } as const;

/** True when the host's time zone data knows `name` (e.g. `Europe/Berlin`, `UTC`). */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

const FIELDS: readonly { min: number; max: number; names?: readonly string[]; nameBase?: number }[] = [
  { min: 0, max: 59 },
  { min: 0, max: 59 },
  { min: 0, max: 23 },
  { min: 1, max: 31 },
  { min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'], nameBase: 1 },
  { min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], nameBase: 0 },
];

function fieldValue(token: string, f: (typeof FIELDS)[number]): number | undefined {
  const named = f.names?.indexOf(token.toLowerCase()) ?? -1;
  if (named >= 0) return named + (f.nameBase ?? 0);
  return /^\d+$/.test(token) ? Number(token) : undefined;
}

/**
 * Windows created before croner could use a range that wraps (hours `22-2`), which it refuses: such a
 * range becomes the list of values it covers (lo..max then min..hi, the step running on), so stored
 * deployments keep their windows. Everything else is passed through untouched.
 */
function unwrapRanges(expression: string): string {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5 && parts.length !== 6) return expression;
  const offset = parts.length === 5 ? 1 : 0;
  return parts
    .map((text, i) => {
      const f = FIELDS[i + offset]!;
      return text
        .split(',')
        .map((item) => {
          const m = /^([a-z0-9]+)-([a-z0-9]+)(?:\/(\d+))?$/i.exec(item);
          const lo = m ? fieldValue(m[1]!, f) : undefined;
          const hi = m ? fieldValue(m[2]!, f) : undefined;
          const step = Number(m?.[3] ?? 1);
          if (lo === undefined || hi === undefined || hi >= lo || lo > f.max || hi < f.min || step < 1) return item;
          const span = f.max - f.min + 1;
          const values: number[] = [];
          for (let k = 0; k <= hi - lo + span; k += step) values.push(((lo - f.min + k) % span) + f.min);
          return values.join(',');
        })
        .join(',');
    })
    .join(' ');
}

/**
 * Jobs by zone and expression. The engine asks about windows on every step of a pending wave, and
 * building a job costs several times the question it answers (measured ~170 µs against ~20 µs for a
 * UTC next start); the jobs are never started and never change, so sharing them keeps this module
 * pure. Cleared when full: a coordinator has a handful of distinct windows.
 */
const jobs = new Map<string, Cron>();
const MAX_JOBS = 256;

/** The schedule as a croner job (never started); throws ValidationError saying what is wrong. */
export function windowCron(w: WindowSchedule): Cron {
  const timeZone = w.timeZone ?? 'UTC';
  const key = `${timeZone} ${w.cron}`;
  const known = jobs.get(key);
  if (known) return known;
  if (!isTimeZone(timeZone)) {
    throw new ValidationError('maintenance window', [`time zone ${JSON.stringify(timeZone)} is unknown; give an IANA name such as Europe/Berlin or America/New_York (default UTC)`]);
  }
  let job: Cron;
  try {
    // UTC as a fixed offset: the same times, without a time zone conversion per step (~8× faster).
    job = new Cron(unwrapRanges(w.cron), { ...CRON_OPTIONS, ...(timeZone === 'UTC' ? { utcOffset: 0 } : { timezone: timeZone }) });
  } catch (err) {
    const why = errorMessage(err).replace(/^CronPattern: /, '');
    throw new ValidationError('cron expression', [`${JSON.stringify(w.cron)}: ${why}; write minute hour day-of-month month day-of-week (or 6 fields with leading seconds), e.g. "0 2 * * *"`]);
  }
  if (jobs.size >= MAX_JOBS) jobs.clear();
  jobs.set(key, job);
  return job;
}

/** True when the expression parses. */
export function isValidCron(expression: string): boolean {
  try {
    windowCron({ cron: expression });
    return true;
  } catch {
    return false;
  }
}

/**
 * First start of a stored window strictly after `after`, or undefined when there is none. A window
 * this host cannot read (its zone unknown to this host's time zone data, say after a move) never
 * opens rather than failing every step: the wave waits, visibly, until an operator promotes it.
 */
function nextStart(w: WindowSchedule, after: number): number | undefined {
  let job: Cron;
  try {
    job = windowCron(w);
  } catch {
    return undefined;
  }
  return job.nextRun(new Date(after))?.getTime();
}

const DAY = 24 * 3600_000;
/** How far ahead the next start is looked for: a little over four years covers every leap day. */
const HORIZON_MS = 4 * 366 * DAY;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** Days in each month (February 29: leap years exist). */
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Day-of-month values that never fall in any of the expression's months, named; undefined otherwise. */
function impossibleDays(expression: string): string | undefined {
  const p = new CronPattern(unwrapRanges(expression), undefined, { mode: '5-or-6-parts' });
  // Either day field may match when both are restricted (and every weekday comes round); `L` always does.
  if ((!p.useAndLogic && !p.starDOM && !p.starDOW) || p.lastDayOfMonth || p.lastWeekday) return undefined;
  const days = p.day.flatMap((on, i) => (on || p.nearestWeekdays[i] ? [i + 1] : []));
  const months = p.month.flatMap((on, i) => (on ? [i] : []));
  if (months.some((m) => days.some((d) => d <= DAYS_IN_MONTH[m]!))) return undefined;
  return `day of month ${days.join(',')} never falls in ${months.map((m) => MONTHS[m]).join(',')}`;
}

/**
 * Why a window can never open, or undefined when it can. Without `from`, only the calendar is checked
 * (day 31 in February never comes); with it, also that the window opens within the search horizon
 * after `from` (the engine looks no further, so such a deployment would wait for ever). Deployments
 * are refused with this reason; stored ones are never re-checked. Throws ValidationError when the
 * expression or the time zone is not valid at all.
 */
export function windowNeverOpens(w: WindowSchedule, from?: number): string | undefined {
  const cron = windowCron(w);
  const calendar = impossibleDays(w.cron);
  if (calendar !== undefined) return calendar;
  if (from === undefined) return undefined;
  const next = cron.nextRun(new Date(from))?.getTime();
  if (next === undefined || next > from + HORIZON_MS) {
    return `it does not open within ${Math.round(HORIZON_MS / (365 * DAY))} years of ${new Date(from).toISOString()}`;
  }
  return undefined;
}

/** The window (and its open interval) that contains `now`, if any. */
export function activeWindow(
  windows: readonly MaintenanceWindow[],
  now: number,
): { window: MaintenanceWindow; opensAt: number; closesAt: number } | undefined {
  for (const w of windows) {
    // The earliest start in (now − duration, now] proves that now is inside; it closes soonest.
    const start = nextStart(w, now - w.durationMs);
    if (start !== undefined && start <= now) return { window: w, opensAt: start, closesAt: start + w.durationMs };
  }
  return undefined;
}

/** True with no windows configured (no restriction) or when `now` is inside one. */
export function isInsideWindow(windows: readonly MaintenanceWindow[], now: number): boolean {
  return windows.length === 0 || activeWindow(windows, now) !== undefined;
}

/** The next time any window opens after `now`, or undefined when none ever will. */
export function nextWindowStart(windows: readonly MaintenanceWindow[], now: number): number | undefined {
  let best: number | undefined;
  for (const w of windows) {
    const t = nextStart(w, now);
    if (t !== undefined && (best === undefined || t < best)) best = t;
  }
  return best;
}
