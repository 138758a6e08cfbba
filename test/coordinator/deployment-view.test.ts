/**
 * The deployment view read at every engine commit: its manifest summary is parsed once per signed
 * envelope, and the view stays exactly what the protocol's schema says and the manifest holds — after
 * statuses, after a renewal, and when a listener edits the view it was given.
 */
import { describe, expect, it } from 'vitest';
import { DeploymentViewSchema } from '../../protocol/deployment-view.js';
import { ManifestSchema, type Envelope } from '../../protocol/signed.js';
import { buildManifest, signManifest } from '../../firmware/manifest.js';
import { generateSigningKey } from '../../firmware/keys.js';
import { deploymentView } from '../../coordinator/deployments/deployment-view.js';
import { currentManifest } from '../../coordinator/engine/manifest-renewal.js';
import type { DeploymentCore } from '../../coordinator/engine/types.js';
import { devicesInWave, MIN, T0 } from './engine-fixtures.js';
import { rolling } from './engine-phases.js';

/** The summary as the view had it before it was cached: a fresh parse of the signed part. */
function parsedSummary(core: DeploymentCore): unknown {
  const m = ManifestSchema.parse(currentManifest(core).signed);
  return {
    ...(m.deploymentId !== undefined ? { deploymentId: m.deploymentId } : {}),
    ...(m.metadataVersion !== undefined ? { metadataVersion: m.metadataVersion } : {}),
    securityVersion: m.securityVersion,
    issuedAt: m.issuedAt,
    expiresAt: m.expiresAt,
  };
}

function renewedEnvelope(core: DeploymentCore, now: number): Envelope {
  const m = ManifestSchema.parse(currentManifest(core).signed);
  return signManifest(buildManifest({
    firmwareVersion: m.firmwareVersion,
    hardware: m.hardware,
    artifact: m.artifact,
    installableOver: m.installableOver,
    deploymentId: m.deploymentId!,
    securityVersion: m.securityVersion,
    issuedAt: now,
    metadataVersion: m.metadataVersion! + 1,
  }), [generateSigningKey()]);
}

describe('deployment view', () => {
  it('keeps the schema and the manifest summary across commits, renewals and edited views', () => {
    const d = rolling();
    const first = deploymentView(d.state.core);
    expect(DeploymentViewSchema.strict().parse(first)).toEqual(first);
    expect(first.manifest).toEqual(parsedSummary(d.state.core));

    // Commits after statuses: same envelope, same summary, and a listener's edit stays its own.
    first.manifest!.securityVersion = 999;
    d.at(T0 + 2 * MIN).statuses(devicesInWave(d.spec, 0, 3), 'downloading');
    const later = deploymentView(d.state.core);
    expect(DeploymentViewSchema.strict().parse(later)).toEqual(later);
    expect(later.manifest).toEqual(parsedSummary(d.state.core));
    expect(later.revision).toBeGreaterThan(first.revision);

    // A renewed manifest is a new envelope: the view shows its version and lifetime.
    const now = T0 + 3 * MIN;
    d.at(now).ev({ type: 'manifest-renewed', manifest: renewedEnvelope(d.state.core, now) });
    const renewed = deploymentView(d.state.core);
    expect(renewed.manifest).toEqual(parsedSummary(d.state.core));
    expect(renewed.manifest!.metadataVersion).toBe(first.manifest!.metadataVersion! + 1);
  });

  it('shows no manifest summary for a signed part that is not a manifest, every time', () => {
    const d = rolling();
    const core: DeploymentCore = { ...d.state.core, manifest: { signed: { _type: 'not-a-manifest' }, signatures: [] } };
    expect(deploymentView(core).manifest).toBeUndefined();
    expect(deploymentView(core).manifest).toBeUndefined();
    expect(DeploymentViewSchema.parse(deploymentView(core))).toBeDefined();
  });
});
