/**
 * End to end: every bad behaviour model, rolled out one after another to the same 1,000-device fleet
 * (real coordinator, real agents), is aborted early — exposure within the first wave plus the devices
 * still installing when the abort fired — and every exposed device comes back. Bricking comes last,
 * since it takes devices out of the fleet for good. One simulation; each release is its own case.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { SimulationReport } from '../../simulator/report.js';
import { E2E_TIMEOUT_MS, expectCaughtEarly, runScenario } from './e2e-helpers.js';

const KINDS = ['battery-drain', 'cpu-regression', 'memory-regression', 'crash-rate', 'subtle', 'boot-loop', 'brick'] as const;

describe('bad releases, 1,000 devices', () => {
  let report: SimulationReport;
  beforeAll(async () => {
    // A 5% canary that soaks an hour: a 1% wave (about ten devices) cannot judge a battery or CPU shift.
    report = await runScenario('bad-releases');
  }, E2E_TIMEOUT_MS * 2);

  it('rolls out every behaviour, in order', () => {
    expect(report.releases.map((r) => r.behaviour.kind)).toEqual([...KINDS]);
  });

  it.each(KINDS.map((kind, i) => [kind, i] as const))('%s is caught early and rolled back', (_kind, i) => {
    expectCaughtEarly(report.releases[i]!);
  });

  it('bricks devices only through the firmware, never through the system', () => {
    const brick = report.releases.at(-1)!;
    expect(brick.bricked.byFirmware).toBeGreaterThan(0);
    expect(brick.bricked.bySystem).toBe(0);
    expect(report.ok).toBe(true);
  });
});
