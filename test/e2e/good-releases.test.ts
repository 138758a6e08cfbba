/**
 * End to end: a good release, then a noisy but good one, reach every online device of a 1,000-device
 * fleet (real coordinator, real agents), with no false abort and nothing bricked.
 */
import { describe, expect, it } from 'vitest';
import { E2E_TIMEOUT_MS, expectCompleted, runScenario } from './e2e-helpers.js';

describe('good releases, 1,000 devices', () => {
  it('reach every online device through every wave, and noise alone aborts nothing', async () => {
    const report = await runScenario('good-releases');
    expect(report.releases).toHaveLength(2);
    for (const r of report.releases) {
      expectCompleted(r);
      expect(r.waves.every((w) => w.status === 'passed')).toBe(true);
    }
    expect(report.ok).toBe(true);
  }, E2E_TIMEOUT_MS);
});
