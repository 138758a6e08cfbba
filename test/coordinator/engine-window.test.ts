import { describe, expect, it } from 'vitest';
import {
  activeWindow,
  isInsideWindow,
  isTimeZone,
  isValidCron,
  nextWindowStart,
  windowCron,
} from '../../coordinator/engine/maintenance-window.js';
import { checkSpecSemantics } from '../../coordinator/engine/deployment-spec.js';
import { MaintenanceWindowSchema } from '../../coordinator/engine/spec-schema.js';
import { definedProps } from '../../firmware/defined-props.js';

const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) => Date.UTC(y, mo - 1, d, h, mi, s);
const HOUR = 3600_000;
const next = (cron: string, after: number, timeZone?: string) => nextWindowStart([{ cron, durationMs: HOUR, ...definedProps({ timeZone }) }], after);

describe('maintenance windows: cron', () => {
  it.each([
    ['0 2 * * *', true],
    ['*/15 9-17 * * mon-fri', true],
    ['0 0 1 jan *', true],
    ['0 0 * * 7', true],
    ['0 30 2 * * *', true],
    ['5,10,15-20/2 * * * *', true],
    ['0 22 * * SAT,SUN', true],
    ['0 22-2 * * *', true],
    ['5-2 * * * *', true],
    ['0 0 L * *', true],
    ['0 3 * * fri#2', true],
    ['@daily', true],
    ['61 * * * *', false],
    ['* * *', false],
    ['0 25 * * *', false],
    ['0 0 32 * *', false],
    ['0 0 * 13 *', false],
    ['*/0 * * * *', false],
    ['0 0 * * mon-xyz', false],
    ['0 0 1 1 * 2030', false],
  ])('%s valid: %s', (cron, valid) => {
    expect(isValidCron(cron)).toBe(valid);
  });

  it('says what is wrong and how a window is written', () => {
    expect(() => windowCron({ cron: '0 25 * * *' })).toThrow(/"0 25 \* \* \*": .*hour.*; write minute hour day-of-month month day-of-week/);
    expect(() => windowCron({ cron: '* * *' })).toThrow(/"\* \* \*": .*five, six/);
    expect(() => windowCron({ cron: '0 2 * * *', timeZone: 'Mars/Olympus' })).toThrow(/time zone "Mars\/Olympus" is unknown; give an IANA name/);
  });

  it('a range that wraps (stored before croner) covers the end and the start of the field', () => {
    const starts = (cron: string) => windowCron({ cron }).nextRuns(6, new Date(utc(2026, 1, 5, 12))).map((d) => new Date(d).getUTCHours());
    expect(starts('0 22-2 * * *')).toEqual([22, 23, 0, 1, 2, 22]);
    // The step runs on across the wrap: 22, 1, 4 — never 3 and 23.
    expect(starts('0 22-4/3 * * *')).toEqual([22, 1, 4, 22, 1, 4]);
    expect(next('0 0 * * fri-mon', utc(2026, 1, 6))).toBe(utc(2026, 1, 9)); // Tuesday → Friday
  });

  it('finds the next start, skipping months, days and hours', () => {
    expect(next('0 2 * * *', utc(2026, 1, 5, 12))).toBe(utc(2026, 1, 6, 2));
    // Strictly after: a window opening exactly now is the current one, not the next.
    expect(next('0 2 * * *', utc(2026, 1, 6, 2))).toBe(utc(2026, 1, 7, 2));
    // Saturday 10 Jan 2026 → Monday 12 Jan 09:00.
    expect(next('*/15 9-17 * * mon-fri', utc(2026, 1, 10, 12))).toBe(utc(2026, 1, 12, 9));
    expect(next('*/15 9-17 * * mon-fri', utc(2026, 1, 12, 9, 1))).toBe(utc(2026, 1, 12, 9, 15));
    expect(next('0 0 29 feb *', utc(2026, 3, 1))).toBe(utc(2028, 2, 29));
    expect(next('30 15 10 * * *', utc(2026, 1, 1))).toBe(utc(2026, 1, 1, 10, 15, 30));
    // Sunday may be written 0 or 7.
    expect(next('0 0 * * 7', utc(2026, 1, 5))).toBe(utc(2026, 1, 11));
  });

  it('day-of-month and day-of-week restricted together match either (Vixie cron); + asks for both', () => {
    const starts = (cron: string) => windowCron({ cron }).nextRuns(3, new Date(utc(2026, 1, 1))).map((d) => d.getTime());
    // Friday 2 and 9 January, and Tuesday the 13th.
    expect(starts('0 0 13 * fri')).toEqual([utc(2026, 1, 2), utc(2026, 1, 9), utc(2026, 1, 13)]);
    // Friday the 13th only: February, March, November 2026.
    expect(starts('0 0 13 * +fri')).toEqual([utc(2026, 2, 13), utc(2026, 3, 13), utc(2026, 11, 13)]);
  });

  it('knows whether now is inside a window, and when the next one opens', () => {
    const nightly = [{ cron: '0 2 * * *', durationMs: 2 * HOUR }];
    expect(isInsideWindow([], utc(2026, 1, 5, 12))).toBe(true); // no windows: no restriction
    expect(isInsideWindow(nightly, utc(2026, 1, 5, 12))).toBe(false);
    expect(isInsideWindow(nightly, utc(2026, 1, 5, 2))).toBe(true);
    expect(isInsideWindow(nightly, utc(2026, 1, 5, 3, 59, 59))).toBe(true);
    expect(isInsideWindow(nightly, utc(2026, 1, 5, 4))).toBe(false);
    expect(activeWindow(nightly, utc(2026, 1, 5, 3))).toMatchObject({ opensAt: utc(2026, 1, 5, 2), closesAt: utc(2026, 1, 5, 4) });
    expect(nextWindowStart(nightly, utc(2026, 1, 5, 3))).toBe(utc(2026, 1, 6, 2));
    // A window that spans midnight.
    const late = [{ cron: '0 23 * * *', durationMs: 3 * HOUR }];
    expect(isInsideWindow(late, utc(2026, 1, 6, 1))).toBe(true);
    // The earliest of several windows.
    expect(nextWindowStart([...nightly, { cron: '0 20 * * *', durationMs: HOUR }], utc(2026, 1, 5, 12))).toBe(utc(2026, 1, 5, 20));
  });
});

describe('maintenance windows in a time zone', () => {
  const berlin = [{ cron: '0 2 * * *', durationMs: 4 * HOUR, timeZone: 'Europe/Berlin' }];

  it('opens at the local time: 02:00 in Berlin is 01:00 UTC in winter and 00:00 UTC in summer', () => {
    expect(nextWindowStart(berlin, utc(2026, 1, 5, 12))).toBe(utc(2026, 1, 6, 1));
    expect(nextWindowStart(berlin, utc(2026, 7, 5, 12))).toBe(utc(2026, 7, 6, 0));
    expect(isInsideWindow(berlin, utc(2026, 1, 6, 0, 59, 59))).toBe(false);
    expect(isInsideWindow(berlin, utc(2026, 1, 6, 1))).toBe(true);
    expect(isInsideWindow(berlin, utc(2026, 7, 6, 3, 59, 59))).toBe(true);
    expect(isInsideWindow(berlin, utc(2026, 7, 6, 4))).toBe(false);
  });

  it('follows the clocks going forward: 02:00 does not exist, the window opens at 03:00 CEST', () => {
    // Sunday 29 March 2026: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    const starts = windowCron(berlin[0]!).nextRuns(3, new Date(utc(2026, 3, 27, 12))).map((d) => d.getTime());
    expect(starts).toEqual([utc(2026, 3, 28, 1), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0)]);
    expect(isInsideWindow(berlin, utc(2026, 3, 29, 0, 59))).toBe(false);
    // Four hours of real time: 03:00 to 07:00 CEST.
    expect(activeWindow(berlin, utc(2026, 3, 29, 3))).toMatchObject({ opensAt: utc(2026, 3, 29, 1), closesAt: utc(2026, 3, 29, 5) });
    // A list of times counts as fixed times too: no night is skipped.
    const twice = windowCron({ cron: '30 2,14 * * *', timeZone: 'Europe/Berlin' }).nextRuns(2, new Date(utc(2026, 3, 28, 14))).map((d) => d.getTime());
    expect(twice).toEqual([utc(2026, 3, 29, 1), utc(2026, 3, 29, 12, 30)]);
  });

  it('follows the clocks going back: 02:00 comes twice, the window opens once, at the first', () => {
    // Sunday 25 October 2026: 03:00 CEST goes back to 02:00 CET; 02:00 CEST is 00:00 UTC.
    const starts = windowCron(berlin[0]!).nextRuns(3, new Date(utc(2026, 10, 24, 12))).map((d) => d.getTime());
    expect(starts).toEqual([utc(2026, 10, 25, 0), utc(2026, 10, 26, 1), utc(2026, 10, 27, 1)]);
    expect(activeWindow(berlin, utc(2026, 10, 25, 3, 30))).toMatchObject({ opensAt: utc(2026, 10, 25, 0), closesAt: utc(2026, 10, 25, 4) });
    expect(isInsideWindow(berlin, utc(2026, 10, 25, 4))).toBe(false);
  });

  it('reads windows without a time zone (every window stored before the field) as UTC', () => {
    const stored = MaintenanceWindowSchema.parse({ cron: '0 2 * * *', durationMs: HOUR });
    expect(stored.timeZone).toBeUndefined();
    expect(nextWindowStart([stored], utc(2026, 7, 5, 12))).toBe(utc(2026, 7, 6, 2));
    expect(nextWindowStart([{ ...stored, timeZone: 'UTC' }], utc(2026, 7, 5, 12))).toBe(utc(2026, 7, 6, 2));
  });

  it('a stored window this host cannot read never opens, instead of failing every step', () => {
    const lost = [{ cron: '0 2 * * *', durationMs: HOUR, timeZone: 'Mars/Olympus' }];
    expect(isInsideWindow(lost, utc(2026, 1, 6, 2, 30))).toBe(false);
    expect(nextWindowStart(lost, utc(2026, 1, 5))).toBeUndefined();
    // Another window of the same deployment still opens.
    expect(nextWindowStart([...lost, { cron: '0 3 * * *', durationMs: HOUR }], utc(2026, 1, 5))).toBe(utc(2026, 1, 5, 3));
  });

  it('knows IANA names and refuses others when a deployment is created', () => {
    expect(['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata'].every(isTimeZone)).toBe(true);
    expect(['Mars/Olympus', 'Europe/Atlantis'].some(isTimeZone)).toBe(false);
    expect(MaintenanceWindowSchema.safeParse({ cron: '0 2 * * *', durationMs: HOUR, timeZone: 'Europe/Berlin; rm' }).success).toBe(false);
    const target = { hardwareModels: ['rpi4'], versionRange: '*', tags: [] };
    const windows = (timeZone: string) => [{ cron: '0 2 * * *', durationMs: HOUR, timeZone }];
    expect(() => checkSpecSemantics({ target, maintenanceWindows: windows('Europe/Berlin') }, utc(2026, 1, 5))).not.toThrow();
    expect(() => checkSpecSemantics({ target, maintenanceWindows: windows('Mars/Olympus') }, utc(2026, 1, 5))).toThrow(
      /maintenanceWindows\.0\.timeZone: "Mars\/Olympus" is not a time zone this coordinator knows; give an IANA name such as Europe\/Berlin/,
    );
  });
});
