/**
 * Assembles a wave gate's canary snapshot: the canary cohort is every device of the deployment's
 * started waves (up to this one) — with its update state and reason, without one when it never
 * reported, and silent when it went quiet after installing or timed out — and the control cohort is eligible devices
 * in waves not yet started, on their current version, over the same window. I/O shell (reads).
 */
import { createHash } from 'node:crypto';
import type { CanarySnapshot } from '@fleet/protocol/canary';
import type { DeploymentState, DeviceProgress } from '../engine/types.js';
import { matchesTarget, type DeviceRegistry } from '../registry/device-registry.js';
import type { CanaryDeviceInput, ControlDeviceInput, SnapshotBuilder } from '../telemetry/snapshot-builder.js';
import { waveOfBucket } from '@fleet/protocol/bucket';

export interface GateSnapshotOptions {
  registry: DeviceRegistry;
  builder: SnapshotBuilder;
  silentAfterMs: number;
  /** Largest control cohort (a deterministic sample of the eligible fleet). Default 1,000. */
  maxControl?: number;
  /**
   * Clock time after each canary's commit (or trial boot) left out of its continuous metrics: the
   * update's reboot spikes CPU. Default 5 minutes (the snapshot builder's DEFAULT_WARM_UP_MS).
   */
  warmUpMs?: number;
}

/** States whose last status is when the device began running the new image after its reboot. */
const RUNNING_NEW: ReadonlySet<string> = new Set(['trial', 'committed']);

/** Devices whose first and every status says the image is (or was) on the device. */
const INSTALLED: ReadonlySet<string> = new Set(['rebooting', 'trial', 'committed', 'rolling-back', 'rolled-back']);

const sampleKey = (deploymentId: string, deviceId: string): string =>
  createHash('sha256').update(`${deploymentId}/${deviceId}`).digest('hex');

export class GateSnapshots {
  constructor(private readonly o: GateSnapshotOptions) {}

  async build(state: DeploymentState, wave: number, now: number, devices: readonly DeviceProgress[]): Promise<CanarySnapshot> {
    const core = state.core;
    const spec = core.spec;
    const started = core.waves[wave]?.startedAt ?? core.waves[0]?.startedAt ?? now;
    const window = { from: Math.min(started, now), to: now };
    const canary: (CanaryDeviceInput & { forceSilent?: boolean; neverReported?: boolean })[] = [];
    const fromVersions = new Set<string>();
    for (const d of devices) {
      if (d.wave > wave) continue;
      const reg = this.o.registry.get(d.deviceId);
      const model = d.hardwareModel ?? reg?.hardwareModel ?? spec.target.hardwareModels[0]!;
      if (d.fromVersion) fromVersions.add(d.fromVersion);
      if (d.state === 'pending') {
        // Never reported: still a canary (as in the engine's snapshotFromProgress), so a wave whose
        // members stay quiet holds at the sufficiency check instead of passing with no evidence. Silent
        // (failure for the gate) only once it timed out.
        canary.push({
          deviceId: d.deviceId,
          hardwareModel: model,
          state: 'idle',
          neverReported: true,
          ...(d.timedOut ? { forceSilent: true } : {}),
          ...(reg?.lastSeen !== undefined ? { lastSeen: reg.lastSeen } : {}),
        });
        continue;
      }
      const state = d.state;
      canary.push({
        deviceId: d.deviceId,
        hardwareModel: model,
        state,
        ...(d.reason !== undefined ? { reason: d.reason } : {}),
        ...(INSTALLED.has(state) && d.lastStatusAt !== undefined ? { installedAt: d.lastStatusAt } : {}),
        ...(RUNNING_NEW.has(state) && d.lastStatusAt !== undefined ? { runningSince: d.lastStatusAt } : {}),
        lastSeen: Math.max(reg?.lastSeen ?? 0, d.lastSeenAt),
        ...(d.fromVersion !== undefined ? { fromVersion: d.fromVersion } : {}),
        ...(d.timedOut ? { forceSilent: true } : {}),
      });
    }
    const percents = spec.waves.map((w) => w.percent);
    const target = { hardware: spec.target.hardwareModels, versionRange: spec.target.versionRange, tags: spec.target.tags };
    const control: ControlDeviceInput[] = [];
    const inDeployment = new Set(devices.map((d) => d.deviceId));
    for (const d of this.o.registry.all()) {
      if (inDeployment.has(d.deviceId) || !matchesTarget(d, target) || d.firmwareVersion === spec.firmwareVersion) continue;
      const w = waveOfBucket(d.bucket, spec.bucketOffset, percents);
      if (w >= 0 && w <= core.current) continue;
      control.push({ deviceId: d.deviceId, hardwareModel: d.hardwareModel!, firmwareVersion: d.firmwareVersion!, ...(d.lastSeen !== undefined ? { lastSeen: d.lastSeen } : {}) });
      fromVersions.add(d.firmwareVersion!);
    }
    const max = this.o.maxControl ?? 1000;
    const sampled = control.length > max
      ? control.map((c) => ({ c, k: sampleKey(spec.id, c.deviceId) })).sort((a, b) => (a.k < b.k ? -1 : 1)).slice(0, max).map((x) => x.c)
      : control;
    const snapshot = await this.o.builder.build({
      deploymentId: spec.id,
      wave,
      fromVersions: [...fromVersions].sort(),
      toVersion: spec.firmwareVersion,
      window,
      takenAt: now,
      canary,
      control: sampled,
      silentAfterMs: this.o.silentAfterMs,
      // The deployment's judge settings first, then the coordinator's.
      ...((spec.judge?.warmUpMs ?? this.o.warmUpMs) !== undefined ? { warmUpMs: spec.judge?.warmUpMs ?? this.o.warmUpMs } : {}),
      ...(spec.judge?.slots !== undefined ? { slots: spec.judge.slots } : {}),
    });
    const forced = new Set(canary.filter((c) => c.forceSilent).map((c) => c.deviceId));
    for (const d of snapshot.devices) if (d.cohort === 'canary' && forced.has(d.deviceId)) d.silent = true;
    // A member that never reported carries no update state (the gate reads that as no report).
    const quiet = new Set(canary.filter((c) => c.neverReported).map((c) => c.deviceId));
    for (const d of snapshot.devices) if (d.cohort === 'canary' && quiet.has(d.deviceId)) delete d.update;
    return snapshot;
  }
}
