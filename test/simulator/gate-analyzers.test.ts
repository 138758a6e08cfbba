import { describe, expect, it } from 'vitest';
import { gateAnalyzers } from '../../simulator/coordinator-handles.js';
import { CanarySnapshotSchema, type CanarySnapshot } from '../../protocol/canary.js';
import { createStatAnalyzer, DEFAULT_GATE_POLICY, hardGatesAnalyzer, NO_CONTROL_CODE } from '../../coordinator/index.js';

function device(id: string, cohort: 'canary' | 'control', cpu: number) {
  return {
    deviceId: id,
    cohort,
    hardwareModel: 'rpi4',
    firmwareVersion: cohort === 'canary' ? '1.1.0' : '1.0.0',
    exposureH: 1,
    samples: 30,
    events: { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 },
    metrics: { cpuPct: { n: 30, mean: cpu, p99: cpu * 1.1 } },
    ...(cohort === 'canary' ? { update: { state: 'committed' as const } } : {}),
  };
}

function snapshot(devices: ReturnType<typeof device>[]): CanarySnapshot {
  return CanarySnapshotSchema.parse({
    v: 1, kind: 'canary-snapshot', deploymentId: 'd1', wave: 0, fromVersions: ['1.0.0'], toVersion: '1.1.0',
    window: { from: 0, to: 3_600_000 }, takenAt: 3_600_000, devices,
  });
}

describe('the simulator gate', () => {
  const ctx = { policy: DEFAULT_GATE_POLICY, now: 3_600_000 };

  it('runs the coordinator\'s default analyzers; only a run without the judge pins the hard gates', () => {
    expect(gateAnalyzers(true)).toBeUndefined();
    expect(gateAnalyzers(false)).toEqual([hardGatesAnalyzer]);
  });

  it('the public statistical analyzer abstains (an error, not a verdict) when there is no control cohort', async () => {
    const last = snapshot(Array.from({ length: 30 }, (_, i) => device(`c${i}`, 'canary', 20)));
    const out = await createStatAnalyzer().analyze(last, ctx);
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.code).toBe(NO_CONTROL_CODE);
  });

  it('and judges normally when there is one', async () => {
    const s = snapshot([
      ...Array.from({ length: 30 }, (_, i) => device(`c${i}`, 'canary', 40 + (i % 5))),
      ...Array.from({ length: 200 }, (_, i) => device(`k${i}`, 'control', 20 + (i % 5))),
    ]);
    const out = await createStatAnalyzer().analyze(s, ctx);
    expect(out.ok).toBe(true);
    if (out.ok) expect(out.verdict.recommendation).toBe('Abort');
  });
});
