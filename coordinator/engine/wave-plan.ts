/**
 * Which buckets each wave covers, which wave a device belongs to, and whether a device matches a
 * deployment's target. Pure (semver is pure JS).
 */
import semver from 'semver';
import { bucketOf, waveBuckets, waveOfBucket } from '@fleet/protocol/bucket';
import type { DeploymentCore, DeploymentSpec } from './types.js';

/** The buckets wave `index` adds (cumulative percentages; rank order). */
export function bucketsOfWave(spec: DeploymentSpec, index: number): number[] {
  const to = spec.waves[index]?.percent;
  if (to === undefined) return [];
  const from = index === 0 ? 0 : spec.waves[index - 1]!.percent;
  return waveBuckets(spec.bucketOffset, from, to);
}

/** Every bucket of every wave that has started (published), in wave order. */
export function startedBuckets(core: DeploymentCore): number[] {
  const out: number[] = [];
  for (const w of core.waves) if (w.startedAt !== undefined) out.push(...bucketsOfWave(core.spec, w.index));
  return out;
}

/** The wave (0-based) a bucket belongs to in this deployment, or -1 when no wave covers it. */
export function waveOfBucketIn(spec: DeploymentSpec, bucket: number): number {
  return waveOfBucket(bucket, spec.bucketOffset, spec.waves.map((w) => w.percent));
}

export function waveOfDevice(spec: DeploymentSpec, deviceId: string): { bucket: number; wave: number } {
  const bucket = bucketOf(deviceId);
  return { bucket, wave: waveOfBucketIn(spec, bucket) };
}

export interface DeviceFacts {
  hardwareModel: string;
  firmwareVersion: string;
  tags: readonly string[];
}

/** True when the device is one this deployment targets (model, current-version range, every tag). */
export function matchesTarget(spec: DeploymentSpec, d: DeviceFacts): boolean {
  if (!spec.target.hardwareModels.includes(d.hardwareModel)) return false;
  if (d.firmwareVersion === spec.firmwareVersion) return false;
  if (!semver.satisfies(d.firmwareVersion, spec.target.versionRange, { includePrerelease: true })) return false;
  const tags = new Set(d.tags);
  return spec.target.tags.every((t) => tags.has(t));
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

/** True when the range parses (used to validate requests before signing anything). */
export function isValidVersionRange(range: string): boolean {
  return semver.validRange(range) !== null;
}
