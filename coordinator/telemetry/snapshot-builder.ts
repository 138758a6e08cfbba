/**
 * Builds the protocol/canary.ts `CanarySnapshot` for a wave gate from telemetry rollups and raw
 * samples: one summary per device over the window, canary devices on the new version with their update
 * state, control devices (eligible, not yet updated) on their current version over the same window.
 * Reads SQLite; no writes.
 */
import { PROTOCOL_VERSION } from '../../protocol/signed.js';
import {
  CanarySnapshotSchema,
  type CanarySnapshot,
  type ContinuousMetric,
  type DeviceSummary,
  type MetricSummary,
} from '../../protocol/canary.js';
import type { UpdateReason } from '../../protocol/reasons.js';
import type { UpdateState } from '../../protocol/update-state.js';
import type { Db } from '../store/db.js';
import { CONTINUOUS_METRICS, addSample, emptySums, errorSignature, mergeSums, summarize, type MetricSums } from './rollup-math.js';
import { rollupFromRow, type RollupRow } from './telemetry-store.js';
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
}

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
}

/** States in which the new image is (or was) running on the device. */
const INSTALLED_STATES: ReadonlySet<UpdateState> = new Set(['rebooting', 'trial', 'committed', 'rolling-back', 'rolled-back', 'already-installed']);

export class SnapshotBuilder {
  private readonly rollupStmt;
  private readonly rawStmt;

  constructor(private readonly db: Db, private readonly rollupSlotMs: number) {
    this.rollupStmt = db.prepare(
      'SELECT * FROM telemetry_rollup WHERE device_id = ? AND firmware_version = ? AND slot_start >= ? AND slot_start < ? ORDER BY slot_start',
    );
    this.rawStmt = db.prepare(
      'SELECT data FROM telemetry_samples WHERE device_id = ? AND last_at >= ? AND first_at <= ? AND firmware_version = ? ORDER BY first_at',
    ).pluck();
  }

  build(req: SnapshotRequest): CanarySnapshot {
    const devices: DeviceSummary[] = [];
    const warmUpMs = req.warmUpMs ?? DEFAULT_WARM_UP_MS;
    for (const c of req.canary) {
      const from = Math.max(req.window.from, c.installedAt ?? req.window.from);
      const metricsFrom = c.runningSince !== undefined && warmUpMs > 0 ? Math.max(from, c.runningSince + warmUpMs) : from;
      const s = this.summarizeDevice(c.deviceId, req.toVersion, from, req.window.to, metricsFrom);
      const installed = INSTALLED_STATES.has(c.state);
      const lastHeard = Math.max(c.lastSeen ?? 0, s.lastAt ?? 0);
      devices.push({
        deviceId: c.deviceId,
        cohort: 'canary',
        hardwareModel: c.hardwareModel,
        firmwareVersion: req.toVersion,
        ...s.summary,
        update: { state: c.state, ...(c.reason !== undefined ? { reason: c.reason } : {}) },
        silent: installed && lastHeard < req.window.to - req.silentAfterMs,
      });
    }
    for (const c of req.control) {
      const s = this.summarizeDevice(c.deviceId, c.firmwareVersion, req.window.from, req.window.to);
      const lastHeard = Math.max(c.lastSeen ?? 0, s.lastAt ?? 0);
      devices.push({
        deviceId: c.deviceId,
        cohort: 'control',
        hardwareModel: c.hardwareModel,
        firmwareVersion: c.firmwareVersion,
        ...s.summary,
        silent: lastHeard < req.window.to - req.silentAfterMs,
      });
    }
    return CanarySnapshotSchema.parse({
      v: PROTOCOL_VERSION,
      kind: 'canary-snapshot',
      deploymentId: req.deploymentId,
      wave: req.wave,
      fromVersions: req.fromVersions,
      toVersion: req.toVersion,
      window: req.window,
      takenAt: req.takenAt,
      devices,
    });
  }

  /**
   * One device over [from, to] on one firmware version; continuous metrics over [metricsFrom, to]
   * (default `from`). Rollup slots that end by `metricsFrom` are left out of the metrics; the slot it
   * falls in is replaced by the raw samples from `metricsFrom` on (left out when those were pruned).
   */
  summarizeDevice(
    deviceId: string,
    version: string,
    from: number,
    to: number,
    metricsFrom = from,
  ): { summary: Pick<DeviceSummary, 'exposureH' | 'samples' | 'events' | 'metrics' | 'errorSignatures' | 'logSample'>; lastAt: number | undefined } {
    const slotFrom = Math.floor(from / this.rollupSlotMs) * this.rollupSlotMs;
    const rows = this.rollupStmt.all(deviceId, version, slotFrom, to + 1) as RollupRow[];
    const events = { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 };
    const sums: Partial<Record<ContinuousMetric, MetricSums>> = {};
    let samples = 0;
    let exposureMs = 0;
    let lastAt: number | undefined;
    const lines: string[] = [];
    const warm = metricsFrom > from;
    const rawFrom = Math.min(from, metricsFrom);
    const raw = (this.rawStmt.all(deviceId, rawFrom, to, version) as Buffer[]).flatMap((data) => unpackSamples(data, rawFrom, to));
    for (const row of rows) {
      const r = rollupFromRow(row);
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
