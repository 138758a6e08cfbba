/**
 * Fleet composition: turns a scenario's fleet spec and a seed into concrete simulated devices — id,
 * hardware model, personal baselines, offline or slow link. Pure: the same seed gives the same fleet.
 */
import type { FleetSpec, HardwareProfile } from './scenario.js';
import { Rng } from './rng.js';
import { parseDuration } from '@fleet/firmware/duration';

/** One device's own baseline, drawn around its hardware model's. */
export interface DeviceBaseline {
  cpuPct: number;
  memUsedMb: number;
  memTotalMb: number;
  temperatureC: number;
  powerW: number;
  battery: boolean;
  bootTimeS: number;
  crashesPerH: number;
  errorsPerH: number;
}

export interface SimDeviceSpec {
  index: number;
  deviceId: string;
  hardwareModel: string;
  baseline: DeviceBaseline;
  /** Offline at the start; `returnAtMs` (simulated, after the run starts) when it comes back, if ever. */
  offline: { returnAtMs: number | null } | null;
  /** Download throttle for devices on slow links, KiB/s. */
  slowLinkKiBps: number | null;
  /** Per-device random stream (behaviour noise, faults). */
  seed: string;
}

/** Zero-padded ids so that listings sort; the run id keeps two simulations on one broker apart. */
export function deviceIdFor(runId: string, index: number): string {
  return `${runId}-d${String(index).padStart(5, '0')}`;
}

const clampPct = (v: number): number => Math.min(100, Math.max(0, v));

function drawBaseline(profile: HardwareProfile, spread: number, rng: Rng): DeviceBaseline {
  // Log-normal-ish multiplicative spread keeps every baseline positive.
  const vary = (v: number): number => v * Math.exp(rng.normal(0, spread));
  return {
    cpuPct: clampPct(vary(profile.cpuPct)),
    memUsedMb: vary(profile.memUsedMb),
    memTotalMb: profile.memTotalMb,
    temperatureC: profile.temperatureC + rng.normal(0, 3 * spread * 10),
    powerW: vary(profile.powerW),
    battery: profile.battery,
    bootTimeS: vary(profile.bootTimeS),
    crashesPerH: vary(profile.crashesPerH),
    errorsPerH: vary(profile.errorsPerH),
  };
}

/** A device that exists already (provisioned by an operator): its id, and its model where known. */
export interface DeviceIdentity {
  deviceId: string;
  hardwareModel?: string;
}

/**
 * Builds `count` devices for a fleet spec. With `identities`, device i takes identity i: its id, and
 * its known hardware model (with that model's profile when the spec has one).
 */
export function composeFleet(spec: FleetSpec, count: number, seed: string | number, runId: string, identities?: readonly DeviceIdentity[]): SimDeviceSpec[] {
  const root = new Rng(seed).fork('fleet');
  const returnAt = spec.offlineReturnAfter !== undefined ? parseDuration(spec.offlineReturnAfter) : null;
  const devices: SimDeviceSpec[] = [];
  for (let index = 0; index < count; index++) {
    const rng = root.fork(`device-${index}`);
    const drawn = rng.weighted(spec.hardware, (h) => h.share);
    const identity = identities?.[index];
    const known = identity?.hardwareModel;
    const profile = known === undefined ? drawn : spec.hardware.find((h) => h.model === known) ?? { ...drawn, model: known };
    const offline = rng.chance(spec.offlineShare) ? { returnAtMs: returnAt } : null;
    const slow = rng.chance(spec.slowLinkShare) ? spec.slowLinkKiBps : null;
    devices.push({
      index,
      deviceId: identity?.deviceId ?? deviceIdFor(runId, index),
      hardwareModel: profile.model,
      baseline: drawBaseline(profile, spec.deviceSpread, rng),
      offline,
      slowLinkKiBps: slow,
      seed: `${String(seed)}/device-${index}`,
    });
  }
  return devices;
}

/** Counts per hardware model, for the report. */
export function fleetSummary(devices: readonly SimDeviceSpec[]): { models: Record<string, number>; offline: number; slowLinks: number } {
  const models: Record<string, number> = {};
  let offline = 0;
  let slowLinks = 0;
  for (const d of devices) {
    models[d.hardwareModel] = (models[d.hardwareModel] ?? 0) + 1;
    if (d.offline) offline++;
    if (d.slowLinkKiBps !== null) slowLinks++;
  }
  return { models, offline, slowLinks };
}
