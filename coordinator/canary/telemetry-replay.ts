/**
 * Replays telemetry and statuses through the real telemetry store and snapshot builder into a canary
 * snapshot, in process on an in-memory SQLite `telemetry.db`: the path a gate's snapshot takes in the
 * coordinator, without a broker. The golden set and the judge's calibration study are built this way,
 * so they test the pipeline's data model rather than assume it. Shell helper (SQLite in memory).
 */
import type { CanarySnapshot } from '@fleet/protocol/canary';
import type { StatusMessage, TelemetryMessage } from '@fleet/protocol/messages';
import type { UpdateState } from '@fleet/protocol/update-state';
import { openTelemetrySqlite } from '../telemetry/telemetry-schema.js';
import { TelemetryStore, type TelemetryStoreOptions } from '../telemetry/telemetry-store.js';
import { SnapshotBuilder, type CanaryDeviceInput, type ControlDeviceInput } from '../telemetry/snapshot-builder.js';
import { definedProps } from '@fleet/firmware/defined-props';

export interface ReplayDevice {
  deviceId: string;
  hardwareModel: string;
  cohort: 'canary' | 'control';
}

export interface ReplayRequest {
  deploymentId: string;
  wave: number;
  toVersion: string;
  window: { from: number; to: number };
  devices: readonly ReplayDevice[];
  /** Telemetry in receive order, each with its receive time. */
  telemetry: Iterable<{ msg: TelemetryMessage; at: number }>;
  /** The canaries' update statuses (their `at` is taken as the receive time). */
  statuses: readonly StatusMessage[];
  /** Store options; defaults are the coordinator's (1-minute rollups, 5-minute gap cap). */
  store?: Partial<TelemetryStoreOptions>;
  silentAfterMs?: number;
  warmUpMs?: number;
  slots?: number;
}

/** Statuses whose time is when the device began running the new image (as gate-snapshots.ts reads them). */
const RUNNING_NEW: ReadonlySet<UpdateState> = new Set(['trial', 'committed']);
const INSTALLED: ReadonlySet<UpdateState> = new Set(['rebooting', 'trial', 'committed', 'rolling-back', 'rolled-back']);

/** Messages read, prepared and added to the store at a time, and written per transaction. */
const REPLAY_BATCH = 20_000;

/** Runs the replay and returns the snapshot the gate would judge at `window.to`. */
export async function snapshotFromTelemetry(req: ReplayRequest): Promise<CanarySnapshot> {
  const options: TelemetryStoreOptions = { rollupSlotMs: 60_000, rawRetentionMs: 48 * 3_600_000, maxExposureGapMs: 5 * 60_000, ...req.store };
  const sql = openTelemetrySqlite(':memory:');
  try {
    const store = new TelemetryStore(sql, options);
    const lastSeen = new Map<string, number>();
    const versions = new Map<string, string>();
    let batch: { msg: TelemetryMessage; at: number }[] = [];
    const write = async (): Promise<void> => {
      await store.prepare(batch.map((m) => m.msg.deviceId), batch.map((m) => m.at));
      for (const { msg, at } of batch) store.add(msg, at);
      batch = [];
      await store.flush();
    };
    for (const item of req.telemetry) {
      if (item.at > req.window.to) continue;
      batch.push(item);
      lastSeen.set(item.msg.deviceId, item.at);
      versions.set(item.msg.deviceId, item.msg.firmwareVersion);
      if (batch.length >= REPLAY_BATCH) await write();
    }
    await write();
    const last = new Map<string, StatusMessage>();
    for (const s of req.statuses) {
      if (s.at > req.window.to) continue;
      const prev = last.get(s.deviceId);
      if (!prev || s.seq > prev.seq) last.set(s.deviceId, s);
    }
    const canary: CanaryDeviceInput[] = [];
    const control: ControlDeviceInput[] = [];
    const fromVersions = new Set<string>();
    for (const d of req.devices) {
      const seen = lastSeen.get(d.deviceId);
      if (d.cohort === 'control') {
        const v = versions.get(d.deviceId);
        if (v === undefined) continue;
        fromVersions.add(v);
        control.push({ deviceId: d.deviceId, hardwareModel: d.hardwareModel, firmwareVersion: v, ...definedProps({ lastSeen: seen }) });
        continue;
      }
      const s = last.get(d.deviceId);
      const from = s ? (s.state === 'rolled-back' ? s.toVersion : s.fromVersion) : undefined;
      if (from !== undefined) fromVersions.add(from);
      canary.push({
        deviceId: d.deviceId,
        hardwareModel: d.hardwareModel,
        state: s?.state ?? 'idle',
        ...(s?.reason !== undefined ? { reason: s.reason } : {}),
        ...(s && INSTALLED.has(s.state) ? { installedAt: s.at } : {}),
        ...(s && RUNNING_NEW.has(s.state) ? { runningSince: s.at } : {}),
        ...(seen !== undefined || s ? { lastSeen: Math.max(seen ?? 0, s?.at ?? 0) } : {}),
        ...definedProps({ fromVersion: from }),
      });
    }
    const snapshot = await new SnapshotBuilder(sql, options.rollupSlotMs).build({
      deploymentId: req.deploymentId,
      wave: req.wave,
      fromVersions: [...fromVersions].sort(),
      toVersion: req.toVersion,
      window: req.window,
      takenAt: req.window.to,
      canary,
      control,
      silentAfterMs: req.silentAfterMs ?? options.maxExposureGapMs,
      ...definedProps({ warmUpMs: req.warmUpMs, slots: req.slots }),
    });
    // A canary that never reported carries no update state (the gate reads that as no report).
    for (const d of snapshot.devices) if (d.cohort === 'canary' && d.update?.state === 'idle') delete d.update;
    return snapshot;
  } finally {
    await sql.close();
  }
}
