/**
 * Firmware uploads and manifests: stores an image, computes size and sha256, and signs its manifest
 * with the coordinator's key — or accepts a manifest signed offline after checking that it matches
 * the image and verifies against the coordinator's trust store. Also signs each deployment's manifest
 * (bound to the deployment id and its target) and refuses images found damaged on disk. I/O shell
 * around pure firmware/ functions.
 */
import type { Readable } from 'node:stream';
import { rm } from 'node:fs/promises';
import { ValidationError } from '@fleet/protocol/errors';
import { formatIssues } from '@fleet/protocol/parse';
import { EnvelopeSchema, ManifestSchema, type Envelope, type Manifest } from '@fleet/protocol/signed';
import { checkSignatures } from '@fleet/firmware/envelope';
import { buildManifest, rollbackBindingProblem, signManifest } from '@fleet/firmware/manifest';
import type { SigningKey } from '@fleet/firmware/keys';
import type { TrustStore } from '@fleet/firmware/trust-store';
import type { ArtifactRecord, ArtifactStore } from './artifact-store.js';
import { ARTIFACT_PATH_PREFIX } from './artifact-server.js';
import { ArtifactDamagedError, type ArtifactIntegrity, type IntegrityView } from './artifact-integrity.js';
import type { FreshnessCounters } from '../deployments/freshness-counters.js';

export interface UploadRequest {
  source: Readable;
  version: string;
  hardware: string[];
  installableOver?: string;
  securityVersion?: number;
  tags?: string[];
  /** A manifest envelope signed offline (`fleet firmware sign`); used as is when it matches. */
  offlineManifest?: unknown;
}

export interface DeploymentManifestRequest {
  deploymentId: string;
  firmwareVersion: string;
  hardwareModels: string[];
  versionRange: string;
  tags: string[];
  ttlMs: number;
}

/** The keys offline-signed manifests must verify against: the trust directory, read at each upload. */
export interface TrustSource {
  dir: string;
  load(): Promise<TrustStore>;
}

export class FirmwareService {
  constructor(
    private readonly store: ArtifactStore,
    private readonly key: SigningKey,
    private readonly trust: TrustSource,
    private readonly publicUrl: () => string,
    private readonly now: () => number,
    private readonly freshness: FreshnessCounters,
    private readonly integrity: ArtifactIntegrity,
  ) {}

  /** What is known about a stored image's integrity (no disk access). */
  integrityOf(sha256: string): IntegrityView {
    return this.integrity.view(sha256);
  }

  /** Checks a version's image (size and sha256, unless unchanged since checked); throws when damaged. */
  async requireIntact(firmwareVersion: string): Promise<ArtifactRecord> {
    const artifact = this.store.require(firmwareVersion);
    const v = await this.integrity.check(artifact.sha256, artifact.size);
    if (v.status !== 'verified') throw new ArtifactDamagedError(firmwareVersion, v.reason ?? 'not checked');
    return artifact;
  }

  artifactUrl(sha256: string): string {
    return `${this.publicUrl().replace(/\/$/, '')}${ARTIFACT_PATH_PREFIX}${sha256}`;
  }

  async upload(req: UploadRequest): Promise<ArtifactRecord> {
    const { size, sha256 } = await this.store.ingest(req.source);
    const existing = this.store.get(req.version);
    if (existing && existing.sha256 === sha256 && existing.size === size && this.integrity.view(sha256).status === 'damaged') {
      // The same bytes again for a damaged image: the ingest has just put them back in place.
      await this.integrity.check(sha256, size);
      return existing;
    }
    try {
      if (req.offlineManifest !== undefined) {
        // Read now, not at start: a public key just added to the trust directory counts without a restart.
        const trust = await this.trust.load();
        const { envelope, manifest } = this.checkOffline(req.offlineManifest, size, sha256, req.version, trust);
        return await this.store.record({ manifest: envelope, signed: manifest, offlineSigned: true, uploadedAt: this.now() });
      }
      const manifest = buildManifest({
        firmwareVersion: req.version,
        hardware: req.hardware,
        artifact: { url: this.artifactUrl(sha256), size, sha256 },
        installableOver: req.installableOver ?? '*',
        securityVersion: req.securityVersion ?? 0,
        ...(req.tags ? { tags: req.tags } : {}),
        issuedAt: this.now(),
        metadataVersion: await this.freshness.next('manifest'),
      });
      const envelope = signManifest(manifest, [this.key]) as unknown as Envelope;
      return await this.store.record({ manifest: envelope, signed: manifest, offlineSigned: false, uploadedAt: this.now() });
    } catch (err) {
      // Keep the image only if another artifact already references these bytes.
      if (!this.store.bySha(sha256)) await rm(this.store.pathOf(sha256), { force: true });
      throw err;
    }
  }

  private checkOffline(value: unknown, size: number, sha256: string, version: string, trust: TrustStore): { envelope: Envelope; manifest: Manifest } {
    const env = EnvelopeSchema.safeParse(value);
    if (!env.success) throw new ValidationError('offline manifest', formatIssues(env.error));
    const m = ManifestSchema.safeParse(env.data.signed);
    if (!m.success) throw new ValidationError('offline manifest', formatIssues(m.error));
    const sigs = checkSignatures(env.data.signed, env.data.signatures, trust);
    if (!sigs.ok) {
      throw new ValidationError('offline manifest', [
        `${sigs.reason}: ${sigs.detail}; copy the signer's public key (*.pub) into ${this.trust.dir} and upload again (it is read at each upload, no restart needed)`,
      ]);
    }
    const manifest = m.data;
    const problems: string[] = [];
    if (manifest.artifact.sha256 !== sha256) problems.push(`artifact.sha256 ${manifest.artifact.sha256} is not the image's ${sha256}`);
    if (manifest.artifact.size !== size) problems.push(`artifact.size ${manifest.artifact.size} is not the image's ${size}`);
    if (manifest.firmwareVersion !== version) problems.push(`firmwareVersion ${manifest.firmwareVersion} differs from --version ${version}`);
    // Devices refuse both (stale-manifest, unbound-rollback): say so now, not after a wave fails.
    if (manifest.metadataVersion === undefined) problems.push('it carries no metadataVersion (signed by an older `fleet firmware sign`); sign it again');
    const unbound = rollbackBindingProblem(manifest);
    if (unbound !== null) problems.push(unbound);
    if (problems.length) throw new ValidationError('offline manifest', problems);
    return { envelope: env.data, manifest };
  }

  /**
   * The manifest a deployment publishes: an offline-signed one as is (its signer decided its scope),
   * otherwise a fresh one bound to the deployment and narrowed to its target.
   */
  async deploymentManifest(req: DeploymentManifestRequest): Promise<{ envelope: Envelope; manifest: Manifest; artifact: ArtifactRecord; offlineSigned: boolean; warnings: string[] }> {
    const artifact = this.store.require(req.firmwareVersion);
    const base = ManifestSchema.parse(artifact.manifest.signed);
    if (artifact.offlineSigned) return { envelope: artifact.manifest, manifest: base, artifact, offlineSigned: true, warnings: await this.offlineFreshness(base) };
    const hardware = req.hardwareModels.filter((h) => base.hardware.includes(h));
    if (hardware.length === 0) {
      throw new ValidationError('deployment', [
        `firmware ${req.firmwareVersion} is built for ${base.hardware.join(', ')}, not ${req.hardwareModels.join(', ')}`,
      ]);
    }
    const manifest = buildManifest({
      firmwareVersion: base.firmwareVersion,
      hardware,
      artifact: { url: this.artifactUrl(artifact.sha256), size: artifact.size, sha256: artifact.sha256 },
      installableOver: req.versionRange,
      tags: req.tags,
      securityVersion: base.securityVersion,
      deploymentId: req.deploymentId,
      issuedAt: this.now(),
      ttlMs: req.ttlMs,
      metadataVersion: await this.freshness.next('manifest'),
    });
    return { envelope: signManifest(manifest, [this.key]), manifest, artifact, offlineSigned: false, warnings: [] };
  }

  /**
   * A deployment's manifest signed afresh for a long rollout: every field as before but the next
   * metadataVersion and a new lifetime of the same length from now. Only the coordinator's own
   * manifests, bound to the deployment: an offline signer's scope and lifetime are its own.
   */
  async renewDeploymentManifest(current: Envelope, deploymentId: string): Promise<Envelope> {
    const m = ManifestSchema.parse(current.signed);
    if (m.deploymentId !== deploymentId || m.rollback) {
      throw new ValidationError('manifest renewal', [`the manifest of deployment ${deploymentId} was not signed by this coordinator for it; it keeps its own lifetime`]);
    }
    const renewed = buildManifest({
      firmwareVersion: m.firmwareVersion,
      hardware: m.hardware,
      artifact: m.artifact,
      installableOver: m.installableOver,
      tags: m.tags,
      securityVersion: m.securityVersion,
      deploymentId,
      issuedAt: this.now(),
      ttlMs: Date.parse(m.expiresAt) - Date.parse(m.issuedAt),
      metadataVersion: await this.freshness.next('manifest'),
    });
    return signManifest(renewed, [this.key]);
  }

  /**
   * The deployment id an offline-signed manifest is bound to, if any: the deployment must take it
   * (devices refuse a bound manifest offered under another id).
   */
  boundDeploymentId(firmwareVersion: string): string | undefined {
    const artifact = this.store.require(firmwareVersion);
    return artifact.offlineSigned ? ManifestSchema.parse(artifact.manifest.signed).deploymentId : undefined;
  }

  /**
   * An offline-signed manifest is only as fresh as its metadataVersion: a device that accepted a
   * newer one refuses it. Refused outright without one; warned about when this coordinator has
   * issued a newer one since. Raises the counter past it, so later manifests stay above.
   */
  private async offlineFreshness(m: Manifest): Promise<string[]> {
    if (m.metadataVersion === undefined) {
      throw new ValidationError('deployment', [`the offline-signed manifest of ${m.firmwareVersion} carries no metadataVersion, so devices refuse it (stale-manifest); sign it again with a current \`fleet firmware sign\` and upload it`]);
    }
    const unbound = rollbackBindingProblem(m);
    if (unbound !== null) throw new ValidationError('deployment', [unbound]);
    const issued = await this.freshness.current('manifest');
    await this.freshness.observe('manifest', m.metadataVersion);
    if (m.metadataVersion > issued) return [];
    return [
      `the offline-signed manifest of ${m.firmwareVersion} has metadataVersion ${m.metadataVersion}, not above ${issued} that this coordinator has signed since: devices that accepted a newer manifest refuse it (stale-manifest); sign it again to reach them`,
    ];
  }
}
