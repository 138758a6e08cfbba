import { afterEach, describe, expect, it, vi } from 'vitest';
import { PacedClock } from '../../simulator/paced-clock.js';

const clocks: PacedClock[] = [];
afterEach(() => {
  while (clocks.length) clocks.pop()!.stop();
});

function started(options: ConstructorParameters<typeof PacedClock>[0]): PacedClock {
  const clock = new PacedClock(options);
  clocks.push(clock);
  clock.start();
  return clock;
}

const spin = (ms: number): void => {
  const end = Date.now() + ms;
  while (Date.now() < end);
};
const realSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('PacedClock', () => {
  it('refuses a scale that is not a positive number', () => {
    expect(() => new PacedClock({ scale: 0 })).toThrow(RangeError);
    expect(() => new PacedClock({ scale: Number.NaN })).toThrow(RangeError);
  });

  it('stands still until started, then runs timers set before', async () => {
    const clock = new PacedClock({ scale: 1000, start: 5_000 });
    clocks.push(clock);
    const fired = clock.sleep(10_000).then(() => clock.now());
    await realSleep(30);
    expect(clock.now()).toBe(5_000);
    clock.start();
    expect(await fired).toBeGreaterThanOrEqual(15_000);
  });

  it('fires timers in due order and never before their due time, even after busy turns', async () => {
    const clock = started({ scale: 2000, start: 0 });
    const fired: { label: number; at: number }[] = [];
    // The clock reads its own time inside setTimeout: a due lies between the readings just before and
    // just after the call (a loaded machine can preempt between them, and the clock runs ×2000).
    const dues: { earliest: number; latest: number }[] = [];
    await new Promise<void>((resolve) => {
      const delays = [9_000, 1_000, 5_000, 3_000, 7_000, 3_000];
      let left = delays.length;
      delays.forEach((ms, label) => {
        // Busy turns between timers: the clock must not credit them to any timer's benefit.
        spin(3);
        const before = clock.now();
        clock.setTimeout(() => {
          fired.push({ label, at: clock.now() });
          if (--left === 0) resolve();
        }, ms);
        dues[label] = { earliest: before + ms, latest: clock.now() + ms };
      });
    });
    const position = new Map(fired.map((f, i) => [f.label, i] as const));
    for (const [a, da] of dues.entries()) {
      for (const [b, db] of dues.entries()) {
        if (da.latest < db.earliest) expect(position.get(a)!, `timer ${a} is due before timer ${b}`).toBeLessThan(position.get(b)!);
      }
    }
    for (const f of fired) expect(f.at).toBeGreaterThanOrEqual(dues[f.label]!.earliest);
  });

  it('a cleared timer does not run', async () => {
    const clock = started({ scale: 1000 });
    let ran = false;
    const h = clock.setTimeout(() => (ran = true), 5_000);
    await clock.sleep(2_000);
    clock.clearTimeout(h);
    clock.clearTimeout(h);
    await clock.sleep(6_000);
    expect(ran).toBe(false);
  });

  it('runs the promise jobs of one timer before the next fires, even when both came due in one wake-up', async () => {
    const clock = started({ scale: 1000 });
    let ran = false;
    const later = clock.setTimeout(() => (ran = true), 5_000);
    const cleared = (async () => {
      await clock.sleep(2_000);
      clock.clearTimeout(later);
    })();
    // A busy turn: the next wake-up finds both due (it credits up to 50 ms, 50 simulated seconds).
    spin(60);
    await cleared;
    await clock.sleep(10_000);
    expect(ran).toBe(false);
  });

  it('does not credit a stalled event loop to simulated time', async () => {
    const clock = started({ scale: 1000, start: 0 });
    await clock.sleep(1);
    const before = clock.now();
    spin(400);
    await clock.sleep(1);
    // 400 ms of real time at ×1000 would be 400 s; one wake-up credits at most what it asked for (up
    // to 20 ms) plus one lag budget (30 s simulated), so the stall costs tens of simulated seconds.
    expect(clock.now() - before).toBeLessThan(200_000);
    const stats = clock.stats();
    expect(stats.uncreditedMs).toBeGreaterThan(300);
    expect(stats.lagMs.max).toBeGreaterThan(300);
  });

  it('slows while real work is in flight too long, and comes back to full pace after it ends', async () => {
    // A tiny work budget: 300 simulated ms at ×300 is one real millisecond.
    const clock = started({ scale: 300, pacing: { workBudgetSimMs: 300 } });
    const end = clock.begin();
    await vi.waitFor(() => expect(clock.currentScale).toBeLessThan(30), { timeout: 10_000, interval: 20 });
    end();
    end();
    await vi.waitFor(() => expect(clock.currentScale).toBe(300), { timeout: 20_000, interval: 50 });
    const stats = clock.stats();
    expect(stats.work.tracked).toBe(1);
    expect(stats.lowestScale).toBeLessThan(30);
    expect(stats.slowedShare).toBeGreaterThan(0);
  });

  it('tracks a promise until it settles, and passes its outcome through', async () => {
    const clock = started({ scale: 10 });
    await expect(clock.track(Promise.resolve(7))).resolves.toBe(7);
    await expect(clock.track(Promise.reject(new Error('no')))).rejects.toThrow('no');
    expect(clock.stats().work.tracked).toBe(2);
  });

  it('an unpaced clock is wall-clock time at its scale, stalls included', async () => {
    const clock = started({ scale: 1, pacing: false });
    const end = clock.begin();
    const wall = Date.now();
    const before = clock.now();
    spin(200);
    await clock.sleep(10);
    // Real time against a real-time coordinator: a stall must not leave the devices' clock behind.
    expect(clock.now() - before).toBeGreaterThanOrEqual(Date.now() - wall - 5);
    expect(clock.currentScale).toBe(1);
    end();
    expect(clock.stats()).toMatchObject({ paced: false, uncreditedMs: 0 });
  });

  it('reads monotonically', async () => {
    const clock = started({ scale: 5000 });
    let last = clock.now();
    for (let i = 0; i < 50; i++) {
      if (i % 10 === 0) spin(30);
      await realSleep(1);
      const t = clock.now();
      expect(t).toBeGreaterThanOrEqual(last);
      last = t;
    }
  });

  it('after stop, pending and new timers still run (at the full scale), and stop is safe twice', async () => {
    const clock = started({ scale: 1000 });
    const pending = clock.sleep(5_000);
    clock.stop();
    clock.stop();
    await pending;
    const t = clock.now();
    await clock.sleep(2_000);
    expect(clock.now()).toBeGreaterThanOrEqual(t + 2_000);
  });
});
