/**
 * A canary snapshot built from the engine's own device progress: update states, and silence past the
 * wave deadline. The shell's snapshot provider enriches it with telemetry and the control cohort;
 * without one the hard gates judge this. Pure.
 */
import { CanarySnapshotSchema, type CanarySnapshot, type DeviceSummary } from '@fleet/protocol/canary';
import { allDevices } from './device-progress.js';
import type { DeploymentState, DeviceProgress } from './types.js';
import { definedProps } from '@fleet/firmware/defined-props';

/**
 * Canary devices of a gate: every tracked device in waves 0..wave (cumulative). Members that never
 * reported are included (they count toward the minimum of reporting devices, not toward failures).
 */
export function canaryDevices(state: DeploymentState, wave: number): DeviceProgress[] {
  return allDevices(state).filter((d) => d.wave <= wave);
}

export function deviceSummary(state: DeploymentState, d: DeviceProgress): DeviceSummary {
  const spec = state.core.spec;
  return {
    deviceId: d.deviceId,
    cohort: 'canary',
    hardwareModel: d.hardwareModel ?? spec.target.hardwareModels[0]!,
    firmwareVersion: d.runningVersion ?? d.fromVersion ?? spec.firmwareVersion,
    exposureH: 0,
    samples: 0,
    events: { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 },
    metrics: {},
    ...(d.state !== 'pending' ? { update: { state: d.state, ...definedProps({ reason: d.reason }) } } : {}),
    // Silent past the deadline without finishing: failure for the gate.
    silent: d.timedOut && (d.state === 'pending' || !['committed', 'failed', 'rejected', 'rolled-back', 'already-installed'].includes(d.state)),
    errorSignatures: [],
    logSample: [],
  };
}

/** The snapshot for the gate of `wave`, from engine state alone (no telemetry, no control cohort). */
export function snapshotFromProgress(state: DeploymentState, wave: number, now: number): CanarySnapshot {
  const core = state.core;
  const from = new Set<string>();
  const devices = canaryDevices(state, wave).map((d) => {
    if (d.fromVersion) from.add(d.fromVersion);
    return deviceSummary(state, d);
  });
  const started = core.waves[0]?.startedAt ?? now;
  return CanarySnapshotSchema.parse({
    v: 1,
    kind: 'canary-snapshot',
    deploymentId: core.spec.id,
    wave,
    fromVersions: [...from].sort(),
    toVersion: core.spec.firmwareVersion,
    window: { from: Math.min(started, now), to: now },
    takenAt: now,
    devices,
  });
}
