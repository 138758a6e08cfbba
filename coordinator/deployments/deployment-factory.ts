/**
 * Shell half of creating a deployment: picks the id and bucket offset, signs the deployment's
 * manifest for its target, then lets the engine's pure `buildDeploymentSpec` apply defaults and
 * validate. Ids and randomness are injected.
 */
import { ValidationError } from '@fleet/protocol/errors';
import { BUCKET_COUNT } from '@fleet/protocol/bucket';
import { DEFAULT_MANIFEST_TTL_MS } from '@fleet/firmware/manifest';
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
  /**
   * Manifest lifetime. Default DEFAULT_MANIFEST_TTL_MS (7 days): a rollout with nightly windows and
   * approvals fits; a device offline for longer than that never takes it (`expired`).
   */
  manifestTtlMs?: number;
}

/** The deployment's spec, and what the operator should hear about its manifest at creation. */
export interface PreparedDeployment {
  spec: DeploymentSpec;
  warnings: string[];
}

export function prepareDeployment(req: DeploymentRequest, deps: DeploymentFactoryDeps, createdBy: string): PreparedDeployment {
  // Check what can be checked before signing anything.
  checkSpecSemantics({ maintenanceWindows: req.maintenanceWindows, target: req.target }, deps.now());
  // A manifest signed offline for one deployment (a rollback manifest must be) names it: the
  // deployment takes that id, or devices would refuse the manifest.
  const bound = deps.firmware.boundDeploymentId(req.firmwareVersion);
  if (bound !== undefined && req.id !== undefined && req.id !== bound) {
    throw new ValidationError('deployment', [`the manifest of ${req.firmwareVersion} was signed for deployment ${bound}; create it with that id (or none), or sign a manifest for ${req.id}`]);
  }
  const id = req.id ?? bound ?? deps.newId(req.firmwareVersion);
  if (req.waves && req.waves.length === 0) throw new ValidationError('deployment', ['waves: give at least one wave']);
  // A rollout that stops part-way would report `completed` with most of the target never updated.
  // (Checked here, for new deployments: the engine still runs a stored one whose waves stop short.)
  const last = req.waves?.[req.waves.length - 1]?.percent;
  if (last !== undefined && last !== 100) {
    throw new ValidationError('deployment', [
      `waves: the last wave must reach 100 %, not ${last} %: waves are cumulative shares of the target, and a deployment is complete only when all of it is updated; to stop before a wave, require approval for it`,
    ]);
  }
  const { envelope, artifact, warnings } = deps.firmware.deploymentManifest({
    deploymentId: id,
    firmwareVersion: req.firmwareVersion,
    hardwareModels: req.target.hardwareModels,
    versionRange: req.target.versionRange,
    tags: req.target.tags,
    ttlMs: deps.manifestTtlMs ?? DEFAULT_MANIFEST_TTL_MS,
  });
  const spec = buildDeploymentSpec(req, {
    id,
    bucketOffset: Math.floor(deps.random() * BUCKET_COUNT) % BUCKET_COUNT,
    manifest: envelope,
    artifact: { sha256: artifact.sha256, size: artifact.size, url: deps.firmware.artifactUrl(artifact.sha256) },
    createdAt: deps.now(),
    createdBy,
  });
  return { spec, warnings };
}
