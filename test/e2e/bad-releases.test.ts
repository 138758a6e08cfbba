/**
 * End to end: every bad behaviour model, rolled out one after another to the same 1,000-device fleet
 * (real coordinator, real agents), is aborted early — exposure within the first wave plus the devices
 * still installing when the abort fired — and every exposed device comes back. Bricking comes last,
 * since it takes devices out of the fleet for good.
 */
import { describe, expect, it } from 'vitest';
import { expectCaughtEarly, runScenario } from './e2e-helpers.js';

describe('bad releases, 1,000 devices', () => {
  it('each behaviour is caught early and rolled back', async () => {
    const report = await runScenario({
      name: 'e2e-bad',
      description: 'every bad behaviour model in turn',
      seed: 202,
      // A 1% wave of 1,000 devices is about ten devices: enough for hard failures, too few to judge a
      // battery or CPU shift. This policy opens with a 5% canary that soaks an hour.
      rollout: { waves: [5, 25, 100], soak: '1h' },
      releases: [
        { version: '1.1.0', behaviour: { kind: 'battery-drain', percent: 35 }, expect: 'abort' },
        { version: '1.2.0', behaviour: { kind: 'cpu-regression', factor: 1.8 }, expect: 'abort' },
        { version: '1.3.0', behaviour: { kind: 'memory-regression', extraMb: 150, leakMbPerH: 40 }, expect: 'abort' },
        { version: '1.4.0', behaviour: { kind: 'crash-rate', factor: 20 }, expect: 'abort' },
        { version: '1.5.0', behaviour: { kind: 'subtle', metric: 'cpuPct', shift: 0.25 }, expect: 'abort' },
        { version: '1.6.0', behaviour: { kind: 'boot-loop', share: 1 }, expect: 'abort' },
        { version: '1.7.0', behaviour: { kind: 'brick', share: 0.5 }, expect: 'abort' },
      ],
    });
    expect(report.releases.map((r) => r.behaviour.kind)).toEqual([
      'battery-drain', 'cpu-regression', 'memory-regression', 'crash-rate', 'subtle', 'boot-loop', 'brick',
    ]);
    for (const r of report.releases) expectCaughtEarly(r);
    const brick = report.releases.at(-1)!;
    expect(brick.bricked.byFirmware).toBeGreaterThan(0);
    expect(brick.bricked.bySystem).toBe(0);
    expect(report.ok).toBe(true);
  }, 300_000);
});
