/**
 * Firmware uploads and manifests: stores an image, computes size and sha256, and signs its manifest
 * with the coordinator's key — or accepts a manifest signed offline after checking that it matches
 * the image and verifies against the coordinator's trust store. Also signs each deployment's manifest
 * (bound to the deployment id and its target). I/O shell around pure firmware/ functions.
 */
import type { Readable } from 'node:stream';
import { rm } from 'node:fs/promises';
import { ValidationError } from '../../protocol/errors.js';
import { formatIssues } from '../../protocol/parse.js';
import { EnvelopeSchema, ManifestSchema, type Envelope, type Manifest } from '../../protocol/signed.js';
import { checkSignatures } from '../../firmware/envelope.js';
import { buildManifest, signManifest } from '../../firmware/manifest.js';
import type { SigningKey } from '../../firmware/keys.js';
import type { TrustStore } from '../../firmware/trust-store.js';
import type { ArtifactRecord, ArtifactStore } from './artifact-store.js';
import { ARTIFACT_PATH_PREFIX } from './artifact-server.js';

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
  ) {}

  artifactUrl(sha256: string): string {
    return `${this.publicUrl().replace(/\/$/, '')}${ARTIFACT_PATH_PREFIX}${sha256}`;
  }

  async upload(req: UploadRequest): Promise<ArtifactRecord> {
    const { size, sha256 } = await this.store.ingest(req.source);
    try {
      if (req.offlineManifest !== undefined) {
        // Read now, not at start: a public key just added to the trust directory counts without a restart.
        const trust = await this.trust.load();
        const { envelope, manifest } = this.checkOffline(req.offlineManifest, size, sha256, req.version, trust);
        return this.store.record({ manifest: envelope, signed: manifest, offlineSigned: true, uploadedAt: this.now() });
      }
      const manifest = buildManifest({
        firmwareVersion: req.version,
        hardware: req.hardware,
        artifact: { url: this.artifactUrl(sha256), size, sha256 },
        installableOver: req.installableOver ?? '*',
        securityVersion: req.securityVersion ?? 0,
        ...(req.tags ? { tags: req.tags } : {}),
        issuedAt: this.now(),
      });
      const envelope = signManifest(manifest, [this.key]) as unknown as Envelope;
      return this.store.record({ manifest: envelope, signed: manifest, offlineSigned: false, uploadedAt: this.now() });
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
    if (problems.length) throw new ValidationError('offline manifest', problems);
    return { envelope: env.data, manifest };
  }

  /**
   * The manifest a deployment publishes: an offline-signed one as is (its signer decided its scope),
   * otherwise a fresh one bound to the deployment and narrowed to its target.
   */
  deploymentManifest(req: DeploymentManifestRequest): { envelope: Envelope; manifest: Manifest; artifact: ArtifactRecord } {
    const artifact = this.store.require(req.firmwareVersion);
    const base = ManifestSchema.parse(artifact.manifest.signed);
    if (artifact.offlineSigned) return { envelope: artifact.manifest, manifest: base, artifact };
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
    });
    return { envelope: signManifest(manifest, [this.key]), manifest, artifact };
  }
}
