/**
 * Building, signing and verifying firmware manifests and device commands. Pure apart from node:crypto.
 *
 * Verification order (the first failure is the reason): malformed → signatures (unknown key, bad
 * signature, below threshold) → time (not yet valid, expired; with bounded clock skew) → the signed
 * part's own schema → hardware → tags → version range and downgrade → security floor.
 * Signatures come first so that nothing in an unauthenticated document is trusted, even for an error.
 */
import semver from 'semver';
import {
  CommandSchema,
  EnvelopeSchema,
  ManifestSchema,
  PROTOCOL_VERSION,
  type ArtifactRef,
  type Command,
  type CommandAction,
  type Manifest,
  type SignedEnvelope,
} from '../protocol/signed.js';
import type { VerifyReason } from '../protocol/reasons.js';
import { formatIssues } from '../protocol/parse.js';
import { ValidationError } from '../protocol/errors.js';
import { checkSignatures, signDocument } from './envelope.js';
import type { SigningKey } from './keys.js';
import type { TrustStore } from './trust-store.js';

/** How far a device's clock may be off before time checks fail (5 minutes). */
export const DEFAULT_CLOCK_SKEW_MS = 5 * 60_000;
/** Default manifest lifetime: long enough for a slow rollout, short enough that a leak goes stale. */
export const DEFAULT_MANIFEST_TTL_MS = 30 * 24 * 3600_000;

export interface BuildManifestInput {
  firmwareVersion: string;
  hardware: string[];
  artifact: ArtifactRef;
  installableOver?: string;
  deploymentId?: string;
  tags?: string[];
  securityVersion?: number;
  rollback?: boolean;
  issuedAt: number;
  ttlMs?: number;
}

/** Builds a manifest and validates it against the schema; throws ValidationError naming the field. */
export function buildManifest(input: BuildManifestInput): Manifest {
  const range = input.installableOver ?? '*';
  if (semver.validRange(range) === null) {
    throw new ValidationError('manifest', [`installableOver: ${JSON.stringify(range)} is not a semver range`]);
  }
  const candidate = {
    _type: 'manifest',
    v: PROTOCOL_VERSION,
    ...(input.deploymentId !== undefined ? { deploymentId: input.deploymentId } : {}),
    firmwareVersion: input.firmwareVersion,
    hardware: input.hardware,
    installableOver: range,
    tags: input.tags ?? [],
    artifact: input.artifact,
    issuedAt: new Date(input.issuedAt).toISOString(),
    expiresAt: new Date(input.issuedAt + (input.ttlMs ?? DEFAULT_MANIFEST_TTL_MS)).toISOString(),
    securityVersion: input.securityVersion ?? 0,
    rollback: input.rollback ?? false,
  };
  const parsed = ManifestSchema.safeParse(candidate);
  if (!parsed.success) throw new ValidationError('manifest', formatIssues(parsed.error));
  return parsed.data;
}

export function signManifest(manifest: Manifest, keys: readonly SigningKey[]): SignedEnvelope<Manifest> {
  return signDocument(manifest, keys);
}

export interface DeviceContext {
  now: number;
  hardwareModel: string;
  currentVersion: string;
  securityFloor: number;
  tags?: readonly string[];
  clockSkewMs?: number;
}

export type Verified<T> = { ok: true; value: T; keyIds: string[] } | { ok: false; reason: VerifyReason; detail: string };

function fail<T>(reason: VerifyReason, detail: string): Verified<T> {
  return { ok: false, reason, detail };
}

/** Checks envelope shape, signatures and the signed part's schema; shared by manifests and commands. */
function verifyEnvelope<S extends typeof ManifestSchema | typeof CommandSchema>(
  envelope: unknown,
  trust: TrustStore,
  schema: S,
  type: 'manifest' | 'command',
): Verified<ReturnType<S['parse']>> {
  const shape = EnvelopeSchema.safeParse(envelope);
  if (!shape.success) return fail('malformed', `envelope: ${formatIssues(shape.error).join('; ')}`);
  const { signed, signatures } = shape.data;
  if (signed['_type'] !== type) return fail('malformed', `expected a signed ${type}, got _type ${JSON.stringify(signed['_type'])}`);
  const sigs = checkSignatures(signed, signatures, trust);
  if (!sigs.ok) return fail(sigs.reason, sigs.detail);
  const parsed = schema.safeParse(signed);
  if (!parsed.success) return fail('malformed', `signed ${type}: ${formatIssues(parsed.error).join('; ')}`);
  return { ok: true, value: parsed.data as ReturnType<S['parse']>, keyIds: sigs.validKeyIds };
}

function checkTimes(issuedAt: string, expiresAt: string, now: number, skew: number): Verified<never> | null {
  if (Date.parse(issuedAt) - skew > now) return fail('not-yet-valid', `issued at ${issuedAt}, device time is ${new Date(now).toISOString()}`);
  if (Date.parse(expiresAt) + skew < now) return fail('expired', `expired at ${expiresAt}; ask the operator for a freshly signed manifest`);
  return null;
}

/** Everything a device checks before it downloads a single byte. */
export function verifyManifest(envelope: unknown, trust: TrustStore, ctx: DeviceContext): Verified<Manifest> {
  const env = verifyEnvelope(envelope, trust, ManifestSchema, 'manifest');
  if (!env.ok) return env;
  const m = env.value;
  const time = checkTimes(m.issuedAt, m.expiresAt, ctx.now, ctx.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS);
  if (time) return time;
  if (!m.hardware.includes(ctx.hardwareModel)) {
    return fail('wrong-hardware', `built for ${m.hardware.join(', ')}, this device is ${ctx.hardwareModel}`);
  }
  const tags = new Set(ctx.tags ?? []);
  const missing = m.tags.filter((t) => !tags.has(t));
  if (missing.length) return fail('missing-tags', `device lacks tag(s) ${missing.join(', ')}`);
  if (!semver.satisfies(ctx.currentVersion, m.installableOver, { includePrerelease: true })) {
    return fail('version-not-installable', `current version ${ctx.currentVersion} is outside ${m.installableOver}`);
  }
  if (semver.lt(m.firmwareVersion, ctx.currentVersion) && !m.rollback) {
    return fail('version-not-installable', `${m.firmwareVersion} is older than ${ctx.currentVersion} and not a signed rollback`);
  }
  if (m.securityVersion < ctx.securityFloor) {
    return fail('below-security-floor', `securityVersion ${m.securityVersion} is below this device's floor ${ctx.securityFloor}`);
  }
  return env;
}

export interface BuildCommandInput {
  commandId: string;
  deviceId: string;
  action: CommandAction;
  deploymentId?: string;
  issuedAt: number;
  ttlMs?: number;
}

export function buildCommand(input: BuildCommandInput): Command {
  const parsed = CommandSchema.safeParse({
    _type: 'command',
    v: PROTOCOL_VERSION,
    commandId: input.commandId,
    deviceId: input.deviceId,
    action: input.action,
    ...(input.deploymentId !== undefined ? { deploymentId: input.deploymentId } : {}),
    issuedAt: new Date(input.issuedAt).toISOString(),
    expiresAt: new Date(input.issuedAt + (input.ttlMs ?? 7 * 24 * 3600_000)).toISOString(),
  });
  if (!parsed.success) throw new ValidationError('command', formatIssues(parsed.error));
  return parsed.data;
}

export function signCommand(command: Command, keys: readonly SigningKey[]): SignedEnvelope<Command> {
  return signDocument(command, keys);
}

export interface CommandContext {
  now: number;
  deviceId: string;
  /** Command ids this device already executed (replay protection). */
  seen?: (commandId: string) => boolean;
  clockSkewMs?: number;
}

export function verifyCommand(envelope: unknown, trust: TrustStore, ctx: CommandContext): Verified<Command> {
  const env = verifyEnvelope(envelope, trust, CommandSchema, 'command');
  if (!env.ok) return env;
  const c = env.value;
  if (c.deviceId !== ctx.deviceId) return fail('wrong-device', `addressed to ${c.deviceId}`);
  const time = checkTimes(c.issuedAt, c.expiresAt, ctx.now, ctx.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS);
  if (time) return time;
  if (ctx.seen?.(c.commandId)) return fail('replayed', `command ${c.commandId} was already executed`);
  return env;
}
