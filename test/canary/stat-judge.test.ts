/**
 * Table-driven checks of the statistical judge's layers on small hand-built snapshots, and of the
 * Kayenta classifier's edge cases. The golden set (test/golden) covers realistic scenarios end to end.
 */
import { describe, expect, it } from 'vitest';
import { CanarySnapshotSchema, type CanarySnapshot, type DeviceSummary } from '../../protocol/canary.js';
import { DEFAULT_GATE_POLICY } from '../../coordinator/gate/analyzer.js';
import { judgeSnapshot, createStatAnalyzer } from '../../coordinator/canary/stat-judge.js';
import { classifyMetric } from '../../coordinator/canary/kayenta-classifier.js';
import { DEFAULT_JUDGE_CONFIG, type MetricCheck } from '../../coordinator/canary/judge-config.js';
import { binomUpperTail } from '../../coordinator/stats/counts.js';

type Dev = Partial<Omit<DeviceSummary, 'events'>> & { events?: Partial<DeviceSummary['events']> };

/** Deterministic spread of per-device values around a centre (no RNG needed). */
const spread = (i: number, centre: number, width: number) => centre + width * (((i * 37) % 17) / 16 - 0.5);

function device(i: number, cohort: 'canary' | 'control', o: Dev = {}): DeviceSummary {
  const cpu = spread(i, 20, 6);
  return {
    deviceId: `${cohort}-${i}`,
    cohort,
    hardwareModel: 'm1',
    firmwareVersion: cohort === 'canary' ? '2.0.0' : '1.0.0',
    exposureH: 10,
    samples: 100,
    silent: false,
    errorSignatures: [],
    logSample: [],
    ...(cohort === 'canary' ? { update: { state: 'committed' as const } } : {}),
    ...o,
    metrics: o.metrics ?? { cpuPct: { n: 100, mean: cpu, p99: cpu * 1.5 }, memUsedMb: { n: 100, mean: spread(i + 3, 100, 10), p99: 120, slopePerH: spread(i + 5, 0, 0.02) } },
    events: { crashes: 0, errors: 1, reboots: 0, agentRestarts: 0, ...o.events },
  };
}

function snapshot(canary: DeviceSummary[], control: DeviceSummary[]): CanarySnapshot {
  return CanarySnapshotSchema.parse({ v: 1, kind: 'canary-snapshot', deploymentId: 'd', wave: 0, fromVersions: ['1.0.0'], toVersion: '2.0.0', window: { from: 0, to: 36_000_000 }, takenAt: 36_000_000, devices: [...canary, ...control] });
}

const cohort = (n: number, c: 'canary' | 'control', f: (i: number) => Dev = () => ({})) => Array.from({ length: n }, (_, i) => device(i, c, f(i)));

describe('statistical judge layers', () => {
  it('proceeds on identical cohorts and records every layer', () => {
    const v = judgeSnapshot(snapshot(cohort(30, 'canary'), cohort(100, 'control')), DEFAULT_GATE_POLICY);
    expect(v).toMatchObject({ recommendation: 'Proceed', riskLevel: 'Low', rule: 'score', score: 100 });
    expect(v.evidence.map((e) => e.check)).toEqual(expect.arrayContaining(['trial-failures', 'install-failures', 'silent-after-install', 'sufficiency', 'crashes', 'errors', 'cpuPct.mean', 'cpuPct.p99', 'memUsedMb.slope', 'new-error-signatures', 'score']));
  });

  it('records the exact binomial p-value it used; strong evidence aborts, suggestive evidence holds', () => {
    // Canary 20 crashes over 300 h vs control 10 over 1000 h: RR 6.7, p far below 0.001 / 4.
    const strong = judgeSnapshot(snapshot(cohort(30, 'canary', (i) => ({ events: { crashes: i < 20 ? 1 : 0 } })), cohort(100, 'control', (i) => ({ events: { crashes: i < 10 ? 1 : 0 } }))), DEFAULT_GATE_POLICY);
    const e = strong.evidence.find((x) => x.check === 'crashes')!;
    const p = binomUpperTail(20, 30, 300 / 1300);
    expect(e.values['pValue']).toBeCloseTo(p, 8);
    expect(p).toBeLessThan(0.001 / 4);
    expect(e.values['rateRatio']).toBeCloseTo(20 / 3, 5);
    expect(e.result).toBe('critical');
    expect(strong).toMatchObject({ recommendation: 'Abort', riskLevel: 'Critical', rule: 'critical:crashes' });
    // Canary 12 over 300 h vs control 10 over 1000 h: RR 4 but p = 0.0014, below 0.01/4, while the rate
    // ratio's 99.75 % lower bound stays under 1.1: suggestive, Monitor.
    const weak = judgeSnapshot(snapshot(cohort(30, 'canary', (i) => ({ events: { crashes: i < 12 ? 1 : 0 } })), cohort(100, 'control', (i) => ({ events: { crashes: i < 10 ? 1 : 0 } }))), DEFAULT_GATE_POLICY);
    const pw = binomUpperTail(12, 22, 300 / 1300);
    expect(pw).toBeGreaterThan(0.001 / 4);
    expect(pw).toBeLessThan(0.01 / 4);
    const we = weak.evidence.find((x) => x.check === 'crashes')!;
    expect(we.result).toBe('flag');
    expect(Number(we.values['rateRatioLowerBound'])).toBeLessThan(1.1);
    expect(weak).toMatchObject({ recommendation: 'Monitor', rule: 'suggestive:crashes' });
  });

  it('a fleet-wide incident holds at Monitor, but a canary much worse than an incident-hit control still aborts', () => {
    const incident = judgeSnapshot(snapshot(cohort(30, 'canary', () => ({ events: { crashes: 2 } })), cohort(100, 'control', () => ({ events: { crashes: 2 } }))), DEFAULT_GATE_POLICY);
    expect(incident).toMatchObject({ recommendation: 'Monitor', rule: 'control-slo' });
    const worse = judgeSnapshot(snapshot(cohort(30, 'canary', () => ({ events: { crashes: 8 } })), cohort(100, 'control', () => ({ events: { crashes: 2 } }))), DEFAULT_GATE_POLICY);
    expect(worse).toMatchObject({ recommendation: 'Abort', rule: 'critical:crashes' });
  });

  it('flags one pathological device instead of aborting, unless many devices are affected', () => {
    const one = judgeSnapshot(snapshot(cohort(30, 'canary', (i) => ({ events: { crashes: i === 4 ? 30 : 0 } })), cohort(100, 'control', (i) => ({ events: { crashes: i % 10 === 0 ? 1 : 0 } }))), DEFAULT_GATE_POLICY);
    expect(one).toMatchObject({ recommendation: 'Monitor', rule: 'device-flag:crashes' });
    expect(one.issues[0]).toContain('canary-4');
    const many = judgeSnapshot(snapshot(cohort(30, 'canary', (i) => ({ events: { crashes: i === 4 ? 30 : i < 15 ? 1 : 0 } })), cohort(100, 'control', (i) => ({ events: { crashes: i % 10 === 0 ? 1 : 0 } }))), DEFAULT_GATE_POLICY);
    expect(many.recommendation).toBe('Abort');
  });

  it('never proceeds on thin evidence or without a control', () => {
    expect(judgeSnapshot(snapshot(cohort(5, 'canary'), cohort(100, 'control')), { ...DEFAULT_GATE_POLICY, minReportingDevices: 20 }).recommendation).toBe('Proceed'); // capped by wave size: all 5 report
    const notReporting = judgeSnapshot(snapshot(cohort(30, 'canary', (i) => (i < 20 ? { samples: 0, update: { state: 'idle' } } : {})), cohort(100, 'control')), { ...DEFAULT_GATE_POLICY, minReportingDevices: 20 });
    expect(notReporting).toMatchObject({ recommendation: 'Monitor', rule: 'sufficiency:reporting-devices' });
    expect(judgeSnapshot(snapshot(cohort(30, 'canary'), []), DEFAULT_GATE_POLICY)).toMatchObject({ recommendation: 'Monitor', rule: 'sufficiency:no-control' });
  });

  it('counts every canary reboot by default; the update-reboot discount is opt-in for counts that span the install', () => {
    // The telemetry store re-baselines at the version change, so a canary's snapshot reboots are its own.
    const snap = snapshot(cohort(30, 'canary', () => ({ events: { reboots: 1 } })), cohort(100, 'control', (i) => ({ events: { reboots: i % 25 === 0 ? 1 : 0 } })));
    const v = judgeSnapshot(snap, DEFAULT_GATE_POLICY);
    expect(v).toMatchObject({ recommendation: 'Abort', rule: 'critical:reboots' });
    expect(v.evidence.find((e) => e.check === 'reboots')!.values).toMatchObject({ canaryEvents: 30 });
    expect(v.evidence.find((e) => e.check === 'reboots')!.values).not.toHaveProperty('updateRebootsDiscounted');
    // With a discount of 1 (counts that include the A/B switch) one reboot per installed canary is expected.
    const discounted = judgeSnapshot(snap, DEFAULT_GATE_POLICY, { ...DEFAULT_JUDGE_CONFIG, updateRebootsPerInstall: 1 });
    expect(discounted.recommendation).toBe('Proceed');
    expect(discounted.evidence.find((e) => e.check === 'reboots')!.values).toMatchObject({ canaryEvents: 0, updateRebootsDiscounted: 30 });
    // Extra reboots beyond the discounted one still count.
    const storm = snapshot(cohort(30, 'canary', () => ({ events: { reboots: 3 } })), cohort(100, 'control', (i) => ({ events: { reboots: i % 25 === 0 ? 1 : 0 } })));
    expect(judgeSnapshot(storm, DEFAULT_GATE_POLICY, { ...DEFAULT_JUDGE_CONFIG, updateRebootsPerInstall: 1 })).toMatchObject({ recommendation: 'Abort', rule: 'critical:reboots' });
  });

  it('hard limits are final whatever the metrics say', () => {
    const v = judgeSnapshot(snapshot(cohort(30, 'canary', (i) => (i === 0 ? { update: { state: 'rolled-back', reason: 'trial-boot-failed' } } : {})), cohort(100, 'control')), DEFAULT_GATE_POLICY);
    expect(v).toMatchObject({ recommendation: 'Abort', riskLevel: 'Critical', rule: 'hard-limit:trial-failures' });
    expect(v.issues[0]).toContain('canary-0');
  });

  it('holds at Monitor when most metric checks have no data on canaries', () => {
    const v = judgeSnapshot(snapshot(cohort(30, 'canary', () => ({ metrics: {} })), cohort(100, 'control')), DEFAULT_GATE_POLICY);
    expect(v).toMatchObject({ recommendation: 'Monitor', rule: 'sufficiency:metrics-nodata' });
  });

  it('the analyzer wrapper returns the same verdict with a latency', async () => {
    const s = snapshot(cohort(30, 'canary'), cohort(100, 'control'));
    const out = await createStatAnalyzer().analyze(s, { policy: DEFAULT_GATE_POLICY, now: 0 });
    expect(out).toMatchObject({ ok: true, verdict: judgeSnapshot(s, DEFAULT_GATE_POLICY) });
  });
});

describe('Kayenta classifier', () => {
  const check: MetricCheck = { metric: 'cpuPct', stat: 'mean', group: 'cpu', direction: 'increase', effect: 'ratio', allowed: 1.1, critical: 1.5 };
  const opts = { confidence: DEFAULT_JUDGE_CONFIG.confidence, tolerance: DEFAULT_JUDGE_CONFIG.tolerance, minDevices: 3 };
  const base = Array.from({ length: 20 }, (_, i) => 10 + (i % 7));

  it('identical and constant samples pass; too few devices is NoData', () => {
    expect(classifyMetric(base, base, check, opts).result).toBe('pass');
    expect(classifyMetric([5, 5, 5], [5, 5, 5, 5], check, opts)).toMatchObject({ result: 'pass', note: 'all values identical' });
    expect(classifyMetric([1, 2], base, check, opts).result).toBe('nodata');
  });

  it('classifies by direction of harm, allowed and critical bounds', () => {
    expect(classifyMetric(base.map((x) => x * 1.35), base, check, opts).result).toBe('high');
    // +20 % with overlapping samples: the 98 % interval's lower bound is not clear of tolerance·|HL|.
    expect(classifyMetric(base.map((x) => x * 1.2), base, check, opts).result).toBe('pass');
    expect(classifyMetric(base.map((x) => x * 1.8), base, check, opts).result).toBe('critical');
    expect(classifyMetric(base.map((x) => x * 1.05), base, check, opts).result).toBe('pass'); // below the allowed effect
    expect(classifyMetric(base.map((x) => x * 0.7), base, check, opts)).toMatchObject({ result: 'pass', note: 'improved' });
    const lower: MetricCheck = { ...check, direction: 'decrease', effect: 'difference', allowed: -2, critical: -6 };
    expect(classifyMetric(base.map((x) => x - 4), base, lower, opts).result).toBe('low');
    expect(classifyMetric(base.map((x) => x - 8), base, lower, opts).result).toBe('critical');
    expect(classifyMetric(base.map((x) => x + 4), base, lower, opts)).toMatchObject({ result: 'pass', note: 'improved' });
  });
});
