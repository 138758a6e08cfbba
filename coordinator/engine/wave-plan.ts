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

/** True when the range parses (used to validate requests before signing anything). */
export function isValidVersionRange(range: string): boolean {
  return semver.validRange(range) !== null;
}
