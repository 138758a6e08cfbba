/**
 * Keeping a long rollout's manifest fresh. A manifest lives 7 days (docs/freshness.md, "Lifetimes"),
 * but approvals, maintenance windows and Monitor extensions can keep a deployment running longer, and
 * a device that comes online after the expiry refuses the retained manifest (`expired`). So, like
 * TUF's timestamp role, the engine has the manifest of an active deployment signed afresh — same
 * deployment, same image, the next metadataVersion, a new lifetime — once half of its lifetime has
 * passed, and re-publishes it on every bucket topic the deployment has published. A device that
 * already acted on the deployment ignores it (it holds that deployment as handled or in progress);
 * one that has not takes it as it would have taken the first.
 *
 * Only the coordinator's own manifests are renewed (an offline-signed one keeps the lifetime its
 * signer gave it), and only while the deployment runs: never once it completed, was aborted or is
 * rolling back. Pure: the shell signs (`renew-manifest` effect) and answers with an event.
 */
import { ManifestSchema, type Envelope } from '@fleet/protocol/signed';
import { audit, currentManifest, type Ctx } from './engine-context.js';
import { publishWave } from './engine-waves.js';
import type { DeploymentCore, DeploymentPhase, DeploymentSpec } from './types.js';

/** Phases in which the manifest is (or is about to be) offered to devices. */
const RENEWING: readonly DeploymentPhase[] = ['draft', 'scheduled', 'pending', 'rolling', 'soaking', 'gating'];

export { currentManifest };

/** How long after a failed renewal it is tried again. */
export const RENEWAL_RETRY_MS = 15 * 60_000;

/**
 * Whether the coordinator signed this deployment's manifest (and so may sign it again). Deployments
 * created before the spec said so: a manifest bound to this deployment that is not a rollback is one
 * the coordinator signed for it.
 */
export function renewsManifest(spec: DeploymentSpec): boolean {
  if (spec.manifestOrigin !== undefined) return spec.manifestOrigin === 'coordinator';
  const signed = spec.manifest.signed;
  return signed['deploymentId'] === spec.id && signed['rollback'] !== true;
}

/** Issue and expiry of a signed manifest (undefined when it does not say). */
function lifetime(manifest: Envelope): { issuedAt: number; expiresAt: number } | undefined {
  const { issuedAt, expiresAt } = manifest.signed;
  const issued = typeof issuedAt === 'string' ? Date.parse(issuedAt) : Number.NaN;
  const expires = typeof expiresAt === 'string' ? Date.parse(expiresAt) : Number.NaN;
  return Number.isFinite(issued) && Number.isFinite(expires) && expires > issued ? { issuedAt: issued, expiresAt: expires } : undefined;
}

/**
 * When the manifest is next due for renewal: half-way through its lifetime, or the retry time after a
 * failed attempt. Undefined when it is never renewed (finished deployment, offline-signed manifest).
 */
export function manifestRenewAt(core: DeploymentCore): number | undefined {
  if (!RENEWING.includes(core.phase) || !renewsManifest(core.spec)) return undefined;
  if (core.manifestRenewal) return core.manifestRenewal.retryAt;
  const life = lifetime(currentManifest(core));
  return life && life.issuedAt + Math.floor((life.expiresAt - life.issuedAt) / 2);
}

/** Asks the shell for a renewed manifest when one is due (the last outward effect of a step). */
export function requestRenewalIfDue(ctx: Ctx): void {
  const at = manifestRenewAt(ctx.d.core);
  if (at !== undefined && ctx.now >= at) ctx.effects.push({ type: 'renew-manifest' });
}

/** Why a renewed manifest is not the same update, fresher (null when it is). */
function renewalProblem(spec: DeploymentSpec, before: Envelope, after: Envelope): string | null {
  const a = ManifestSchema.safeParse(before.signed);
  const b = ManifestSchema.safeParse(after.signed);
  if (!b.success) return 'the renewed manifest does not parse';
  if (b.data.deploymentId !== spec.id) return `the renewed manifest is bound to ${b.data.deploymentId ?? 'no deployment'}, not ${spec.id}`;
  if (!a.success) return null;
  if (b.data.firmwareVersion !== a.data.firmwareVersion || b.data.artifact.sha256 !== a.data.artifact.sha256) return 'the renewed manifest names another image';
  if ((b.data.metadataVersion ?? 0) <= (a.data.metadataVersion ?? 0)) return `the renewed manifest's metadataVersion ${b.data.metadataVersion ?? 'none'} is not above ${a.data.metadataVersion ?? 0}`;
  if (Date.parse(b.data.expiresAt) <= Date.parse(a.data.expiresAt)) return 'the renewed manifest does not live longer';
  return null;
}

/** The shell signed a renewed manifest: it replaces the current one on every published wave topic. */
export function onManifestRenewed(ctx: Ctx, manifest: Envelope): void {
  const core = ctx.d.core;
  if (!RENEWING.includes(core.phase) || !renewsManifest(core.spec)) {
    // Finished since the renewal was asked for: never published.
    audit(ctx, 'engine', 'deployment.manifest-renewal-dropped', { phase: core.phase });
    return;
  }
  const problem = renewalProblem(core.spec, currentManifest(core), manifest);
  if (problem !== null) return onManifestRenewalFailed(ctx, problem);
  core.manifest = manifest;
  delete core.manifestRenewal;
  for (const w of core.waves) if (w.startedAt !== undefined) publishWave(ctx, w.index);
  audit(ctx, 'engine', 'deployment.manifest-renewed', { metadataVersion: manifest.signed['metadataVersion'], expiresAt: manifest.signed['expiresAt'] });
}

/** The shell could not sign: tried again after RENEWAL_RETRY_MS (the current manifest stays). */
export function onManifestRenewalFailed(ctx: Ctx, error: string): void {
  const core = ctx.d.core;
  if (!RENEWING.includes(core.phase)) return;
  const failures = (core.manifestRenewal?.failures ?? 0) + 1;
  core.manifestRenewal = { failures, retryAt: ctx.now + RENEWAL_RETRY_MS, error: error.slice(0, 500) };
  audit(ctx, 'engine', 'deployment.manifest-renewal-failed', { error: core.manifestRenewal.error, failures, retryAt: core.manifestRenewal.retryAt });
}
