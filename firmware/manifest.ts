/**
 * Building, signing and verifying firmware manifests and device commands. Pure apart from node:crypto.
 *
 * Verification order (the first failure is the reason): malformed → signatures (unknown key, bad
 * signature, below threshold) → time (not yet valid, expired; with bounded clock skew) → the signed
 * part's own schema → binding (a rollback bound to its deployment and the versions it undoes; a bound
 * manifest offered under its own deployment) → freshness (metadataVersion) → hardware → tags →
 * version range and downgrade → security floor. Commands: malformed → signatures → device → time →
 * sequence. Signatures come first so that nothing in an unauthenticated document is trusted, even for
 * an error. Freshness and replay rules are described in docs/freshness.md.
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
} from '@fleet/protocol/signed';
import type { VerifyReason } from '@fleet/protocol/reasons';
import { formatIssues } from '@fleet/protocol/parse';
import { ValidationError } from '@fleet/protocol/errors';
import { checkSignatures, signDocument } from './envelope.js';
import type { SigningKey } from './keys.js';
import type { TrustStore } from './trust-store.js';
import { definedProps } from './defined-props.js';

/** How far a device's clock may be off before time checks fail (5 minutes). */
export const DEFAULT_CLOCK_SKEW_MS = 5 * 60_000;
/**
 * Default manifest lifetime: a week covers a rollout with nightly maintenance windows and approvals,
 * and bounds how long a manifest can reach a device that never saw a newer one (the metadataVersion
 * stops replays on devices that did).
 */
export const DEFAULT_MANIFEST_TTL_MS = 7 * 24 * 3600_000;
/** Default lifetime of a rollback manifest: an emergency tool, used at once; a day bounds its reuse. */
export const DEFAULT_ROLLBACK_TTL_MS = 24 * 3600_000;
/**
 * Default command lifetime: the coordinator signs a fresh command each time it (re)sends one (on every
 * reconnect of a device it still waits for), so a day is plenty; the seq stops replays within it.
 */
export const DEFAULT_COMMAND_TTL_MS = 24 * 3600_000;

/**
 * The next value of a freshness counter (manifest metadataVersion, command seq): above the last one
 * issued and never below the time in ms, so that counters of different signers (the coordinator, an
 * operator signing offline) order by time when their clocks are sane and never go backwards when one
 * is not. Pure.
 */
export function nextFreshness(last: number, now: number): number {
  return Math.max(last + 1, Math.floor(now));
}

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
  /** Default DEFAULT_MANIFEST_TTL_MS, or DEFAULT_ROLLBACK_TTL_MS for a rollback. */
  ttlMs?: number;
  /** Freshness counter (see ManifestSchema). Default: issuedAt in ms. */
  metadataVersion?: number;
}

/**
 * Why a rollback manifest is not bound (null when it is): it must name its deployment and the
 * versions it undoes — an installableOver range that does not include its own version, so that it
 * cannot be offered to devices already on (or below) the version it installs. Pure.
 */
export function rollbackBindingProblem(m: Pick<Manifest, 'rollback' | 'deploymentId' | 'installableOver' | 'firmwareVersion'>): string | null {
  if (!m.rollback) return null;
  if (m.deploymentId === undefined) return 'a rollback manifest must be bound to one deployment (sign it with --deployment <id>)';
  if (semver.validRange(m.installableOver) === null || semver.satisfies(m.firmwareVersion, m.installableOver, { includePrerelease: true })) {
    return `a rollback manifest must name the versions it undoes: installableOver ${JSON.stringify(m.installableOver)} includes its own version ${m.firmwareVersion} (sign it with e.g. --installable-over ">${m.firmwareVersion}")`;
  }
  return null;
}

/** Builds a manifest and validates it against the schema; throws ValidationError naming the field. */
export function buildManifest(input: BuildManifestInput): Manifest {
  const range = input.installableOver ?? '*';
  if (semver.validRange(range) === null) {
    throw new ValidationError('manifest', [`installableOver: ${JSON.stringify(range)} is not a semver range`]);
  }
  const rollback = input.rollback ?? false;
  const ttlMs = input.ttlMs ?? (rollback ? DEFAULT_ROLLBACK_TTL_MS : DEFAULT_MANIFEST_TTL_MS);
  const candidate = {
    _type: 'manifest',
    v: PROTOCOL_VERSION,
    ...definedProps({ deploymentId: input.deploymentId }),
    firmwareVersion: input.firmwareVersion,
    hardware: input.hardware,
    installableOver: range,
    tags: input.tags ?? [],
    artifact: input.artifact,
    issuedAt: new Date(input.issuedAt).toISOString(),
    expiresAt: new Date(input.issuedAt + ttlMs).toISOString(),
    securityVersion: input.securityVersion ?? 0,
    rollback,
    metadataVersion: input.metadataVersion ?? Math.max(1, Math.floor(input.issuedAt)),
  };
  const parsed = ManifestSchema.safeParse(candidate);
  if (!parsed.success) throw new ValidationError('manifest', formatIssues(parsed.error));
  const unbound = rollbackBindingProblem(parsed.data);
  if (unbound !== null) throw new ValidationError('manifest', [unbound]);
  return parsed.data;
}

export function signManifest(manifest: Manifest, keys: readonly SigningKey[]): SignedEnvelope<Manifest> {
  return signDocument(manifest, keys);
}

/** The highest manifest metadataVersion a device accepted, and the deployment it came under. */
export interface ManifestFreshness {
  metadataVersion: number;
  deploymentId?: string | undefined;
}

export interface DeviceContext {
  now: number;
  hardwareModel: string;
  currentVersion: string;
  securityFloor: number;
  tags?: readonly string[];
  clockSkewMs?: number;
  /** The deployment the manifest is offered under (a bound manifest must match it). */
  deploymentId?: string;
  /** What the device accepted last; absent: freshness is not checked (`fleet firmware verify`). */
  freshness?: ManifestFreshness;
}

/**
 * The freshness rule: a manifest is fresh when its metadataVersion is above the highest the device
 * accepted, or equal to it under the same deployment (the retained manifest of the update the device
 * is on, delivered again). Null when fresh, else why not. Pure.
 */
export function freshnessProblem(metadataVersion: number | undefined, deploymentId: string | undefined, accepted: ManifestFreshness): string | null {
  if (metadataVersion === undefined) return 'the manifest carries no metadataVersion (signed by an older tool); sign it again';
  if (metadataVersion > accepted.metadataVersion) return null;
  if (metadataVersion === accepted.metadataVersion && deploymentId !== undefined && deploymentId === accepted.deploymentId) return null;
  const under = accepted.deploymentId !== undefined ? ` (deployment ${accepted.deploymentId})` : '';
  return `metadataVersion ${metadataVersion} is not above ${accepted.metadataVersion}, the newest this device accepted${under}: a replayed or superseded manifest; sign a fresh one`;
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
  const unbound = rollbackBindingProblem(m);
  if (unbound !== null) return fail('unbound-rollback', unbound);
  if (m.deploymentId !== undefined && ctx.deploymentId !== undefined && m.deploymentId !== ctx.deploymentId) {
    return fail('malformed', `manifest was signed for deployment ${m.deploymentId}, offered as ${ctx.deploymentId}`);
  }
  if (ctx.freshness) {
    const stale = freshnessProblem(m.metadataVersion, ctx.deploymentId, ctx.freshness);
    if (stale !== null) return fail('stale-manifest', stale);
  }
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
  /** Default DEFAULT_COMMAND_TTL_MS. */
  ttlMs?: number;
  /** Replay counter (see CommandSchema). Default: issuedAt in ms. */
  seq?: number;
}

export function buildCommand(input: BuildCommandInput): Command {
  const parsed = CommandSchema.safeParse({
    _type: 'command',
    v: PROTOCOL_VERSION,
    commandId: input.commandId,
    deviceId: input.deviceId,
    action: input.action,
    ...definedProps({ deploymentId: input.deploymentId }),
    issuedAt: new Date(input.issuedAt).toISOString(),
    expiresAt: new Date(input.issuedAt + (input.ttlMs ?? DEFAULT_COMMAND_TTL_MS)).toISOString(),
    seq: input.seq ?? Math.max(1, Math.floor(input.issuedAt)),
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
  /** The highest command seq this device executed: anything not above it is a replay. */
  lastSeq: number;
  clockSkewMs?: number;
}

export function verifyCommand(envelope: unknown, trust: TrustStore, ctx: CommandContext): Verified<Command> {
  const env = verifyEnvelope(envelope, trust, CommandSchema, 'command');
  if (!env.ok) return env;
  const c = env.value;
  if (c.deviceId !== ctx.deviceId) return fail('wrong-device', `addressed to ${c.deviceId}`);
  const time = checkTimes(c.issuedAt, c.expiresAt, ctx.now, ctx.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS);
  if (time) return time;
  if (c.seq === undefined) return fail('malformed', `command ${c.commandId} carries no seq (signed by an older tool), so it cannot be told from a replay; send it again from a current coordinator`);
  if (c.seq <= ctx.lastSeq) return fail('replayed', `command ${c.commandId} has seq ${c.seq}, not above ${ctx.lastSeq}, the newest this device executed: a replay`);
  return env;
}
