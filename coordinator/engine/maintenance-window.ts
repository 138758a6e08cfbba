/**
 * Maintenance windows: a small cron matcher (UTC) that answers "is `now` inside a window" and "when
 * does the next window open". Pure. node-cron schedules jobs but cannot answer either question, so the
 * engine carries its own matcher; the syntax is the one node-cron accepts (5 fields, or 6 with leading
 * seconds; `*`, lists, ranges (wrapping ones like `22-2` too), steps, month and weekday names, 7 = Sunday).
 *
 * Day-of-month and day-of-week follow Vixie cron: when both are restricted, either may match.
 */
import { ValidationError } from '../../protocol/errors.js';
import type { MaintenanceWindow } from './types.js';

export interface CronFields {
  seconds: ReadonlySet<number>;
  minutes: ReadonlySet<number>;
  hours: ReadonlySet<number>;
  daysOfMonth: ReadonlySet<number>;
  months: ReadonlySet<number>;
  daysOfWeek: ReadonlySet<number>;
  domRestricted: boolean;
  dowRestricted: boolean;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

function parseValue(token: string, min: number, max: number, names: readonly string[] | undefined, nameBase: number): number {
  const lower = token.toLowerCase();
  const named = names?.indexOf(lower.slice(0, 3)) ?? -1;
  if (names && named >= 0 && /^[a-z]+$/.test(lower)) return named + nameBase;
  if (!/^\d+$/.test(token)) throw new Error(`${JSON.stringify(token)} is not a number`);
  const n = Number(token);
  if (n < min || n > max) throw new Error(`${n} is outside ${min}-${max}`);
  return n;
}

function parseField(text: string, min: number, max: number, names?: readonly string[], nameBase = 0): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const [rangeText, stepText, extra] = part.split('/');
    if (extra !== undefined || rangeText === undefined || rangeText === '') throw new Error(`${JSON.stringify(part)} is malformed`);
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`step ${JSON.stringify(stepText)} must be a positive integer`);
    let lo: number;
    let hi: number;
    if (rangeText === '*') {
      lo = min;
      hi = max;
    } else if (rangeText.includes('-')) {
      const [a, b] = rangeText.split('-');
      lo = parseValue(a ?? '', min, max, names, nameBase);
      hi = parseValue(b ?? '', min, max, names, nameBase);
    } else {
      lo = parseValue(rangeText, min, max, names, nameBase);
      hi = stepText === undefined ? lo : max;
    }
    if (hi < lo) {
      // A range that wraps (e.g. hours 22-2): node-cron accepts it; it covers lo..max then min..hi.
      const span = max - min + 1;
      for (let k = 0; k <= hi - lo + span; k += step) out.add(((lo - min + k) % span) + min);
    } else {
      for (let v = lo; v <= hi; v += step) out.add(v);
    }
  }
  return out;
}

/** Parses a cron expression; throws ValidationError naming the field that is wrong. */
export function parseCron(expression: string): CronFields {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5 && parts.length !== 6) {
    throw new ValidationError('cron expression', [`${JSON.stringify(expression)} must have 5 or 6 fields, has ${parts.length}`]);
  }
  const f = parts.length === 6 ? parts : ['0', ...parts];
  const names = ['seconds', 'minutes', 'hours', 'day of month', 'month', 'day of week'];
  const specs: [number, number, (readonly string[])?, number?][] = [
    [0, 59],
    [0, 59],
    [0, 23],
    [1, 31],
    [1, 12, MONTHS, 1],
    [0, 7, DAYS, 0],
  ];
  const sets = f.map((text, i) => {
    const [min, max, n, base] = specs[i]!;
    try {
      return parseField(text, min, max, n, base ?? 0);
    } catch (err) {
      throw new ValidationError('cron expression', [`${names[i]} field ${JSON.stringify(text)}: ${(err as Error).message}`]);
    }
  });
  const dow = sets[5]!;
  if (dow.has(7)) dow.add(0);
  dow.delete(7);
  return {
    seconds: sets[0]!,
    minutes: sets[1]!,
    hours: sets[2]!,
    daysOfMonth: sets[3]!,
    months: sets[4]!,
    daysOfWeek: dow,
    domRestricted: f[3] !== '*' && !f[3]!.startsWith('*/'),
    dowRestricted: f[5] !== '*' && !f[5]!.startsWith('*/'),
  };
}

/** True when the expression parses. */
export function isValidCron(expression: string): boolean {
  try {
    parseCron(expression);
    return true;
  } catch {
    return false;
  }
}

function dayMatches(c: CronFields, d: Date): boolean {
  const dom = c.daysOfMonth.has(d.getUTCDate());
  const dow = c.daysOfWeek.has(d.getUTCDay());
  if (c.domRestricted && c.dowRestricted) return dom || dow;
  return dom && dow;
}

/** True when the cron fires at exactly this second (UTC). */
export function cronMatches(c: CronFields, at: number): boolean {
  const d = new Date(at);
  return (
    c.seconds.has(d.getUTCSeconds()) &&
    c.minutes.has(d.getUTCMinutes()) &&
    c.hours.has(d.getUTCHours()) &&
    c.months.has(d.getUTCMonth() + 1) &&
    dayMatches(c, d)
  );
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Search horizon for the next start: a little over four years covers every valid expression (Feb 29). */
const HORIZON_MS = 4 * 366 * DAY;

/** First time ≥ `from` (rounded up to a whole second) at which the cron fires, or undefined. */
export function nextCronTime(c: CronFields, from: number): number | undefined {
  let t = Math.ceil(from / SECOND) * SECOND;
  const end = t + HORIZON_MS;
  while (t <= end) {
    const d = new Date(t);
    if (!c.months.has(d.getUTCMonth() + 1)) {
      t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    } else if (!dayMatches(c, d)) {
      t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
    } else if (!c.hours.has(d.getUTCHours())) {
      t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours() + 1);
    } else if (!c.minutes.has(d.getUTCMinutes())) {
      t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes() + 1);
    } else if (!c.seconds.has(d.getUTCSeconds())) {
      const sec = d.getUTCSeconds();
      let next = sec + 1;
      while (next < 60 && !c.seconds.has(next)) next++;
      t += (next - sec) * SECOND - (t % SECOND);
    } else {
      return t;
    }
  }
  return undefined;
}

/** Days in each month (February 29: leap years exist). */
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Why a window with these start times can never open, or undefined when it can. Without `from`, only
 * the calendar is checked (day 31 in February never comes); with it, also that the window opens
 * within the search horizon after `from` (the engine looks no further, so such a deployment would wait
 * for ever). Deployments are refused with this reason; stored ones are never re-checked.
 */
export function windowNeverOpens(c: CronFields, from?: number): string | undefined {
  // Vixie cron: with both day fields restricted either may match, and every weekday comes round.
  if (!(c.domRestricted && c.dowRestricted)) {
    const months = [...c.months].sort((a, b) => a - b);
    const days = [...c.daysOfMonth].sort((a, b) => a - b);
    if (!months.some((m) => days.some((d) => d <= DAYS_IN_MONTH[m - 1]!))) {
      const names = months.map((m) => MONTHS[m - 1]!.replace(/^./, (x) => x.toUpperCase()));
      return `day of month ${days.join(',')} never falls in ${names.join(',')}`;
    }
  }
  if (from !== undefined && nextCronTime(c, from) === undefined) {
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
    const c = parseCron(w.cron);
    // The earliest start in (now − duration, now] proves that now is inside; it closes soonest.
    const start = nextCronTime(c, now - w.durationMs + 1);
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
    const t = nextCronTime(parseCron(w.cron), now + 1);
    if (t !== undefined && (best === undefined || t < best)) best = t;
  }
  return best;
}
