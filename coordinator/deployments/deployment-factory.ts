/**
 * Shell half of creating a deployment: picks the id and bucket offset, signs the deployment's
 * manifest for its target, then lets the engine's pure `buildDeploymentSpec` apply defaults and
 * validate. Ids and randomness are injected.
 */
import { ValidationError } from '../../protocol/errors.js';
import { BUCKET_COUNT } from '../../protocol/bucket.js';
import type { DeploymentRequest, DeploymentSpec } from '../engine/types.js';
import { buildDeploymentSpec, checkSpecSemantics } from '../engine/deployment-spec.js';
import type { FirmwareService } from '../artifacts/firmware-service.js';

export interface DeploymentFactoryDeps {
  firmware: FirmwareService;
  now: () => number;
  /** Uniform in [0, 1): picks the bucket offset so that each deployment has different canaries. */
  random: () => number;
  /** Unique id source. */
  newId: (firmwareVersion: string) => string;
  /** Manifest lifetime; long enough for the slowest rollout. Default 30 days. */
  manifestTtlMs?: number;
}

export function prepareDeployment(req: DeploymentRequest, deps: DeploymentFactoryDeps, createdBy: string): DeploymentSpec {
  // Check what can be checked before signing anything.
  checkSpecSemantics({ maintenanceWindows: req.maintenanceWindows, target: req.target }, deps.now());
  const id = req.id ?? deps.newId(req.firmwareVersion);
  if (req.waves && req.waves.length === 0) throw new ValidationError('deployment', ['waves: give at least one wave']);
  const { envelope, artifact } = deps.firmware.deploymentManifest({
    deploymentId: id,
    firmwareVersion: req.firmwareVersion,
    hardwareModels: req.target.hardwareModels,
    versionRange: req.target.versionRange,
    tags: req.target.tags,
    ttlMs: deps.manifestTtlMs ?? 30 * 24 * 3600_000,
  });
  return buildDeploymentSpec(req, {
    id,
    bucketOffset: Math.floor(deps.random() * BUCKET_COUNT) % BUCKET_COUNT,
    manifest: envelope,
    artifact: { sha256: artifact.sha256, size: artifact.size, url: deps.firmware.artifactUrl(artifact.sha256) },
    createdAt: deps.now(),
    createdBy,
  });
}
