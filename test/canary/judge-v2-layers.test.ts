/**
 * The judge's second-generation layers on small hand-built snapshots: strata (a regression on one model
 * of three; a model mix that is not a regression), decisions on confidence bounds, onset over a v2
 * snapshot's slots, lost metrics, the crash-signature escalation, per-deployment settings, the soak
 * planner against a simulation of the judge's own test, and exposure across offline gaps.
 */
import { describe, expect, it } from 'vitest';
import { CanarySnapshotSchema, type CanarySnapshot, type DeviceSummary } from '../../protocol/canary.js';
import { DEFAULT_GATE_POLICY } from '../../coordinator/gate/analyzer.js';
import { judgeSnapshot } from '../../coordinator/canary/stat-judge.js';
import { JudgeSettingsSchema, judgeConfigFor } from '../../coordinator/canary/judge-settings.js';
import { DEFAULT_JUDGE_CONFIG } from '../../coordinator/canary/judge-config.js';
import { planPower, planWarnings, plannerAlphas, soakNeeded } from '../../coordinator/canary/soak-planner.js';
import { ratioPValue } from '../../coordinator/stats/stratified-rates.js';
import { exposureIncrementMs } from '../../coordinator/telemetry/telemetry-store.js';
import { Rng } from '../../simulator/rng.js';

type Dev = Partial<Omit<DeviceSummary, 'events'>> & { events?: Partial<DeviceSummary['events']> };
const SLOTS = 12;
const spread = (i: number, centre: number, width: number) => centre + width * (((i * 37) % 17) / 16 - 0.5);

/** A device with an even series over 12 slots of 2 h (24 h window); `late` events land in the last slot. */
function device(i: number, cohort: 'canary' | 'control', o: Dev & { late?: number; model?: string } = {}): DeviceSummary {
  const cpu = spread(i, 20, 6);
  const crashes = o.events?.crashes ?? 0;
  const late = o.late ?? 0;
  // Crash j of device i falls in slot (i + j) mod 12, so the baseline spreads over the window.
  const perSlot = Array.from({ length: SLOTS }, (_, s) => Array.from({ length: crashes }, (_, j) => (i + j) % SLOTS).filter((x) => x === s).length + (s === SLOTS - 1 ? late : 0));
  const { late: _late, model, ...rest } = o;
  return {
    deviceId: `${cohort}-${i}`,
    cohort,
    hardwareModel: model ?? 'm1',
    firmwareVersion: cohort === 'canary' ? '2.0.0' : '1.0.0',
    ...(cohort === 'canary' ? { fromVersion: '1.0.0', update: { state: 'committed' as const } } : {}),
    exposureH: 24,
    samples: 144,
    silent: false,
    errorSignatures: [],
    logSample: [],
    ...rest,
    metrics: o.metrics ?? { cpuPct: { n: 144, mean: cpu, p99: cpu * 1.5 }, memUsedMb: { n: 144, mean: spread(i + 3, 100, 10), p99: 120, slopePerH: spread(i + 5, 0, 0.02) }, batteryPct: { n: 144, mean: 60, p99: 90, slopePerH: -1 } },
    events: { crashes: crashes + late, errors: 2, reboots: 0, agentRestarts: 0, ...o.events, ...(late ? { crashes: crashes + late } : {}) },
    series: o.series ?? { exposureH: Array<number>(SLOTS).fill(2), events: { crashes: perSlot }, metrics: {} },
  };
}

function snapshot(devices: DeviceSummary[]): CanarySnapshot {
  return CanarySnapshotSchema.parse({
    v: 2, kind: 'canary-snapshot', deploymentId: 'd', wave: 0, fromVersions: ['1.0.0'], toVersion: '2.0.0',
    window: { from: 0, to: 24 * 3_600_000 }, takenAt: 24 * 3_600_000, slots: { from: 0, slotMs: 2 * 3_600_000, count: SLOTS }, devices,
  });
}
const many = (n: number, c: 'canary' | 'control', f: (i: number) => Dev & { late?: number; model?: string } = () => ({})) => Array.from({ length: n }, (_, i) => device(i, c, f(i)));
const MODELS = ['m1', 'm2', 'm3'];

describe('strata', () => {
  it('aborts a crash regression confined to one model of three and names it, where pooling would only hold', () => {
    // Baseline 1 crash per device per day; canaries of m3 crash 5 times as often.
    const canary = many(60, 'canary', (i) => ({ model: MODELS[i % 3]!, events: { crashes: MODELS[i % 3] === 'm3' ? 5 : i % 2 } }));
    const control = many(300, 'control', (i) => ({ model: MODELS[i % 3]!, events: { crashes: i % 2 } }));
    const v = judgeSnapshot(snapshot([...canary, ...control]), DEFAULT_GATE_POLICY);
    expect(v).toMatchObject({ recommendation: 'Abort', rule: 'critical:crashes[m3]' });
    expect(v.evidence.find((e) => e.check === 'crashes[m3]')?.result).toBe('critical');
    expect(v.evidence.find((e) => e.check === 'crashes[m1]')?.result).toBe('pass');
  });

  it('does not blame the canary for holding more of a crash-prone model', () => {
    // m2 crashes 4 times as often as m1 in both cohorts; canaries are mostly m2, control mostly m1.
    const canary = many(40, 'canary', (i) => ({ model: i < 32 ? 'm2' : 'm1', events: { crashes: i < 32 ? i % 2 : i % 8 === 0 ? 1 : 0 } }));
    const control = many(200, 'control', (i) => ({ model: i < 40 ? 'm2' : 'm1', events: { crashes: i < 40 ? i % 2 : i % 8 === 0 ? 1 : 0 } }));
    const v = judgeSnapshot(snapshot([...canary, ...control]), DEFAULT_GATE_POLICY);
    expect(v.recommendation).toBe('Proceed');
    expect(v.evidence.find((e) => e.check === 'crashes')?.values['rateRatio']).toBeCloseTo(1, 6);
    // Pooled without strata, the same counts look like a doubled crash rate.
    expect((17 / 960) / (40 / 4800)).toBeGreaterThan(2);
  });
});

describe('confidence bounds', () => {
  it('compares thresholds with the lower bound and says so in the evidence', () => {
    const canary = many(100, 'canary', (i) => ({ events: { crashes: i < 90 ? 1 : 0 } }));
    const control = many(1000, 'control', (i) => ({ events: { crashes: i % 3 === 0 ? 1 : 0 } }));
    const v = judgeSnapshot(snapshot([...canary, ...control]), DEFAULT_GATE_POLICY);
    const e = v.evidence.find((x) => x.check === 'crashes')!;
    const lower = Number(e.values['rateRatioLowerBound']);
    expect(Number(e.values['rateRatio'])).toBeCloseTo(90 / 33.4, 1);
    expect(lower).toBeGreaterThan(1.25);
    expect(lower).toBeLessThan(Number(e.values['rateRatio']));
    // The bound is the exact one: the test of "ratio ≤ bound" sits at the stated confidence.
    const strata = [{ kE: 90, eE: 2400, kC: 334, eC: 24000 }];
    expect(ratioPValue(strata, lower)).toBeCloseTo(1 - Number(e.values['lowerBoundConfidence']), 5);
    expect(v).toMatchObject({ recommendation: 'Abort', rule: 'critical:crashes' });
  });
});

describe('onset over slots', () => {
  it('catches a crash storm in the last slot that the whole window averages away', () => {
    const canary = many(40, 'canary', (i) => ({ events: { crashes: i % 2 }, late: i < 16 ? 1 : 0 }));
    const control = many(400, 'control', (i) => ({ events: { crashes: i % 2 } }));
    const v = judgeSnapshot(snapshot([...canary, ...control]), DEFAULT_GATE_POLICY);
    expect(v.recommendation).toBe('Abort');
    expect(v.evidence.find((e) => e.check === 'crashes')?.result).not.toBe('critical');
    expect(v.rule).toMatch(/^critical:crashes@last-/);
    expect(v.issues[0]).toMatch(/in the window's last-/);
  });

  it('catches a leak that started half-way from the slot means', () => {
    const mem = (leak: number) => ({ n: Array<number>(SLOTS).fill(12), mean: Array.from({ length: SLOTS }, (_, s) => 100 + (s >= 6 ? leak * (s - 5.5) * 2 : 0)) });
    const withSeries = (i: number, leak: number): Dev => ({
      metrics: { memUsedMb: { n: 144, mean: 100 + leak * 6, p99: 120, slopePerH: leak * 0.5 }, cpuPct: { n: 144, mean: spread(i, 20, 6), p99: 30 } },
      series: { exposureH: Array<number>(SLOTS).fill(2), events: {}, metrics: { memUsedMb: { n: mem(0).n, mean: mem(leak).mean.map((m) => m + spread(i, 0, 2)) } } },
    });
    const canary = many(30, 'canary', (i) => withSeries(i, 0.6));
    const control = many(100, 'control', (i) => withSeries(i, 0));
    const v = judgeSnapshot(snapshot([...canary, ...control]), DEFAULT_GATE_POLICY);
    const seg = v.evidence.find((e) => e.check === 'memUsedMb.slope@last-50%')!;
    expect(seg.result).toBe('critical');
    expect(Number(seg.values['effect'])).toBeCloseTo(0.6, 1);
    expect(v.recommendation).toBe('Abort');
  });
});

describe('missing data is evidence', () => {
  it('holds when canaries stopped reporting a metric the control reports', () => {
    const noBattery = (i: number): Dev => ({ metrics: { cpuPct: { n: 144, mean: spread(i, 20, 6), p99: 30 }, memUsedMb: { n: 144, mean: 100, p99: 110 } } });
    const v = judgeSnapshot(snapshot([...many(30, 'canary', noBattery), ...many(100, 'control')]), DEFAULT_GATE_POLICY);
    expect(v).toMatchObject({ recommendation: 'Monitor', rule: 'lost-metric:batteryPct' });
    expect(v.issues.join(' ')).toMatch(/stopped reporting batteryPct/);
  });

  it('does not count a canary still in its warm-up (no metrics at all yet) as having lost one', () => {
    const warming = (i: number): Dev => (i < 10 ? { metrics: {} } : {});
    const v = judgeSnapshot(snapshot([...many(30, 'canary', warming), ...many(100, 'control')]), DEFAULT_GATE_POLICY);
    expect(v.evidence.find((e) => e.check === 'lost-metrics')?.result).toBe('pass');
  });

  it('escalates a crash excess to Abort when the crashing canaries show an error control never shows', () => {
    const canary = many(40, 'canary', (i) => ({ events: { crashes: i < 15 ? 1 : 0 }, ...(i < 4 ? { errorSignatures: ['kernel: panic in ota_apply+<hex>'] } : {}) }));
    const control = many(400, 'control', (i) => ({ events: { crashes: i % 8 === 0 ? 1 : 0 } }));
    const plain = judgeSnapshot(snapshot([...many(40, 'canary', (i) => ({ events: { crashes: i < 15 ? 1 : 0 } })), ...control]), DEFAULT_GATE_POLICY);
    expect(plain.recommendation).toBe('Monitor');
    const v = judgeSnapshot(snapshot([...canary, ...control]), DEFAULT_GATE_POLICY);
    expect(v).toMatchObject({ recommendation: 'Abort', rule: 'critical:crashes+signature' });
    expect(v.evidence.find((e) => e.check === 'crash-signature')?.values['crashingDevicesWithIt']).toBe(4);
  });
});

describe('per-deployment judge settings', () => {
  it('are bounded and map onto the judge', () => {
    expect(JudgeSettingsSchema.safeParse({ alpha: 0.2 }).success).toBe(false);
    expect(JudgeSettingsSchema.safeParse({ alpha: 0.005, abortAlpha: 0.01 }).success).toBe(false);
    expect(JudgeSettingsSchema.safeParse({ highRatio: 1.5, criticalRatio: 1.2 }).success).toBe(false);
    expect(JudgeSettingsSchema.safeParse({ warmUpMs: 2 * 3_600_000 }).success).toBe(false);
    const cfg = judgeConfigFor(JudgeSettingsSchema.parse({ minExpectedEvents: 0, criticalRatio: 2, alpha: 0.02 }));
    expect(cfg).toMatchObject({ minExpectedEvents: 0, alpha: 0.02, abortAlpha: DEFAULT_JUDGE_CONFIG.abortAlpha });
    expect(cfg.counters.every((c) => c.criticalRatio === 2 && c.highRatio === 1.1)).toBe(true);
    expect(judgeConfigFor(undefined)).toBe(DEFAULT_JUDGE_CONFIG);
  });

  it('a lower exposure floor lets a short, quiet soak proceed', () => {
    const thin = (i: number): Dev => ({ exposureH: 0.5, events: { errors: 0 }, metrics: { cpuPct: { n: 30, mean: spread(i, 20, 6), p99: 30 } } });
    const s = snapshot([...many(30, 'canary', thin), ...many(100, 'control', thin)].map((d) => ({ ...d, series: undefined })));
    expect(judgeSnapshot(s, DEFAULT_GATE_POLICY).rule).toBe('sufficiency:exposure');
    expect(judgeSnapshot(s, DEFAULT_GATE_POLICY, judgeConfigFor({ minExpectedEvents: 0 })).recommendation).toBe('Proceed');
  });
});

describe('soak planner', () => {
  it("agrees with a simulation of the judge's whole-window test", () => {
    const rng = new Rng('planner');
    const q = { canaries: 50, control: 1000, baselinePerDeviceDay: 0.24, ratio: 3, soakH: 12 };
    const { abort } = plannerAlphas();
    const runs = 400;
    let hits = 0;
    for (let i = 0; i < runs; i++) {
      const kE = rng.poisson((q.ratio * q.baselinePerDeviceDay * q.canaries * q.soakH) / 24);
      const kC = rng.poisson((q.baselinePerDeviceDay * q.control * q.soakH) / 24);
      if (ratioPValue([{ kE, eE: q.canaries * q.soakH, kC, eC: q.control * q.soakH }], 1.25) < abort) hits++;
    }
    const p = planPower(q);
    expect(Math.abs(hits / runs - p.powerAbort)).toBeLessThan(0.08);
    expect(p.powerHold).toBeGreaterThanOrEqual(p.powerAbort);
    expect(planPower({ ...q, soakH: 24 }).powerAbort).toBeGreaterThan(p.powerAbort);
    const soak = soakNeeded({ canaries: 50, control: 1000, baselinePerDeviceDay: 0.24, ratio: 3 }, 0.8)!;
    expect(planPower({ ...q, soakH: soak }).powerAbort).toBeGreaterThanOrEqual(0.8);
    expect(planPower({ ...q, soakH: soak * 0.8 }).powerAbort).toBeLessThan(0.8);
  });

  it('warns about canary waves that cannot roll the planned regression back', () => {
    const spec = { waves: [{ percent: 1, soakMs: 1_800_000 }, { percent: 10, soakMs: 24 * 3_600_000 }, { percent: 100, soakMs: 0 }], judge: { plan: { baselinePerDeviceDay: 0.24, ratio: 3, power: 0.8 } } };
    const w = planWarnings(spec, [10, 300, 2690], 3000);
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/^wave 1 \(10 canary devices, 0.5 h soak\) would roll back a ×3 regression .* needs a soak of/);
    expect(planWarnings({ waves: spec.waves }, [10, 300, 2690], 3000)).toEqual([]);
  });
});

describe('exposure across offline gaps', () => {
  const GAP = 5 * 60_000;
  const prev = { at: 1_000_000, deviceAt: 1_000_000, bootCount: 4 };
  it.each([
    ['steady reporting counts the receive gap', { at: 1_060_000, bootCount: 4, uptimeS: 9000 }, 1_060_000, 60_000],
    ['a queued message arriving in a burst counts its own time', { at: 1_060_000, bootCount: 4, uptimeS: 9000 }, 1_000_010, 60_000],
    ['two hours offline but running: the device ran the whole gap', { at: 1_000_000 + 7_200_000, bootCount: 4, uptimeS: 20_000 }, 1_000_000 + 7_200_500, 7_200_000],
    ['two hours with a reboot: its uptime plus the cap', { at: 1_000_000 + 7_200_000, bootCount: 5, uptimeS: 600 }, 1_000_000 + 7_200_500, 600_000 + GAP],
    ['a device clock that jumps ahead is bounded by the receive gap plus the cap', { at: 1_000_000 + 86_400_000, bootCount: 4, uptimeS: 999_999 }, 1_060_000, 60_000 + GAP],
    ['a clock stepped back counts the receive gap', { at: 900_000, bootCount: 4, uptimeS: 9000 }, 1_060_000, 60_000],
  ])('%s', (_name, msg, at, want) => {
    expect(exposureIncrementMs(prev, msg, at, GAP)).toBe(want);
  });
  it('falls back to the capped receive gap without the device time (a reading from before a restart)', () => {
    expect(exposureIncrementMs({ at: 0, deviceAt: undefined, bootCount: undefined }, { at: 7_200_000, bootCount: 1, uptimeS: 1 }, 7_200_000, GAP)).toBe(GAP);
  });
});
