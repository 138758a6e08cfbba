import { describe, expect, it } from 'vitest';
import cron from 'node-cron';
import {
  activeWindow,
  cronMatches,
  isInsideWindow,
  isValidCron,
  nextCronTime,
  nextWindowStart,
  parseCron,
} from '../../coordinator/engine/maintenance-window.js';

const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) => Date.UTC(y, mo - 1, d, h, mi, s);

describe('maintenance windows: cron matcher', () => {
  const expressions = [
    '0 2 * * *',
    '*/15 9-17 * * mon-fri',
    '0 0 1 jan *',
    '0 0 * * 7',
    '0 30 2 * * *',
    '5,10,15-20/2 * * * *',
    '0 22 * * SAT,SUN',
    '61 * * * *',
    '* * *',
    '0 25 * * *',
    '0 0 32 * *',
    '0 0 * 13 *',
    '*/0 * * * *',
    '0 0 * * mon-xyz',
    '5-2 * * * *',
  ];
  it('agrees with node-cron on which expressions are valid', () => {
    for (const e of expressions) expect(isValidCron(e), e).toBe(cron.validate(e));
  });

  it('a wrapping range covers the end and the start of the field', () => {
    expect([...parseCron('0 22-2 * * *').hours].sort((a, b) => a - b)).toEqual([0, 1, 2, 22, 23]);
  });

  it('names the wrong field in its error', () => {
    expect(() => parseCron('0 25 * * *')).toThrow(/hours field "25"/);
    expect(() => parseCron('* * *')).toThrow(/5 or 6 fields/);
  });

  it('finds the next start, skipping months, days and hours', () => {
    const c = parseCron('0 2 * * *');
    expect(nextCronTime(c, utc(2026, 1, 5, 12))).toBe(utc(2026, 1, 6, 2));
    expect(nextCronTime(c, utc(2026, 1, 6, 2))).toBe(utc(2026, 1, 6, 2));
    const weekdays = parseCron('*/15 9-17 * * mon-fri');
    // Saturday 10 Jan 2026 → Monday 12 Jan 09:00.
    expect(nextCronTime(weekdays, utc(2026, 1, 10, 12))).toBe(utc(2026, 1, 12, 9));
    expect(nextCronTime(weekdays, utc(2026, 1, 12, 9, 1))).toBe(utc(2026, 1, 12, 9, 15));
    expect(nextCronTime(parseCron('0 0 29 feb *'), utc(2026, 3, 1))).toBe(utc(2028, 2, 29));
    expect(nextCronTime(parseCron('30 15 10 * * *'), utc(2026, 1, 1))).toBe(utc(2026, 1, 1, 10, 15, 30));
    // Sunday may be written 0 or 7.
    expect(nextCronTime(parseCron('0 0 * * 7'), utc(2026, 1, 5))).toBe(utc(2026, 1, 11));
  });

  it('day-of-month and day-of-week restricted together match either (Vixie cron)', () => {
    const c = parseCron('0 0 13 * fri');
    expect(cronMatches(c, utc(2026, 2, 13))).toBe(true); // Friday the 13th
    expect(cronMatches(c, utc(2026, 1, 13))).toBe(true); // a Tuesday, the 13th
    expect(cronMatches(c, utc(2026, 1, 9))).toBe(true); // a Friday
    expect(cronMatches(c, utc(2026, 1, 10))).toBe(false);
  });

  it('knows whether now is inside a window, and when the next one opens', () => {
    const nightly = [{ cron: '0 2 * * *', durationMs: 2 * 3600_000 }];
    expect(isInsideWindow([], utc(2026, 1, 5, 12))).toBe(true); // no windows: no restriction
    expect(isInsideWindow(nightly, utc(2026, 1, 5, 12))).toBe(false);
    expect(isInsideWindow(nightly, utc(2026, 1, 5, 2))).toBe(true);
    expect(isInsideWindow(nightly, utc(2026, 1, 5, 3, 59, 59))).toBe(true);
    expect(isInsideWindow(nightly, utc(2026, 1, 5, 4))).toBe(false);
    expect(activeWindow(nightly, utc(2026, 1, 5, 3))).toMatchObject({ opensAt: utc(2026, 1, 5, 2), closesAt: utc(2026, 1, 5, 4) });
    expect(nextWindowStart(nightly, utc(2026, 1, 5, 3))).toBe(utc(2026, 1, 6, 2));
    // A window that spans midnight.
    const late = [{ cron: '0 23 * * *', durationMs: 3 * 3600_000 }];
    expect(isInsideWindow(late, utc(2026, 1, 6, 1))).toBe(true);
    // The earliest of several windows.
    expect(nextWindowStart([...nightly, { cron: '0 20 * * *', durationMs: 3600_000 }], utc(2026, 1, 5, 12))).toBe(utc(2026, 1, 5, 20));
  });
});
