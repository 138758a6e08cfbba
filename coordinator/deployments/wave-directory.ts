/** Answers the engine's "who is in these buckets and matches this target" from the registry. */
import type { DeploymentSpec, WaveDirectory, WaveMember } from '../engine/types.js';
import { matchesTarget, type DeviceRegistry } from '../registry/device-registry.js';

export class RegistryWaveDirectory implements WaveDirectory {
  constructor(private readonly registry: DeviceRegistry) {}

  members(spec: DeploymentSpec, buckets: readonly number[]): WaveMember[] {
    const wanted = new Set(buckets);
    const target = { hardware: spec.target.hardwareModels, versionRange: spec.target.versionRange, tags: spec.target.tags };
    const out: WaveMember[] = [];
    for (const d of this.registry.all()) {
      if (!wanted.has(d.bucket) || !matchesTarget(d, target)) continue;
      out.push({ deviceId: d.deviceId, bucket: d.bucket, hardwareModel: d.hardwareModel!, firmwareVersion: d.firmwareVersion!, online: d.online });
    }
    return out;
  }
}
