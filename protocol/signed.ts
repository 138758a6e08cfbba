/**
 * Signed documents: firmware manifests and device commands, wrapped in a TUF-style envelope
 * `{signed, signatures: [{keyid, sig}]}`. The signature covers the RFC 8785 canonical JSON of `signed`
 * (see firmware/canonical-json.ts). `_type` is inside the signed part so that a signed command can
 * never be replayed as a manifest or the other way round. Pure.
 */
import { z } from 'zod';
import {
  DeploymentIdSchema,
  DeviceIdSchema,
  HardwareModelSchema,
  SemverSchema,
  Sha256HexSchema,
  TagSchema,
} from './ids.js';

export const PROTOCOL_VERSION = 1;

const IsoTimeSchema = z.iso.datetime({ offset: true });

export const SignatureSchema = z.object({
  /** sha256 (hex) of the raw 32-byte Ed25519 public key. */
  keyid: Sha256HexSchema,
  /** base64 Ed25519 signature over the canonical JSON of `signed`. */
  sig: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, { message: 'must be base64' }),
});
export type Signature = z.infer<typeof SignatureSchema>;

export const ArtifactRefSchema = z.object({
  /** Where the device downloads the image (http or https). */
  url: z.url({ protocol: /^https?$/ }),
  size: z.number().int().positive(),
  sha256: Sha256HexSchema,
});
export type ArtifactRef = z.infer<typeof ArtifactRefSchema>;

export const ManifestSchema = z.object({
  _type: z.literal('manifest'),
  v: z.literal(PROTOCOL_VERSION),
  /** The deployment this manifest was issued for; absent for a manifest signed offline. */
  deploymentId: DeploymentIdSchema.optional(),
  firmwareVersion: SemverSchema,
  /** Hardware models this image runs on. */
  hardware: z.array(HardwareModelSchema).min(1),
  /** semver range of device versions this image may be installed over, e.g. ">=1.0.0 <2.0.0" or "*". */
  installableOver: z.string().min(1).max(256),
  /** Tags a device must all carry to take this manifest (empty: no tag restriction). */
  tags: z.array(TagSchema).default([]),
  artifact: ArtifactRefSchema,
  issuedAt: IsoTimeSchema,
  expiresAt: IsoTimeSchema,
  /** Anti-rollback floor: devices never install an image whose securityVersion is below theirs. */
  securityVersion: z.number().int().min(0),
  /**
   * An operator-signed rollback: allows installing a lower firmwareVersion (never below the floor).
   * Devices take one only when it is bound to its deployment (`deploymentId`) and to the versions it
   * undoes (an `installableOver` range that excludes its own version).
   */
  rollback: z.boolean().default(false),
  /**
   * Freshness, in the spirit of TUF's metadata versions: a counter the signer raises with every
   * manifest it issues. A device stores the highest it accepted and refuses anything lower (and the
   * same value under another deployment), so a replayed manifest never installs again. The
   * coordinator assigns max(last + 1, now in ms); `fleet firmware sign` defaults to the signing time.
   * Optional in the schema so that older manifests still parse; current agents refuse a manifest
   * without it (`stale-manifest`).
   */
  metadataVersion: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
});
export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestInput = z.input<typeof ManifestSchema>;

export const CommandActionSchema = z.enum(['rollback', 'reboot', 'report-now']);
export type CommandAction = z.infer<typeof CommandActionSchema>;

export const CommandSchema = z.object({
  _type: z.literal('command'),
  v: z.literal(PROTOCOL_VERSION),
  commandId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
  deviceId: DeviceIdSchema,
  action: CommandActionSchema,
  /** The deployment a rollback undoes. */
  deploymentId: DeploymentIdSchema.optional(),
  issuedAt: IsoTimeSchema,
  expiresAt: IsoTimeSchema,
  /**
   * Replay protection for the command's whole lifetime: a counter the signer raises with every
   * command (the coordinator: max(last + 1, now in ms)). A device executes a command only when its
   * seq is above the highest it executed, and keeps that number where a lost state file cannot reset
   * it. Optional in the schema so that older commands still parse; current agents refuse a command
   * without it.
   */
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
});
export type Command = z.infer<typeof CommandSchema>;

/** The envelope; `signed` stays unparsed until its signatures verify. */
export const EnvelopeSchema = z.object({
  signed: z.record(z.string(), z.unknown()),
  signatures: z.array(SignatureSchema).min(1).max(16),
});
export type Envelope = z.infer<typeof EnvelopeSchema>;
export type SignedEnvelope<T> = { signed: T; signatures: Signature[] };

/** What a trust store file says (trust.json beside the *.pub keys). */
export const TrustPolicySchema = z.object({
  v: z.literal(PROTOCOL_VERSION).default(PROTOCOL_VERSION),
  /** Signatures from distinct trusted keys needed to accept a document. */
  threshold: z.number().int().min(1).default(1),
});
export type TrustPolicy = z.infer<typeof TrustPolicySchema>;
