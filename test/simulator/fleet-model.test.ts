import { describe, expect, it } from 'vitest';
import { Rng } from '../../simulator/rng.js';
import { composeFleet, fleetSummary } from '../../simulator/fleet-composition.js';
import { bootOutcome, DeviceBehaviourModel } from '../../simulator/behaviour.js';
import { FleetSpecSchema, type Behaviour } from '../../simulator/scenario.js';

const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;

describe('seeded randomness', () => {
  it('repeats for a seed, differs across seeds, and forks independent streams', () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const c = new Rng(8);
    const xa = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xa);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(xa);
    expect(new Rng(7).fork('x').next()).toBe(new Rng(7).fork('x').next());
    expect(new Rng(7).fork('x').next()).not.toBe(new Rng(7).fork('y').next());
  });

  it('draws with the right moments', () => {
    const r = new Rng('moments');
    const n = 20_000;
    const u = Array.from({ length: n }, () => r.next());
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    expect(mean(u)).toBeCloseTo(0.5, 1);
    expect(mean(Array.from({ length: n }, () => r.poisson(2.5)))).toBeCloseTo(2.5, 1);
    expect(mean(Array.from({ length: n }, () => r.normal(10, 2)))).toBeCloseTo(10, 1);
    const hits = Array.from({ length: n }, () => r.chance(0.1)).filter(Boolean).length;
    expect(hits / n).toBeGreaterThan(0.09);
    expect(hits / n).toBeLessThan(0.11);
  });
});

describe('fleet composition', () => {
  const spec = FleetSpecSchema.parse({ offlineShare: 0.1, offlineReturnAfter: '90m', slowLinkShare: 0.2 });

  it('is the same fleet for the same seed and run id', () => {
    expect(composeFleet(spec, 200, 5, 'r1')).toEqual(composeFleet(spec, 200, 5, 'r1'));
    expect(composeFleet(spec, 200, 6, 'r1')).not.toEqual(composeFleet(spec, 200, 5, 'r1'));
  });

  it('mixes hardware models, offline devices and slow links in the specified shares', () => {
    const fleet = composeFleet(spec, 2000, 5, 'r1');
    const summary = fleetSummary(fleet);
    expect(summary.models['rpi4']! / 2000).toBeGreaterThan(0.65);
    expect(summary.models['rpi-zero2']! / 2000).toBeGreaterThan(0.25);
    expect(summary.offline / 2000).toBeGreaterThan(0.08);
    expect(summary.offline / 2000).toBeLessThan(0.12);
    expect(summary.slowLinks / 2000).toBeGreaterThan(0.17);
    expect(fleet.find((d) => d.offline)!.offline!.returnAtMs).toBe(90 * 60_000);
    expect(new Set(fleet.map((d) => d.deviceId)).size).toBe(2000);
    expect(fleet[3]!.deviceId).toBe('r1-d00003');
  });
});

describe('behaviour models', () => {
  const [device] = composeFleet(FleetSpecSchema.parse({}), 1, 1, 'b');
  const run = (behaviour: Behaviour, samples = 300) => {
    const model = new DeviceBehaviourModel(device!.baseline, new Map([['2.0.0', behaviour]]), new Rng('m'), 0.04);
    return Array.from({ length: samples }, (_, i) => model.sample('2.0.0', i * 120_000, 120_000));
  };
  const healthy = run({ kind: 'healthy' });

  it('shifts the metric each regression names, and only that one', () => {
    const cpu = run({ kind: 'cpu-regression', factor: 1.8 });
    expect(mean(cpu.map((s) => s.metrics.cpuPct)) / mean(healthy.map((s) => s.metrics.cpuPct))).toBeGreaterThan(1.6);
    const mem = run({ kind: 'memory-regression', extraMb: 150, leakMbPerH: 40 });
    expect(mem.at(-1)!.metrics.memUsedMb).toBeGreaterThan(mem[0]!.metrics.memUsedMb + 100);
    const drain = run({ kind: 'battery-drain', percent: 35 });
    expect(mean(drain.map((s) => s.metrics.powerW)) / mean(healthy.map((s) => s.metrics.powerW))).toBeCloseTo(1.35, 1);
    expect(mean(drain.map((s) => s.metrics.memUsedMb)) / mean(healthy.map((s) => s.metrics.memUsedMb))).toBeCloseTo(1, 1);
  });

  it('multiplies crashes and logs them', () => {
    const base = run({ kind: 'healthy' }, 2000).reduce((s, x) => s + x.events.crashes, 0);
    const bad = run({ kind: 'crash-rate', factor: 20 }, 2000);
    const crashes = bad.reduce((s, x) => s + x.events.crashes, 0);
    expect(crashes).toBeGreaterThan(5 * Math.max(1, base));
    expect(bad.flatMap((s) => s.logs).some((l) => l.includes('segfault'))).toBe(true);
  });

  it('keeps noisy-but-fine at the same mean with a wider spread', () => {
    const noisy = run({ kind: 'noisy', factor: 3 }, 2000);
    const h = run({ kind: 'healthy' }, 2000);
    const sd = (xs: number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));
    expect(mean(noisy.map((s) => s.metrics.cpuPct)) / mean(h.map((s) => s.metrics.cpuPct))).toBeCloseTo(1, 1);
    expect(sd(noisy.map((s) => s.metrics.cpuPct))).toBeGreaterThan(2 * sd(h.map((s) => s.metrics.cpuPct)));
  });

  it('decides boot loops and bricks per device, repeatably, at the given share', () => {
    const outcomes = Array.from({ length: 1000 }, (_, i) => bootOutcome({ kind: 'brick', share: 0.5 }, new Rng(`d${i}`), '2.0.0'));
    const bricked = outcomes.filter((o) => o === 'brick').length;
    expect(bricked).toBeGreaterThan(430);
    expect(bricked).toBeLessThan(570);
    expect(bootOutcome({ kind: 'boot-loop', share: 1 }, new Rng('x'), '2.0.0')).toBe('boot-loop');
    expect(bootOutcome({ kind: 'healthy' }, new Rng('x'), '2.0.0')).toBe('healthy');
    expect(bootOutcome({ kind: 'brick', share: 0.5 }, new Rng('d1'), '2.0.0')).toBe(outcomes[1]);
  });
});
