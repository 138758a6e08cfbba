/**
 * End to end: the coordinator is killed and restarted on the same data directory in the middle of a
 * rollout. A bad release is still caught early and rolled back, and the good release after it still
 * reaches every online device.
 */
import { describe, expect, it } from 'vitest';
import { E2E_TIMEOUT_MS, expectCaughtEarly, expectCompleted, runScenario } from './e2e-helpers.js';

describe('coordinator restart mid-rollout, 1,000 devices', () => {
  it('changes neither the abort and rollback of a bad release nor the completion of a good one', async () => {
    const report = await runScenario('coordinator-restart');
    expect(report.faults['coordinator-restarts']).toBe(1);
    expectCaughtEarly(report.releases[0]!);
    expectCompleted(report.releases[1]!);
    expect(report.ok).toBe(true);
  }, E2E_TIMEOUT_MS);
});
