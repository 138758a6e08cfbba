import { describe, expect, it } from 'vitest';
import { ManualClock, scaledClock } from '../../protocol/clock.js';
import { formatDuration, parseDuration } from '../../firmware/duration.js';

describe('ManualClock', () => {
  it('fires due timers in time order and only when advanced', () => {
    const clock = new ManualClock(1000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b@300'), 300);
    clock.setTimeout(() => fired.push('a@100'), 100);
    const c = clock.setTimeout(() => fired.push('cancelled'), 200);
    clock.clearTimeout(c);
    clock.advance(150);
    expect(fired).toEqual(['a@100']);
    expect(clock.now()).toBe(1150);
    clock.advance(1000);
    expect(fired).toEqual(['a@100', 'b@300']);
  });

  it('runs timers scheduled by timers within the same advance', () => {
    const clock = new ManualClock();
    const fired: number[] = [];
    clock.setTimeout(() => {
      fired.push(clock.now());
      clock.setTimeout(() => fired.push(clock.now()), 50);
    }, 50);
    clock.advance(200);
    expect(fired).toEqual([50, 100]);
  });
});

describe('scaledClock', () => {
  it('runs time faster by its scale', async () => {
    const clock = scaledClock(1000, 0);
    await clock.sleep(20_000); // 20 ms of real time
    expect(clock.now()).toBeGreaterThanOrEqual(19_000);
    expect(() => scaledClock(0)).toThrow(RangeError);
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
