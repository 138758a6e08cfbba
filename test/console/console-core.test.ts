/** The console's pure parts: coalescing, fleet counts, telemetry slots, canary against control. */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../support/manual-clock.js';
import { CanarySnapshotSchema, type CanarySnapshotInput } from '../../protocol/canary.js';
import { CohortSeriesSchema, DeviceTelemetrySchema, FleetSummarySchema } from '../../protocol/console.js';
import { Coalescer } from '../../coordinator/console/coalescer.js';
import { cohortSeries } from '../../coordinator/console/cohort-series.js';
import { seriesFromRollups, slotLength } from '../../coordinator/console/device-telemetry.js';
import { fleetSummary, type SummaryDevice } from '../../coordinator/console/fleet-summary.js';
import { addSample, emptySums } from '../../coordinator/telemetry/rollup-math.js';
import type { RollupAcc } from '../../coordinator/telemetry/telemetry-store.js';

describe('Coalescer', () => {
  it('sends the first at once, holds the newest within the interval, sends it when the interval has passed', () => {
    const clock = new ManualClock(0);
    const sent: [string, number, number][] = [];
    const c = new Coalescer<number>(clock, 1000, (k, v) => sent.push([k, v, clock.now()]));
    c.push('a', 1);
    c.push('a', 2);
    c.push('a', 3);
    c.push('b', 1);
    expect(sent).toEqual([['a', 1, 0], ['b', 1, 0]]);
    expect(c.pending).toBe(1);
    clock.advance(999);
    expect(sent).toHaveLength(2);
    clock.advance(1);
    expect(sent).toEqual([['a', 1, 0], ['b', 1, 0], ['a', 3, 1000]]);
    // A key quiet for a whole interval goes out at once again.
    clock.advance(1500);
    c.push('a', 4);
    expect(sent.at(-1)).toEqual(['a', 4, 2500]);
  });

  it('never sends one key twice within the interval, and clear() drops what is held', () => {
    const clock = new ManualClock(0);
    const times = new Map<string, number[]>();
    const c = new Coalescer<number>(clock, 1000, (k) => times.set(k, [...(times.get(k) ?? []), clock.now()]));
    for (let t = 0; t < 5000; t += 100) {
      c.push('x', t);
      if (t % 300 === 0) c.push('y', t);
      clock.advance(100);
    }
    for (const list of times.values()) for (let i = 1; i < list.length; i++) expect(list[i]! - list[i - 1]!).toBeGreaterThanOrEqual(1000);
    c.push('x', 1);
    c.clear();
    clock.advance(5000);
    expect(c.pending).toBe(0);
  });
});

describe('fleetSummary', () => {
  it('counts devices by model, version (newest first), update state and anomaly kind', () => {
    const d = (id: string, model: string | undefined, version: string | undefined, online: boolean, state?: string): SummaryDevice => ({
      deviceId: id, hardwareModel: model, firmwareVersion: version, online, ghost: model === undefined, update: state ? { state } : undefined,
    });
    const s = fleetSummary(
      [d('a', 'rpi4', '1.10.0', true, 'committed'), d('b', 'rpi4', '1.9.0', false, 'rolled-back'), d('c', 'rpi4', '1.10.0', true), d('e', 'cm4', '1.9.0', true), d('g', undefined, undefined, true)],
      [{ deviceId: 'a', kind: 'rate-limited' }, { deviceId: 'a', kind: 'wrong-model' }, { deviceId: 'b', kind: 'rate-limited' }],
      42,
    );
    expect(FleetSummarySchema.parse(s)).toEqual(s);
    expect(s.devices).toEqual({ total: 5, online: 4, offline: 1, ghosts: 1, withAnomalies: 2 });
    expect(s.models.map((m) => [m.hardwareModel, m.total, m.online])).toEqual([['rpi4', 3, 2], ['cm4', 1, 1], [null, 1, 1]]);
    expect(s.models[0]!.versions).toEqual([{ version: '1.10.0', count: 2 }, { version: '1.9.0', count: 1 }]);
    expect(s.versions).toEqual([{ version: '1.10.0', count: 2 }, { version: '1.9.0', count: 2 }, { version: null, count: 1 }]);
    expect(s.updateStates).toEqual({ committed: 1, 'rolled-back': 1, none: 3 });
    expect(s.anomalies).toEqual({ 'rate-limited': 2, 'wrong-model': 1 });
  });
});

describe('device telemetry slots', () => {
  const rollup = (slotStart: number, version: string, cpu: number[], crashes = 0): RollupAcc => {
    const sums = emptySums();
    for (const y of cpu) addSample(sums, 0, y);
    return {
      deviceId: 'd1', slotStart, firmwareVersion: version, samples: cpu.length, firstAt: slotStart, lastAt: slotStart + 1, exposureMs: 60_000,
      events: { crashes, errors: 0, reboots: 0, agentRestarts: 0 }, metrics: { cpuPct: sums }, errorLines: [],
    };
  };

  it('cuts a window into whole rollup slots, never more than asked', () => {
    expect(slotLength(0, 3600_000, 60, 60_000)).toBe(60_000);
    expect(slotLength(0, 3600_000, 7, 60_000)).toBe(540_000);
    expect(slotLength(0, 30_000, 60, 60_000)).toBe(60_000);
  });

  it('merges rollups into slots: sums, sample-weighted means, maxima, version segments', () => {
    const rows = [rollup(0, '1.0.0', [10, 20]), rollup(60_000, '1.0.0', [30], 2), rollup(180_000, '1.1.0', [50, 70]), rollup(240_000, '1.1.0', [60])];
    const s = seriesFromRollups('d1', rows, { from: 0, to: 300_000, slotMs: 120_000 }, 60_000);
    expect(DeviceTelemetrySchema.parse({ ...s, errorLog: null })).toBeTruthy();
    expect(s.t).toEqual([0, 120_000, 240_000]);
    expect(s.samples).toEqual([3, 2, 1]);
    expect(s.events.crashes).toEqual([2, 0, 0]);
    expect(s.metrics.cpuPct!.mean).toEqual([20, 60, 60]);
    expect(s.metrics.cpuPct!.max).toEqual([30, 70, 60]);
    expect(s.exposureH).toEqual([2 / 60, 1 / 60, 1 / 60]);
    expect(s.versions).toEqual([{ version: '1.0.0', from: 0, to: 120_000 }, { version: '1.1.0', from: 180_000, to: 300_000 }]);
    const gap = seriesFromRollups('d1', [rollup(0, '1.0.0', [5])], { from: 0, to: 180_000, slotMs: 60_000 }, 60_000);
    expect(gap.metrics.cpuPct!.mean).toEqual([5, null, null]);
  });
});

describe('cohortSeries', () => {
  const device = (id: string, cohort: 'canary' | 'control', exposure: number[], crashes: number[], cpu: { n: number[]; mean: number[] }) => ({
    deviceId: id, cohort, hardwareModel: 'rpi4', firmwareVersion: cohort === 'canary' ? '1.1.0' : '1.0.0',
    exposureH: exposure.reduce((a, b) => a + b, 0), samples: 10,
    events: { crashes: crashes.reduce((a, b) => a + b, 0), errors: 0, reboots: 0, agentRestarts: 0 },
    metrics: { cpuPct: { n: cpu.n.reduce((a, b) => a + b, 0), mean: 0, p99: 0 } },
    series: { exposureH: exposure, events: { crashes }, metrics: { cpuPct: cpu } },
  });
  const snapshot: CanarySnapshotInput = {
    v: 2, kind: 'canary-snapshot', deploymentId: 'dep-1', wave: 0, fromVersions: ['1.0.0'], toVersion: '1.1.0',
    window: { from: 0, to: 7200_000 }, takenAt: 7200_000, slots: { from: 0, slotMs: 3600_000, count: 2 },
    devices: [
      device('c1', 'canary', [1, 1], [2, 0], { n: [1, 3], mean: [10, 20] }),
      device('c2', 'canary', [1, 0], [0, 0], { n: [1, 0], mean: [30, 0] }),
      device('k1', 'control', [1, 1], [1, 0], { n: [2, 2], mean: [5, 5] }),
    ],
  };

  it('gives each cohort its event rate per device-hour and weighted metric mean per slot', () => {
    const s = cohortSeries(CanarySnapshotSchema.parse(snapshot), 'dep-1.w0.gate.a0');
    expect(CohortSeriesSchema.parse(s)).toEqual(s);
    expect(s.t).toEqual([0, 3600_000]);
    expect(s.events.crashes).toEqual({ canary: [1, 0], control: [1, 0] });
    expect(s.events.errors).toEqual({ canary: [0, 0], control: [0, 0] });
    expect(s.metrics.cpuPct).toEqual({ canary: [20, 20], control: [5, 5] });
    expect(s.totals.canary).toMatchObject({ devices: 2, exposureH: 3, events: { crashes: 2 } });
    expect(s.totals.control).toMatchObject({ devices: 1, exposureH: 2, events: { crashes: 1 } });
  });

  it('gives totals only for a format 1 snapshot', () => {
    const v1 = { ...snapshot, v: 1 as const, slots: undefined, devices: snapshot.devices.map(({ series: _series, ...d }) => d) };
    const s = cohortSeries(CanarySnapshotSchema.parse(v1), 'x');
    expect(s.t).toEqual([]);
    expect(s.slotMs).toBeNull();
    expect(s.events.crashes).toEqual({ canary: [], control: [] });
    expect(s.totals.canary.devices).toBe(2);
  });
});
