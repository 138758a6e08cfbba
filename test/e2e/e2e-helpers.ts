/**
 * Shared plumbing for the end-to-end tests: a scenario run with the real coordinator (embedded, fresh
 * data directory, unique device ids) and 1,000 simulated devices running the real agent, plus the
 * assertions every rollout must satisfy.
 */
import { beforeAll, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { simulate } from '../../simulator/fleet-runner.js';
import { loadScenario } from '../../simulator/scenario.js';
import { embeddedCoordinator } from '../../simulator/coordinator-handles.js';
import { formatReport } from '../../simulator/report-format.js';
import type { ReleaseReport, SimulationReport } from '../../simulator/report.js';

export const FLEET = 1000;

/**
 * Real-time bound of one end-to-end run. On an idle machine a run takes one to three minutes; on a
 * busy one the paced clock runs simulated time slower (docs/simulated-time.md), so the same soaks
 * take longer in wall time: the bound allows for that instead of letting the load decide the result.
 */
export const E2E_TIMEOUT_MS = 420_000;

/** The e2e scenarios are files, so that `load-check` runs exactly what these tests run. */
export function scenarioPath(name: string): string {
  return fileURLToPath(new URL(`./scenarios/${name}.json`, import.meta.url));
}

export async function runScenario(name: string): Promise<SimulationReport> {
  const scenario = await loadScenario(scenarioPath(name));
  const report = await simulate({
    scenario,
    devices: FLEET,
    runId: `e${randomUUID().slice(0, 6)}`,
    coordinator: (ctx) => embeddedCoordinator(ctx),
  });
  // The readable summary is the first thing to look at when an assertion below fails.
  if (!report.ok) console.log(formatReport(report));
  return report;
}

/** A good release reached every online device, with no false abort. */
export function expectCompleted(r: ReleaseReport): void {
  expect(r.falseAbort, `${r.version} falsely aborted: ${r.problems.join('; ')}`).toBe(false);
  expect(r.outcome).toBe('completed');
  expect(r.reach.online).toBeGreaterThan(FLEET * 0.9);
  expect(r.reach.onVersion).toBe(r.reach.online);
  expect(r.bricked.bySystem).toBe(0);
}

/**
 * A bad release was aborted with exposure no larger than the first wave plus the devices still
 * installing (started, not yet running the release) when the abort fired, and every exposed device (that the firmware itself did not kill) is
 * back on its previous version. Nothing was bricked by the system.
 */
export function expectCaughtEarly(r: ReleaseReport): void {
  expect(['rolled-back', 'aborted'], `${r.version} (${r.behaviour.kind}) outcome ${r.outcome}: ${r.problems.join('; ')}`).toContain(r.outcome);
  // Stopped by the gate: an Abort decision, or the Monitor limit (the gate would not let it proceed).
  expect(r.detectedBy, `${r.version} (${r.behaviour.kind}) was not stopped by the gate`).not.toBeNull();
  expect(r.exposureBound).not.toBeNull();
  expect(r.exposure, `${r.version} (${r.behaviour.kind}) exposure`).toBeLessThanOrEqual(r.exposureBound!);
  expect(r.exposure).toBeGreaterThan(0);
  expect(r.notBack, `${r.version} (${r.behaviour.kind}) exposed devices not back on ${r.previousVersion}`).toEqual([]);
  expect(r.bricked.bySystem).toBe(0);
  expect(r.timeToDetectMs).not.toBeNull();
  expect(r.timeToFullRollbackMs).not.toBeNull();
}

/**
 * The bad-release suite of one scenario, one case per release: the scenario rolls out exactly `kinds`
 * in that order, and each is caught early and rolled back. Returns the report for further cases.
 */
export function badReleaseCases(scenario: string, kinds: readonly string[]): () => SimulationReport {
  let report: SimulationReport | undefined;
  beforeAll(async () => {
    report = await runScenario(scenario);
  }, E2E_TIMEOUT_MS);

  it('rolls out every behaviour, in order', () => {
    expect(report!.releases.map((r) => r.behaviour.kind)).toEqual([...kinds]);
  });

  it.each(kinds.map((kind, i) => [kind, i] as const))('%s is caught early and rolled back', (_kind, i) => {
    expectCaughtEarly(report!.releases[i]!);
    expect(report!.releases[i]!.ok).toBe(true);
  });
  return () => report!;
}
