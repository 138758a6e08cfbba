/**
 * End to end: every bad behaviour model, rolled out one after another to the same 1,000-device fleet
 * (real coordinator, real agents), is aborted early — exposure within the first wave plus the devices
 * still installing when the abort fired — and every exposed device comes back. Bricking comes last,
 * since it takes devices out of the fleet for good.
 */
import { describe, expect, it } from 'vitest';
import { E2E_TIMEOUT_MS, expectCaughtEarly, runScenario } from './e2e-helpers.js';

describe('bad releases, 1,000 devices', () => {
  it('each behaviour is caught early and rolled back', async () => {
    // A 5% canary that soaks an hour: a 1% wave (about ten devices) cannot judge a battery or CPU shift.
    const report = await runScenario('bad-releases');
    expect(report.releases.map((r) => r.behaviour.kind)).toEqual([
      'battery-drain', 'cpu-regression', 'memory-regression', 'crash-rate', 'subtle', 'boot-loop', 'brick',
    ]);
    for (const r of report.releases) expectCaughtEarly(r);
    const brick = report.releases.at(-1)!;
    expect(brick.bricked.byFirmware).toBeGreaterThan(0);
    expect(brick.bricked.bySystem).toBe(0);
    expect(report.ok).toBe(true);
  }, E2E_TIMEOUT_MS * 2);
});
