import { describe, expect, it } from 'vitest';
import { allowedPace, DEFAULT_PACE_TUNING, floorPace, nextPace, type PaceSample } from '../../simulator/pace-controller.js';

const quiet: PaceSample = { realMs: 100, lagMs: 2, utilization: 0.4, oldestWorkMs: 0 };

describe('pace controller', () => {
  it.each([
    // [what, sample, scale, allowed pace]
    ['a process that keeps up runs at full pace', quiet, 300, 1],
    ['lag within the budget (30 s simulated at ×300 = 100 ms)', { ...quiet, lagMs: 100 }, 300, 1],
    ['twice the lag budget halves the pace', { ...quiet, lagMs: 200 }, 300, 0.5],
    ['a second of lag at ×300: 30 s of simulated time at most', { ...quiet, lagMs: 1000 }, 300, 0.1],
    ['the same lag at ×10 costs less simulated time, so less slowing', { ...quiet, lagMs: 1000 }, 10, 1],
    ['real work in flight for 1 s at ×300 is within 5 simulated minutes', { ...quiet, oldestWorkMs: 1000 }, 300, 1],
    ['real work in flight for 4 s at ×300 slows to a quarter', { ...quiet, oldestWorkMs: 4000 }, 300, 0.25],
    ['a saturated event loop whose lag reached half the budget takes a fifth off', { ...quiet, utilization: 0.99, lagMs: 60 }, 300, 0.8],
    ['a saturated event loop that still turns quickly keeps up', { ...quiet, utilization: 1, lagMs: 20 }, 300, 1],
    ['never below real time', { ...quiet, lagMs: 60_000 }, 300, 1 / 300],
  ] as const)('%s', (_what, sample, scale, pace) => {
    expect(allowedPace(1, sample, scale, DEFAULT_PACE_TUNING)).toBeCloseTo(pace, 6);
  });

  it('falls at once and recovers gradually', () => {
    let pace = nextPace(1, { ...quiet, lagMs: 1000 }, 300);
    expect(pace).toBeCloseTo(0.1, 6);
    // The load is gone: half a second per full recovery (recoverPerS 2), in 100 ms windows.
    const seen: number[] = [];
    for (let i = 0; i < 7; i++) seen.push((pace = nextPace(pace, quiet, 300)));
    expect(seen[0]).toBeCloseTo(0.3, 6);
    expect(seen[2]).toBeCloseTo(0.7, 6);
    expect(seen.at(-1)).toBe(1);
    expect(seen.every((p, i) => i === 0 || p >= seen[i - 1]!)).toBe(true);
  });

  it('a saturated loop keeps taking a fifth off until it has headroom', () => {
    let pace = 1;
    for (let i = 0; i < 5; i++) pace = nextPace(pace, { ...quiet, utilization: 1, lagMs: 80 }, 300);
    expect(pace).toBeCloseTo(0.8 ** 5, 6);
  });

  it('the floor is real time, or full pace for a scale at or below it', () => {
    expect(floorPace(300, DEFAULT_PACE_TUNING)).toBeCloseTo(1 / 300, 9);
    expect(floorPace(1, DEFAULT_PACE_TUNING)).toBe(1);
    expect(allowedPace(1, { ...quiet, lagMs: 10_000, utilization: 1 }, 1, DEFAULT_PACE_TUNING)).toBe(1);
  });
});
