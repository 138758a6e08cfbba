/**
 * End to end: a good release, then a noisy but good one, reach every online device of a 1,000-device
 * fleet (real coordinator, real agents), with no false abort and nothing bricked.
 */
import { describe, expect, it } from 'vitest';
import { expectCompleted, runScenario } from './e2e-helpers.js';

describe('good releases, 1,000 devices', () => {
  it('reach every online device through every wave, and noise alone aborts nothing', async () => {
    const report = await runScenario({
      name: 'e2e-good',
      description: 'a healthy release, then one with three times the metric noise',
      seed: 101,
      fleet: { offlineShare: 0.02 },
      releases: [
        { version: '1.1.0', behaviour: { kind: 'healthy' }, expect: 'complete' },
        { version: '1.2.0', behaviour: { kind: 'noisy', factor: 3 }, expect: 'complete' },
      ],
    });
    expect(report.releases).toHaveLength(2);
    for (const r of report.releases) {
      expectCompleted(r);
      expect(r.waves.every((w) => w.status === 'passed')).toBe(true);
    }
    expect(report.ok).toBe(true);
  }, 240_000);
});
