/**
 * Shell half of creating a deployment: picks the id (`d-<date>-<version>-<random>` unless the request
 * or an offline-signed manifest names one) and the bucket offset, signs the deployment's manifest for
 * its target, then lets the engine's pure `buildDeploymentSpec` apply defaults and validate. Time and
 * randomness are injected.
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
  /** Uniform in [0, 1): picks the bucket offset so that each deployment has different canaries, and the id's suffix. */
  random: () => number;
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

/** A new deployment id: the UTC day, the version (id characters only) and 24 random bits. */
export function newDeploymentId(firmwareVersion: string, now: number, random: () => number): string {
  const day = new Date(now).toISOString().slice(0, 10).replace(/-/g, '');
  const suffix = Math.floor(random() * 0xffffff).toString(16).padStart(6, '0');
  return `d-${day}-${firmwareVersion.replace(/[^A-Za-z0-9.-]/g, '')}-${suffix}`;
}

export async function prepareDeployment(req: DeploymentRequest, deps: DeploymentFactoryDeps, createdBy: string): Promise<PreparedDeployment> {
  // Check what can be checked before signing anything.
  checkSpecSemantics({ maintenanceWindows: req.maintenanceWindows, target: req.target }, deps.now());
  // A manifest signed offline for one deployment (a rollback manifest must be) names it: the
  // deployment takes that id, or devices would refuse the manifest.
  const bound = deps.firmware.boundDeploymentId(req.firmwareVersion);
  if (bound !== undefined && req.id !== undefined && req.id !== bound) {
    throw new ValidationError('deployment', [`the manifest of ${req.firmwareVersion} was signed for deployment ${bound}; create it with that id (or none), or sign a manifest for ${req.id}`]);
  }
  const id = req.id ?? bound ?? newDeploymentId(req.firmwareVersion, deps.now(), deps.random);
  if (req.waves && req.waves.length === 0) throw new ValidationError('deployment', ['waves: give at least one wave']);
  // A rollout that stops part-way would report `completed` with most of the target never updated.
  // (Checked here, for new deployments: the engine still runs a stored one whose waves stop short.)
  const last = req.waves?.[req.waves.length - 1]?.percent;
  if (last !== undefined && last !== 100) {
    throw new ValidationError('deployment', [
      `waves: the last wave must reach 100 %, not ${last} %: waves are cumulative shares of the target, and a deployment is complete only when all of it is updated; to stop before a wave, require approval for it`,
    ]);
  }
  const { envelope, artifact, offlineSigned, warnings } = await deps.firmware.deploymentManifest({
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
    manifestOrigin: offlineSigned ? 'offline' : 'coordinator',
    artifact: { sha256: artifact.sha256, size: artifact.size, url: deps.firmware.artifactUrl(artifact.sha256) },
    createdAt: deps.now(),
    createdBy,
  });
  return { spec, warnings };
}
