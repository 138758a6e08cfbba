import { describe, expect, it } from 'vitest';
import { ManualClock } from './manual-clock.js';

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
