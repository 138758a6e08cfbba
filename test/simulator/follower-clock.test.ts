/**
 * The follower clock of a device process: it follows the parent's time syncs, extrapolates at the
 * parent's rate no further than the lead the sync allows, never runs backwards, fires its timers in
 * simulated-time order, and reports the real work in flight for the parent's pace controller.
 */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { FollowerClock } from '../../simulator/follower-clock.js';
import type { TimeSync } from '../../simulator/paced-clock.js';

const epoch = (): number => performance.timeOrigin + performance.now();
const sync = (sim: number, rate: number, leadMs = Number.MAX_SAFE_INTEGER): TimeSync => ({ sim, epochMs: epoch(), rate, leadMs });

describe('FollowerClock', () => {
  it('stands where the parent says and extrapolates at its rate, up to the lead', async () => {
    const clock = new FollowerClock({ initial: sync(1_000_000, 100, 2_000) });
    clock.start();
    try {
      await new Promise((r) => setTimeout(r, 60));
      // 60+ real ms at ×100 would be 6+ simulated s; the lead caps it at 2 s past the sync.
      expect(clock.now()).toBe(1_002_000);
      clock.follow(sync(5_000_000, 1));
      expect(clock.now()).toBeGreaterThanOrEqual(5_000_000);
      expect(clock.now()).toBeLessThan(5_001_000);
    } finally {
      clock.stop();
    }
  });

  it('never runs backwards and ignores a sync older than the one it has', () => {
    const clock = new FollowerClock({ initial: sync(10_000, 1) });
    const newer = sync(20_000, 1);
    clock.follow(newer);
    clock.follow({ ...newer, sim: 1, epochMs: newer.epochMs - 1 });
    expect(clock.now()).toBeGreaterThanOrEqual(20_000);
    clock.follow({ ...sync(0, 1) });
    expect(clock.now()).toBeGreaterThanOrEqual(20_000);
    clock.stop();
  });

  it('fires timers in simulated-time order as the parent moves time on', async () => {
    const clock = new FollowerClock({ initial: sync(0, 1, 0) });
    clock.start();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b'), 60_000);
    clock.setTimeout(() => fired.push('a'), 30_000);
    const cleared = clock.setTimeout(() => fired.push('never'), 45_000);
    clock.clearTimeout(cleared);
    const done = clock.sleep(90_000).then(() => fired.push('slept'));
    // Held: the lead is 0, so nothing is due until the parent says so.
    await new Promise((r) => setTimeout(r, 50));
    expect(fired).toEqual([]);
    clock.follow(sync(100_000, 1, 0));
    await done;
    expect(fired).toEqual(['a', 'b', 'slept']);
    clock.stop();
  });

  it('reports the oldest real work in flight, and none once it ends', async () => {
    const clock = new FollowerClock({ initial: sync(0, 1) });
    const end = clock.begin();
    await new Promise((r) => setTimeout(r, 20));
    expect(clock.takeLoad().oldestWorkMs).toBeGreaterThanOrEqual(15);
    end();
    expect(clock.takeLoad().oldestWorkMs).toBe(0);
    clock.stop();
  });
});
