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
import { CONTINUOUS_METRICS, METRIC_COLUMNS, emptySums, errorSignature, mergeSums, summarize, type MetricSums } from './rollup-math.js';
import { rollupFromRow, type RollupRow } from './telemetry-store.js';

export interface CanaryDeviceInput {
  deviceId: string;
  hardwareModel: string;
  state: UpdateState;
  reason?: UpdateReason;
  /** When the device finished installing (trial or committed), if it did. */
  installedAt?: number;
  /** The last time the coordinator heard anything from it. */
  lastSeen?: number;
}

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
      'SELECT cpu, mem, temp, battery, power, boot_time FROM telemetry_raw WHERE device_id = ? AND firmware_version = ? AND at >= ? AND at <= ?',
    );
  }

  build(req: SnapshotRequest): CanarySnapshot {
    const devices: DeviceSummary[] = [];
    for (const c of req.canary) {
      const from = Math.max(req.window.from, c.installedAt ?? req.window.from);
      const s = this.summarizeDevice(c.deviceId, req.toVersion, from, req.window.to);
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

  /** One device over [from, to] on one firmware version. */
  summarizeDevice(
    deviceId: string,
    version: string,
    from: number,
    to: number,
  ): { summary: Pick<DeviceSummary, 'exposureH' | 'samples' | 'events' | 'metrics' | 'errorSignatures' | 'logSample'>; lastAt: number | undefined } {
    const slotFrom = Math.floor(from / this.rollupSlotMs) * this.rollupSlotMs;
    const rows = this.rollupStmt.all(deviceId, version, slotFrom, to + 1) as RollupRow[];
    const events = { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 };
    const sums: Partial<Record<ContinuousMetric, MetricSums>> = {};
    let samples = 0;
    let exposureMs = 0;
    let lastAt: number | undefined;
    const lines: string[] = [];
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
      for (const name of CONTINUOUS_METRICS) {
        const s = r.metrics[name];
        if (s) mergeSums((sums[name] ??= emptySums()), s, shiftH);
      }
      lines.push(...r.errorLines);
    }
    const raw = this.rawStmt.all(deviceId, version, from, to) as Record<string, number | null>[];
    const metrics: Partial<Record<ContinuousMetric, MetricSummary>> = {};
    for (const name of CONTINUOUS_METRICS) {
      const s = sums[name];
      if (!s) continue;
      const col = METRIC_COLUMNS[name];
      const values = raw.map((r) => r[col]).filter((v): v is number => typeof v === 'number');
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
}
