/**
 * Builds the protocol/canary.ts `CanarySnapshot` (version 2) for a wave gate from telemetry rollups and
 * raw samples: one summary per device over the window and its series over the window's slots, canary
 * devices on the new version with their update state and from-version, control devices (eligible, not
 * yet updated) on their current version over the same window. Reads the telemetry tables (Sql); no
 * writes.
 */
import {
  CANARY_SNAPSHOT_VERSION,
  CanarySnapshotSchema,
  EVENT_COUNTERS,
  type CanarySnapshot,
  type ContinuousMetric,
  type DeviceSeries,
  type DeviceSummary,
  type MetricSummary,
  type SnapshotSlots,
} from '@fleet/protocol/canary';
import type { UpdateReason } from '@fleet/protocol/reasons';
import type { UpdateState } from '@fleet/protocol/update-state';
import type { Sql } from '../store/sql.js';
import { CONTINUOUS_METRICS, addSample, emptySums, errorSignature, mergeSums, summarize, type MetricSums } from './rollup-math.js';
import { rollupFromRow, type RollupAcc, type RollupRow } from './telemetry-store.js';
import { unpackSamples, type Sample } from './sample-chunks.js';

export interface CanaryDeviceInput {
  deviceId: string;
  hardwareModel: string;
  state: UpdateState;
  reason?: UpdateReason;
  /** When the device finished installing (trial or committed), if it did. */
  installedAt?: number;
  /** The last time the coordinator heard anything from it. */
  lastSeen?: number;
  /**
   * When the device reported running the new image (its commit, or its trial boot before that). The
   * continuous metrics skip the request's warm-up after it; event counters and silence do not.
   */
  runningSince?: number;
  /** The version it updated from, when known. */
  fromVersion?: string;
}

/** Default number of slots a snapshot's window is cut into (each at least one rollup slot long). */
export const DEFAULT_SNAPSHOT_SLOTS = 12;

/** Default warm-up skipped for continuous metrics after a canary's commit: boot-time spikes. */
export const DEFAULT_WARM_UP_MS = 5 * 60_000;

export interface ControlDeviceInput {
  deviceId: string;
  hardwareModel: string;
  firmwareVersion: string;
  lastSeen?: number;
}

export interface SnapshotRequest {
  deploymentId: string;
  wave: number;
  fromVersions: string[];
  toVersion: string;
  window: { from: number; to: number };
  takenAt: number;
  canary: readonly CanaryDeviceInput[];
  control: readonly ControlDeviceInput[];
  /** A device unheard-of for this long before `to` is silent. */
  silentAfterMs: number;
  /**
   * Clock time after each canary's `runningSince` whose continuous metrics (CPU, memory, …) are left
   * out, so the CPU and boot work right after the update's reboot does not land in the canary's p99.
   * Default DEFAULT_WARM_UP_MS (5 minutes); 0 keeps every sample.
   */
  warmUpMs?: number;
  /** Slots the window is cut into for the devices' series. Default DEFAULT_SNAPSHOT_SLOTS. */
  slots?: number;
}

/** States in which the new image is (or was) running on the device. */
const INSTALLED_STATES: ReadonlySet<UpdateState> = new Set(['rebooting', 'trial', 'committed', 'rolling-back', 'rolled-back', 'already-installed']);

/**
 * Devices summarised at once: PostgreSQL answers them over several pooled connections, but a gate of
 * thousands of devices must not queue thousands of reads ahead of the status path's.
 */
const CONCURRENT_DEVICES = 4;

const ROLLUPS_SQL =
  'SELECT * FROM telemetry_rollup WHERE device_id = ? AND firmware_version = ? AND slot_start >= ? AND slot_start < ? ORDER BY slot_start';
const RAW_SQL = 'SELECT data FROM telemetry_samples WHERE device_id = ? AND last_at >= ? AND first_at <= ? AND firmware_version = ? ORDER BY first_at';

export class SnapshotBuilder {
  constructor(private readonly sql: Sql, private readonly rollupSlotMs: number) {}

  /** The slots a window is cut into: whole rollup slots, from the rollup slot the window starts in. */
  slotsFor(window: { from: number; to: number }, count = DEFAULT_SNAPSHOT_SLOTS): SnapshotSlots {
    const r = this.rollupSlotMs;
    const from = Math.floor(window.from / r) * r;
    const span = Math.max(r, window.to - from);
    const slotMs = Math.max(r, Math.ceil(span / Math.max(1, count) / r) * r);
    return { from, slotMs, count: Math.max(1, Math.min(count, Math.ceil(span / slotMs))) };
  }

  async build(req: SnapshotRequest): Promise<CanarySnapshot> {
    const warmUpMs = req.warmUpMs ?? DEFAULT_WARM_UP_MS;
    const slots = this.slotsFor(req.window, req.slots);
    const canary = await mapLimit(req.canary, CONCURRENT_DEVICES, async (c): Promise<DeviceSummary> => {
      const from = Math.max(req.window.from, c.installedAt ?? req.window.from);
      const metricsFrom = c.runningSince !== undefined && warmUpMs > 0 ? Math.max(from, c.runningSince + warmUpMs) : from;
      const s = await this.summarizeDevice(c.deviceId, req.toVersion, from, req.window.to, metricsFrom, slots);
      const installed = INSTALLED_STATES.has(c.state);
      const lastHeard = Math.max(c.lastSeen ?? 0, s.lastAt ?? 0);
      return {
        deviceId: c.deviceId,
        cohort: 'canary',
        hardwareModel: c.hardwareModel,
        firmwareVersion: req.toVersion,
        ...(c.fromVersion !== undefined ? { fromVersion: c.fromVersion } : {}),
        ...s.summary,
        update: { state: c.state, ...(c.reason !== undefined ? { reason: c.reason } : {}) },
        silent: installed && lastHeard < req.window.to - req.silentAfterMs,
      };
    });
    const control = await mapLimit(req.control, CONCURRENT_DEVICES, async (c): Promise<DeviceSummary> => {
      const s = await this.summarizeDevice(c.deviceId, c.firmwareVersion, req.window.from, req.window.to, req.window.from, slots);
      const lastHeard = Math.max(c.lastSeen ?? 0, s.lastAt ?? 0);
      return {
        deviceId: c.deviceId,
        cohort: 'control',
        hardwareModel: c.hardwareModel,
        firmwareVersion: c.firmwareVersion,
        ...s.summary,
        silent: lastHeard < req.window.to - req.silentAfterMs,
      };
    });
    const devices = [...canary, ...control];
    return CanarySnapshotSchema.parse({
      v: CANARY_SNAPSHOT_VERSION,
      kind: 'canary-snapshot',
      deploymentId: req.deploymentId,
      wave: req.wave,
      fromVersions: req.fromVersions,
      toVersion: req.toVersion,
      window: req.window,
      takenAt: req.takenAt,
      slots,
      devices,
    });
  }

  /**
   * One device over [from, to] on one firmware version; continuous metrics over [metricsFrom, to]
   * (default `from`). Rollup slots that end by `metricsFrom` are left out of the metrics; the slot it
   * falls in is replaced by the raw samples from `metricsFrom` on (left out when those were pruned).
   * With `slots`, also its series: each rollup lands in the snapshot slot its start falls in (the
   * warm-up's partial rollup slot stays out of the metric series).
   */
  async summarizeDevice(
    deviceId: string,
    version: string,
    from: number,
    to: number,
    metricsFrom = from,
    slots?: SnapshotSlots,
  ): Promise<{ summary: Pick<DeviceSummary, 'exposureH' | 'samples' | 'events' | 'metrics' | 'errorSignatures' | 'logSample' | 'series'>; lastAt: number | undefined }> {
    const slotFrom = Math.floor(from / this.rollupSlotMs) * this.rollupSlotMs;
    const rawFrom = Math.min(from, metricsFrom);
    const [rows, chunks] = await Promise.all([
      this.sql.all<RollupRow>(ROLLUPS_SQL, [deviceId, version, slotFrom, to + 1]),
      this.sql.all<{ data: Uint8Array }>(RAW_SQL, [deviceId, rawFrom, to, version]),
    ]);
    const events = { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 };
    const sums: Partial<Record<ContinuousMetric, MetricSums>> = {};
    let samples = 0;
    let exposureMs = 0;
    let lastAt: number | undefined;
    const lines: string[] = [];
    const warm = metricsFrom > from;
    const raw = chunks.flatMap((c) => unpackSamples(c.data, rawFrom, to));
    const series = slots ? new SeriesAcc(slots) : undefined;
    for (const row of rows) {
      const r = rollupFromRow(row);
      series?.add(r, !(warm && r.slotStart < metricsFrom));
      samples += r.samples;
      exposureMs += r.exposureMs;
      events.crashes += r.events.crashes;
      events.errors += r.events.errors;
      events.reboots += r.events.reboots;
      events.agentRestarts += r.events.agentRestarts;
      lastAt = Math.max(lastAt ?? 0, r.lastAt);
      const shiftH = (r.slotStart - slotFrom) / 3_600_000;
      if (warm && r.slotStart < metricsFrom) {
        // Warm-up: a slot that starts before the metrics do counts only through its later raw samples.
        if (r.slotStart + this.rollupSlotMs > metricsFrom) this.addRaw(sums, raw, metricsFrom, r.slotStart + this.rollupSlotMs, slotFrom);
      } else {
        for (const name of CONTINUOUS_METRICS) {
          const s = r.metrics[name];
          if (s) mergeSums((sums[name] ??= emptySums()), s, shiftH);
        }
      }
      lines.push(...r.errorLines);
    }
    const metrics: Partial<Record<ContinuousMetric, MetricSummary>> = {};
    for (const name of CONTINUOUS_METRICS) {
      const s = sums[name];
      if (!s) continue;
      const values = raw.filter((r) => r.at >= metricsFrom).flatMap((r) => (r.values[name] !== undefined ? [r.values[name]] : []));
      const summary = summarize(s, values);
      if (summary) metrics[name] = summary;
    }
    const signatures = [...new Set(lines.map(errorSignature))].slice(0, 50);
    return {
      summary: {
        exposureH: exposureMs / 3_600_000,
        samples,
        events,
        metrics,
        errorSignatures: signatures,
        logSample: lines.slice(-20).map((l) => l.slice(0, 512)),
        ...(series ? { series: series.result() } : {}),
      },
      lastAt,
    };
  }

  /** Adds raw samples taken in [from, until) to the metric sums (t in hours from `origin`). */
  private addRaw(sums: Partial<Record<ContinuousMetric, MetricSums>>, raw: readonly Sample[], from: number, until: number, origin: number): void {
    for (const r of raw) {
      const at = r.at;
      if (at < from || at >= until) continue;
      for (const name of CONTINUOUS_METRICS) {
        const v = r.values[name];
        if (v !== undefined) addSample((sums[name] ??= emptySums()), (at - origin) / 3_600_000, v);
      }
    }
  }
}

const r4 = (x: number): number => (x === 0 ? 0 : Number(x.toPrecision(4)));

/** One device's series over a snapshot's slots, built from its rollups. */
class SeriesAcc {
  private readonly exposureMs: number[];
  private readonly events: Record<string, number[]> = {};
  private readonly sums: Partial<Record<ContinuousMetric, { n: number[]; sum: number[] }>> = {};

  constructor(private readonly slots: SnapshotSlots) {
    this.exposureMs = new Array<number>(slots.count).fill(0);
  }

  add(r: RollupAcc, withMetrics: boolean): void {
    const i = Math.min(this.slots.count - 1, Math.max(0, Math.floor((r.slotStart - this.slots.from) / this.slots.slotMs)));
    this.exposureMs[i]! += r.exposureMs;
    for (const c of EVENT_COUNTERS) {
      const k = r.events[c];
      if (k > 0) (this.events[c] ??= new Array<number>(this.slots.count).fill(0))[i]! += k;
    }
    if (!withMetrics) return;
    for (const name of CONTINUOUS_METRICS) {
      const m = r.metrics[name];
      if (!m || m.n === 0) continue;
      const acc = (this.sums[name] ??= { n: new Array<number>(this.slots.count).fill(0), sum: new Array<number>(this.slots.count).fill(0) });
      acc.n[i]! += m.n;
      acc.sum[i]! += m.sum;
    }
  }

  result(): DeviceSeries {
    const metrics: DeviceSeries['metrics'] = {};
    for (const name of CONTINUOUS_METRICS) {
      const m = this.sums[name];
      if (m) metrics[name] = { n: m.n, mean: m.sum.map((s, i) => (m.n[i]! > 0 ? r4(s / m.n[i]!) : 0)) };
    }
    return { exposureH: this.exposureMs.map((ms) => r4(ms / 3_600_000)), events: this.events, metrics };
  }
}

/** `fn` over `items` with at most `limit` running at once; results in the items' order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
