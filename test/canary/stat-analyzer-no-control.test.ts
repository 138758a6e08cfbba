/**
 * The statistical analyzer on cohorts it cannot fully judge: with no control (the last wave) it
 * abstains with an error record so the hard gates decide; a control that exists but is too thin still
 * holds; a canary wave too small for metric comparisons is judged on its counts, not held forever.
 */
import { describe, expect, it } from 'vitest';
import { CanarySnapshotSchema, type CanarySnapshot, type DeviceSummary } from '../../protocol/canary.js';
import { DEFAULT_GATE_POLICY } from '../../coordinator/gate/analyzer.js';
import { createStatAnalyzer, NO_CONTROL_CODE } from '../../coordinator/canary/stat-judge.js';

function device(i: number, cohort: 'canary' | 'control', exposureH = 10): DeviceSummary {
  const cpu = 20 + ((i * 37) % 17) / 4;
  return {
    deviceId: `${cohort}-${i}`,
    cohort,
    hardwareModel: 'm1',
    firmwareVersion: cohort === 'canary' ? '2.0.0' : '1.0.0',
    exposureH,
    samples: 100,
    silent: false,
    errorSignatures: [],
    logSample: [],
    ...(cohort === 'canary' ? { update: { state: 'committed' as const } } : {}),
    metrics: { cpuPct: { n: 100, mean: cpu, p99: cpu * 1.5 } },
    events: { crashes: 0, errors: 1, reboots: 0, agentRestarts: 0 },
  };
}

function snapshot(canary: number, control: number, controlExposureH = 10): CanarySnapshot {
  const devices = [
    ...Array.from({ length: canary }, (_, i) => device(i, 'canary')),
    ...Array.from({ length: control }, (_, i) => device(i, 'control', controlExposureH)),
  ];
  return CanarySnapshotSchema.parse({ v: 1, kind: 'canary-snapshot', deploymentId: 'd', wave: 3, fromVersions: ['1.0.0'], toVersion: '2.0.0', window: { from: 0, to: 36_000_000 }, takenAt: 36_000_000, devices });
}

const ctx = { policy: DEFAULT_GATE_POLICY, now: 0 };

describe('statistical analyzer without a control cohort', () => {
  it('abstains: an error record with code no-control, never a verdict', async () => {
    const out = await createStatAnalyzer().analyze(snapshot(30, 0), ctx);
    expect(out).toMatchObject({
      ok: false,
      error: { code: NO_CONTROL_CODE, message: 'no devices left on the old firmware to compare against; the hard limits decide this gate' },
    });
    expect(NO_CONTROL_CODE).toBe('no-control');
    expect('verdict' in out).toBe(false);
    expect(out.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it('a control that exists but is too thin still holds at Monitor', async () => {
    const out = await createStatAnalyzer().analyze(snapshot(30, 2, 0.01), ctx);
    expect(out).toMatchObject({ ok: true, verdict: { recommendation: 'Monitor' } });
    if (out.ok) expect(out.verdict.rule).toMatch(/^sufficiency:/);
  });

  it('a healthy canary against an ample control still gets a verdict (Proceed)', async () => {
    const out = await createStatAnalyzer().analyze(snapshot(30, 100), ctx);
    expect(out).toMatchObject({ ok: true, verdict: { recommendation: 'Proceed' } });
  });
});

describe('statistical analyzer on a canary wave smaller than a metric comparison needs', () => {
  it('judges a two-device canary on its counts instead of holding it until the Monitor limit', async () => {
    // Exposure enough for the counts (8 events expected at the control's rate); two devices can never
    // be enough for a metric comparison, and that alone no longer holds the wave.
    const s = snapshot(2, 100);
    const soaked = CanarySnapshotSchema.parse({ ...s, devices: s.devices.map((d) => (d.cohort === 'canary' ? { ...d, exposureH: 40 } : d)) });
    const out = await createStatAnalyzer().analyze(soaked, ctx);
    expect(out).toMatchObject({ ok: true, verdict: { recommendation: 'Proceed' } });
    if (out.ok) expect(out.verdict.issues.join(' ')).not.toMatch(/metric checks have no data/);
  });

  it('still aborts a two-device canary whose crash rate is far above the control', async () => {
    const s = snapshot(2, 100);
    const crashing = CanarySnapshotSchema.parse({
      ...s,
      devices: s.devices.map((d) => (d.cohort === 'canary' ? { ...d, events: { ...d.events, crashes: 12 } } : { ...d, events: { ...d.events, crashes: d.deviceId.endsWith('-0') ? 1 : 0 } })),
    });
    const out = await createStatAnalyzer().analyze(crashing, ctx);
    expect(out).toMatchObject({ ok: true, verdict: { recommendation: 'Abort', rule: 'critical:crashes' } });
  });
});
