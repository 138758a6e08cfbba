/**
 * What the operator hears when a deployment is created, all in one place: a deployment that matches no
 * known device is refused; canary waves too small to judge, a soak too short to see a regression, and
 * what the firmware does to the devices' anti-rollback floors are warned about. The rules are pure
 * functions; `creationWarnings` applies them to the registry as it is now.
 *
 * Floors. A device raises its floor to an image's securityVersion when it commits it, never before (a
 * failed trial falls back to the old image), and no path boots an image below the floor afterwards. So
 * a deployment that raises the floor cannot be rolled back on a device once the device committed it:
 * the rollback command is refused (the device reports `below-security-floor` and stays), and the
 * rollback records it as refused. Devices whose floor is already above the image refuse the manifest.
 */
import semver from 'semver';
import { BUCKET_COUNT } from '@fleet/protocol/bucket';
import { FleetError } from '@fleet/protocol/errors';
import type { DeploymentSpec } from '../engine/types.js';
import { waveOfBucketIn, type DeviceFacts } from '../engine/wave-plan.js';
import { planWarnings } from '../canary/soak-planner.js';
import { matchesTarget, type DeviceRegistry } from '../registry/device-registry.js';
import { RegistryWaveDirectory } from './wave-directory.js';

/** A deployment whose target matches no known device. */
export class NoEligibleDevicesError extends FleetError {
  constructor(message: string) {
    super('no-eligible-devices', message);
  }
}

/** What creation warns about, by kind: small canary waves (and soak power), and everything else. */
export interface CreationWarnings {
  /** Canary waves too small to judge, soaks too short for the regression the judge must see. */
  smallWaves: string[];
  /** Security floors, and whatever the manifest's signer should hear. */
  other: string[];
}

/**
 * The warnings for a new deployment against the devices the registry knows now; throws
 * NoEligibleDevicesError when it matches none of them. A device is known once it has said hello (its
 * version decides whether it is in the target): a deployment that matches no known device would pass
 * every wave as empty and leave its manifest retained for whoever connects later, judged by no canary.
 */
export function creationWarnings(spec: DeploymentSpec, registry: DeviceRegistry): CreationWarnings {
  const known = new RegistryWaveDirectory(registry).members(spec, Array.from({ length: BUCKET_COUNT }, (_, b) => b));
  if (known.length === 0) {
    // Ghosts (connected without credentials) never take part in a rollout: they are not counted.
    const said: KnownDevice[] = [];
    for (const d of registry.all()) {
      if (!d.ghost && d.hardwareModel !== undefined && d.firmwareVersion !== undefined) said.push({ deviceId: d.deviceId, hardwareModel: d.hardwareModel, firmwareVersion: d.firmwareVersion, tags: d.tags });
    }
    throw new NoEligibleDevicesError(explainNoMatch(spec, said));
  }
  // Each known device counted in its own wave: one pass over the registry, not one per wave.
  const sizes = spec.waves.map(() => 0);
  for (const m of known) {
    const wave = waveOfBucketIn(spec, m.bucket);
    if (wave >= 0) sizes[wave]!++;
  }
  const securityVersion = spec.manifest.signed['securityVersion'];
  const floors: number[] = [];
  if (typeof securityVersion === 'number') {
    const target = { hardware: spec.target.hardwareModels, versionRange: spec.target.versionRange, tags: spec.target.tags };
    for (const d of registry.all()) if (matchesTarget(d, target)) floors.push(d.securityFloor);
  }
  return {
    smallWaves: [...smallWaveWarnings(spec, sizes, known.length), ...planWarnings(spec, sizes, known.length)],
    other: typeof securityVersion === 'number' ? floorWarnings(spec.firmwareVersion, securityVersion, floors) : [],
  };
}

/**
 * Warnings at creation for canary waves (every wave but the last) too small to judge: `sizes[i]` is
 * how many of the `known` devices in the target (said hello, match it) wave i covers now. With fewer
 * than the wave's `minDevicesReporting` its gate judges on a handful of devices, where one noisy device
 * decides; with none it passes empty, and the first wave that has devices is the first real canary —
 * or, when that is the last wave, no canary judges the release before it reaches every device. A
 * single 100 % wave has no canary at all. Devices that connect later join their bucket's wave, so
 * these are warnings, not refusals. Waves are numbered from 1, as `fleet deploy status` shows them. Pure.
 */
export function smallWaveWarnings(spec: DeploymentSpec, sizes: readonly number[], known: number): string[] {
  const out: string[] = [];
  const last = spec.waves.length - 1;
  const devices = `${known} known device${known === 1 ? '' : 's'}`;
  if (last === 0) {
    out.push(`a single ${spec.waves[0]!.percent} % wave has no canary: every device in the target (${devices} now) gets the firmware at once, and only the hard limits judge it afterwards; with more devices use canary waves (--waves 1,5,25,100)`);
  }
  for (let i = 0; i < last; i++) {
    const wave = spec.waves[i]!;
    const size = sizes[i] ?? 0;
    if (size >= wave.minDevicesReporting) continue;
    const what = `wave ${i + 1} (${wave.percent} %) covers ${size === 0 ? 'none' : size} of the ${devices} in the target`;
    if (size > 0) {
      out.push(`${what}, fewer than the ${wave.minDevicesReporting} it needs reporting: its gate will judge on ${size} device${size === 1 ? '' : 's'}; give it a larger share (--waves) or lower --min-devices`);
      continue;
    }
    // An empty wave after the first matters no more: an earlier wave either had devices (the first
    // canary) or was empty and already warned about.
    if (i > 0) continue;
    const next = sizes.findIndex((n, j) => j > i && n > 0);
    const then = next === -1 || next === last
      ? `no canary wave has a device, so wave ${last + 1} (${spec.waves[last]!.percent} %) reaches them all without a canary judging the release first`
      : `wave ${next + 1} (${spec.waves[next]!.percent} %) will be the first canary`;
    out.push(`${what}: it passes empty and ${then}; give the first wave a larger share (--waves)`);
  }
  return out;
}

/** A known device's facts for explaining a target that matches none of them. */
export interface KnownDevice extends DeviceFacts {
  deviceId: string;
}

/**
 * Why a deployment's target matches no known device, counted by the first criterion each device
 * fails (hardware model, already on the version, version range, tags), so the operator changes the
 * option that matters instead of provisioning devices that already exist. Pure.
 */
export function explainNoMatch(spec: Pick<DeploymentSpec, 'firmwareVersion' | 'target'>, known: readonly KnownDevice[]): string {
  const t = spec.target;
  const target = `models ${t.hardwareModels.join(', ')}, versions ${t.versionRange}${t.tags.length ? `, tags ${t.tags.join(', ')}` : ''}`;
  if (known.length === 0) {
    return `no device has connected yet, so none matches the target (${target}); devices become known when they are provisioned and their agent connects and says hello: ` +
      'provision them, start their agents (`fleet devices list` shows who is known; ghosts, devices without credentials, never count), then create the deployment';
  }
  const counts = { model: 0, current: 0, range: 0, tags: 0 };
  for (const d of known) {
    if (!t.hardwareModels.includes(d.hardwareModel)) counts.model++;
    else if (d.firmwareVersion === spec.firmwareVersion) counts.current++;
    else if (!semver.satisfies(d.firmwareVersion, t.versionRange, { includePrerelease: true })) counts.range++;
    else counts.tags++;
  }
  const parts: string[] = [];
  if (counts.model) parts.push(`${counts.model} ${counts.model === 1 ? 'is another' : 'are other'} hardware model${counts.model === 1 ? '' : 's'} (--target)`);
  if (counts.current) parts.push(`${counts.current} already run${counts.current === 1 ? 's' : ''} ${spec.firmwareVersion}`);
  if (counts.range) parts.push(`${counts.range} run${counts.range === 1 ? 's' : ''} a version outside ${t.versionRange} (--from)`);
  if (counts.tags) parts.push(`${counts.tags} lack${counts.tags === 1 ? 's' : ''} the tags ${t.tags.join(', ')} (--tags)`);
  return `no known device matches the target (${target}): of the ${known.length} known, ${parts.join(', ')}; ` +
    'change the target (`fleet devices list` shows each device\'s model, version and tags)';
}


/** Warnings for a firmware of `securityVersion` sent to devices with these floors. */
export function floorWarnings(firmwareVersion: string, securityVersion: number, floors: readonly number[]): string[] {
  const out: string[] = [];
  const raised = floors.filter((f) => f < securityVersion).length;
  if (raised > 0) {
    out.push(
      `firmware ${firmwareVersion} raises the security floor to ${securityVersion} on ${raised} of the ${floors.length} known target devices: ` +
        `a device that commits it can never boot an older image below ${securityVersion} again, so neither an automatic rollback nor ` +
        '`fleet deploy rollback` can take it back after its commit (it refuses with below-security-floor and stays); a failed trial still falls back',
    );
  }
  const refused = floors.filter((f) => f > securityVersion).length;
  if (refused > 0) {
    out.push(`firmware ${firmwareVersion} has securityVersion ${securityVersion}, below the floor of ${refused} of the ${floors.length} known target devices: they refuse it (below-security-floor)`);
  }
  return out;
}
