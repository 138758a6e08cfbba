import { describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/clock.js';
import { formatDuration, parseDuration } from '../../firmware/duration.js';

describe('systemClock', () => {
  it('reads real time and sleeps in it', async () => {
    const before = Date.now();
    await systemClock.sleep(20);
    expect(systemClock.now() - before).toBeGreaterThanOrEqual(15);
  });

  it('a cleared timer does not run', async () => {
    let ran = false;
    const h = systemClock.setTimeout(() => (ran = true), 10);
    systemClock.clearTimeout(h);
    await systemClock.sleep(30);
    expect(ran).toBe(false);
  });
});

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['45s', 45_000],
    ['30m', 1_800_000],
    ['12h', 43_200_000],
    ['7d', 604_800_000],
    ['1.5h', 5_400_000],
    ['250', 250],
  ])('parses %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('refuses nonsense with the accepted forms in the message', () => {
    expect(() => parseDuration('soon')).toThrow(/30m, 12h or 7d/);
  });

  it('formats the largest whole unit', () => {
    expect(formatDuration(1_800_000)).toBe('30m');
    expect(formatDuration(86_400_000)).toBe('1d');
    expect(formatDuration(1500)).toBe('1500ms');
  });
});
