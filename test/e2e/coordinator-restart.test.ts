/**
 * End to end: the coordinator is killed and restarted on the same data directory in the middle of a
 * rollout. A bad release is still caught early and rolled back, and the good release after it still
 * reaches every online device. One simulation; each release is its own case.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { SimulationReport } from '../../simulator/report.js';
import { E2E_TIMEOUT_MS, expectCaughtEarly, expectCompleted, runScenario } from './e2e-helpers.js';

describe('coordinator restart mid-rollout, 1,000 devices', () => {
  let report: SimulationReport;
  beforeAll(async () => {
    report = await runScenario('coordinator-restart');
  }, E2E_TIMEOUT_MS);

  it('restarts the coordinator once', () => {
    expect(report.faults['coordinator-restarts']).toBe(1);
  });

  it('still catches the bad release early and rolls it back', () => {
    expectCaughtEarly(report.releases[0]!);
  });

  it('still completes the good release after it', () => {
    expectCompleted(report.releases[1]!);
    expect(report.ok).toBe(true);
  });
});
