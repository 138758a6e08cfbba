/**
 * One device's telemetry over time for the console's charts: its rollups (telemetry-store.ts) in a
 * window, merged into at most MAX_SERIES_SLOTS slots, with the firmware it ran when and its latest
 * error log excerpt. `seriesFromRollups` is pure; `DeviceTelemetryReader` reads the telemetry tables.
 */
import { CONTINUOUS_METRICS, EVENT_COUNTERS, type ContinuousMetric, type EventCounter } from '@fleet/protocol/canary';
import { MAX_SERIES_SLOTS, type DeviceTelemetry } from '@fleet/protocol/console';
import type { Sql } from '../store/sql.js';
import { rollupFromRow, type RollupAcc, type RollupRow } from '../telemetry/telemetry-store.js';

/** Default window when the request names none: the last day, cut to where the device's data starts. */
export const DEFAULT_WINDOW_MS = 24 * 3600_000;
export const DEFAULT_SLOTS = 60;

export interface SeriesWindow {
  from: number;
  to: number;
  /** A multiple of the rollup slot, so that every rollup falls into one slot. */
  slotMs: number;
}

/** The slot length for a window: at least one rollup slot, a whole number of them, at most `slots` slots. */
export function slotLength(from: number, to: number, slots: number, rollupSlotMs: number): number {
  const wanted = Math.max(1, Math.ceil((to - from) / Math.max(1, slots)));
  return Math.max(1, Math.ceil(wanted / rollupSlotMs)) * rollupSlotMs;
}

/** Rollups (in time order) into the window's slots. Slots without samples hold null means. */
export function seriesFromRollups(deviceId: string, rollups: readonly RollupAcc[], window: SeriesWindow, rollupSlotMs: number): Omit<DeviceTelemetry, 'errorLog'> {
  const { from, to, slotMs } = window;
  const count = Math.min(MAX_SERIES_SLOTS, Math.max(1, Math.ceil((to - from) / slotMs)));
  const t = Array.from({ length: count }, (_, i) => from + i * slotMs);
  const samples = new Array<number>(count).fill(0);
  const exposureMs = new Array<number>(count).fill(0);
  const events = new Map<EventCounter, number[]>(EVENT_COUNTERS.map((e) => [e, new Array<number>(count).fill(0)]));
  const sums = new Map<ContinuousMetric, { n: number[]; sum: number[]; max: number[] }>();
  const versions: DeviceTelemetry['versions'] = [];
  for (const r of rollups) {
    const i = Math.floor((r.slotStart - from) / slotMs);
    if (i < 0 || i >= count) continue;
    samples[i]! += r.samples;
    exposureMs[i]! += r.exposureMs;
    for (const e of EVENT_COUNTERS) events.get(e)![i]! += r.events[e];
    for (const m of CONTINUOUS_METRICS) {
      const s = r.metrics[m];
      if (!s || s.n === 0) continue;
      let acc = sums.get(m);
      if (!acc) sums.set(m, (acc = { n: new Array<number>(count).fill(0), sum: new Array<number>(count).fill(0), max: new Array<number>(count).fill(Number.NEGATIVE_INFINITY) }));
      acc.n[i]! += s.n;
      acc.sum[i]! += s.sum;
      if (s.max > acc.max[i]!) acc.max[i] = s.max;
    }
    const last = versions[versions.length - 1];
    const end = r.slotStart + rollupSlotMs;
    if (last?.version === r.firmwareVersion) last.to = Math.max(last.to, end);
    else versions.push({ version: r.firmwareVersion, from: r.slotStart, to: end });
  }
  const metrics: DeviceTelemetry['metrics'] = {};
  for (const [m, acc] of sums) {
    metrics[m] = {
      mean: acc.sum.map((s, i) => (acc.n[i]! > 0 ? s / acc.n[i]! : null)),
      max: acc.max.map((v, i) => (acc.n[i]! > 0 ? v : null)),
    };
  }
  return {
    deviceId,
    from,
    to,
    slotMs,
    t,
    samples,
    exposureH: exposureMs.map((ms) => ms / 3_600_000),
    events: Object.fromEntries([...events]) as DeviceTelemetry['events'],
    metrics,
    versions,
  };
}

export interface TelemetryQuery {
  from?: number | undefined;
  to?: number | undefined;
  slots?: number | undefined;
}

const ROLLUPS_SQL = 'SELECT * FROM telemetry_rollup WHERE device_id = ? AND slot_start >= ? AND slot_start < ? ORDER BY slot_start, first_at';
const FIRST_SQL = 'SELECT slot_start FROM telemetry_rollup WHERE device_id = ? AND slot_start >= ? AND slot_start < ? ORDER BY slot_start LIMIT 1';
const ERRORS_SQL =
  "SELECT last_at, firmware_version, error_lines FROM telemetry_rollup WHERE device_id = ? AND error_lines <> '[]' ORDER BY slot_start DESC LIMIT 1";

/** Reads a device's rollups (a read handle on the telemetry tables; the telemetry thread writes them). */
export class DeviceTelemetryReader {
  constructor(
    private readonly sql: Sql,
    private readonly rollupSlotMs: number,
  ) {}

  async read(deviceId: string, query: TelemetryQuery, now: number): Promise<DeviceTelemetry> {
    const to = query.to ?? now;
    let from = query.from;
    if (from === undefined) {
      // No window asked for: the last day, starting where the device's data starts.
      const earliest = to - DEFAULT_WINDOW_MS;
      from = (await this.sql.get<{ slot_start: number }>(FIRST_SQL, [deviceId, earliest, to]))?.slot_start ?? earliest;
    }
    // One slot fewer than asked: aligning `from` down to a slot boundary may add one.
    const slotMs = slotLength(from, to, Math.max(1, (query.slots ?? DEFAULT_SLOTS) - 1), this.rollupSlotMs);
    const alignedFrom = Math.floor(from / slotMs) * slotMs;
    const [rows, e] = await Promise.all([
      this.sql.all<RollupRow>(ROLLUPS_SQL, [deviceId, alignedFrom, to]),
      this.sql.get<{ last_at: number; firmware_version: string; error_lines: string }>(ERRORS_SQL, [deviceId]),
    ]);
    const series = seriesFromRollups(deviceId, rows.map(rollupFromRow), { from: alignedFrom, to: Math.max(to, alignedFrom + slotMs), slotMs }, this.rollupSlotMs);
    return { ...series, errorLog: e ? { at: e.last_at, firmwareVersion: e.firmware_version, lines: JSON.parse(e.error_lines) as string[] } : null };
  }
}
