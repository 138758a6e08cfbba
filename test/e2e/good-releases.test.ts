/**
 * End to end: a good release, then a noisy but good one, reach every online device of a 1,000-device
 * fleet (real coordinator, real agents), with no false abort and nothing bricked. One simulation;
 * each release is its own case.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { SimulationReport } from '../../simulator/report.js';
import { E2E_TIMEOUT_MS, expectCompleted, runScenario } from './e2e-helpers.js';

describe('good releases, 1,000 devices', () => {
  let report: SimulationReport;
  beforeAll(async () => {
    report = await runScenario('good-releases');
  }, E2E_TIMEOUT_MS);

  it.each([
    ['the good release', 0],
    ['the noisy but good release', 1],
  ] as const)('%s reaches every online device through every wave', (_what, i) => {
    expect(report.releases).toHaveLength(2);
    const r = report.releases[i]!;
    expectCompleted(r);
    expect(r.waves.every((w) => w.status === 'passed')).toBe(true);
  });

  it('reports the run ok', () => {
    expect(report.ok).toBe(true);
  });
});
