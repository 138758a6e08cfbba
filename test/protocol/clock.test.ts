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

  it('never runs a timer before its due time, even after the event loop was busy', async () => {
    const clock = scaledClock(5000, 0);
    const late: number[] = [];
    await new Promise<void>((resolve) => {
      let left = 20;
      for (let i = 0; i < 20; i++) {
        // Busy turns make the event loop's cached time lag the wall clock the scaled clock reads.
        const spin = Date.now() + 3;
        while (Date.now() < spin);
        const due = clock.now() + 10_000;
        clock.setTimeout(() => {
          late.push(clock.now() - due);
          if (--left === 0) resolve();
        }, 10_000);
      }
    });
    expect(late).toHaveLength(20);
    expect(Math.min(...late)).toBeGreaterThanOrEqual(0);
  });

  it('a cleared timer does not run', async () => {
    const clock = scaledClock(1000, 0);
    let ran = false;
    const h = clock.setTimeout(() => (ran = true), 5_000);
    await clock.sleep(2_000);
    clock.clearTimeout(h);
    await clock.sleep(6_000);
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
