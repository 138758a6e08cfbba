/**
 * A deployment as the admin API, the CLI and embedders see it: the engine's core state flattened for
 * reading, with its decisions when asked for. Pure.
 */
import { ManifestSchema, type Envelope } from '@fleet/protocol/signed';
import { definedProps } from '@fleet/firmware/defined-props';
import type { DecisionRecord } from '../gate/decision.js';
import type { DeploymentCore } from '../engine/types.js';
import type { DeploymentView as ProtocolDeploymentView, ManifestSummary } from '@fleet/protocol/deployment-view';
import { currentManifest } from '../engine/manifest-renewal.js';

/**
 * A deployment as the admin API shows it: protocol/deployment-view.ts's schema (the one definition its
 * readers share), with the judge's settings and the gate's decisions, whose schemas are the coordinator's.
 */
export type DeploymentView = ProtocolDeploymentView & {
  /** The deployment's own judge settings (warm-up, slots, the regression its soak is planned for). */
  judge?: DeploymentCore['spec']['judge'];
  decisions?: DecisionRecord[];
};

export function deploymentView(core: DeploymentCore, decisions?: DecisionRecord[]): DeploymentView {
  const spec = core.spec;
  return {
    id: spec.id,
    firmwareVersion: spec.firmwareVersion,
    ...definedProps({ description: spec.description }),
    phase: core.phase,
    current: core.current,
    paused: core.pause !== undefined,
    ...(core.pause ? { pause: core.pause } : {}),
    waitingFor: core.waitingFor,
    target: spec.target,
    artifact: spec.artifact,
    bucketOffset: spec.bucketOffset,
    ...optionalManifest(core),
    ...definedProps({ judge: spec.judge }),
    maintenanceWindows: spec.maintenanceWindows,
    waves: core.waves.map((w) => {
      const ws = spec.waves[w.index]!;
      return {
        index: w.index,
        percent: ws.percent,
        status: w.status,
        soakMs: ws.soakMs,
        deadlineMs: ws.deadlineMs,
        requiresApproval: ws.requiresApproval,
        approved: w.approvedBy !== undefined || core.approvals.includes(w.index),
        ...definedProps({ approvedBy: w.approvedBy, startedAt: w.startedAt, deadlineAt: w.deadlineAt, completedAt: w.completedAt, soakEndsAt: w.soakEndsAt, verdict: w.verdict, decisionId: w.decisionId }),
        monitorCount: w.monitorCount,
        counts: { ...w.counts },
      };
    }),
    ...(core.rollback ? { rollback: core.rollback } : {}),
    ...definedProps({ abortReason: core.abortReason, abortedBy: core.abortedBy }),
    createdAt: spec.createdAt,
    ...definedProps({ createdBy: spec.createdBy }),
    updatedAt: core.updatedAt,
    revision: core.revision,
    ...(decisions ? { decisions } : {}),
  };
}

/**
 * A manifest's summary by the envelope it was read from. A deployment's envelope is one object from
 * its creation (or renewal) on, and the view is rebuilt at every engine commit: a thousand devices'
 * statuses would re-parse the same signed manifest a thousand times. Weak: a finished deployment's
 * envelope goes with it. `null` remembers an envelope that is not a manifest.
 */
const summaries = new WeakMap<Envelope, ManifestSummary | null>();

function optionalManifest(core: DeploymentCore): { manifest?: ManifestSummary } {
  const envelope = currentManifest(core);
  let summary = summaries.get(envelope);
  if (summary === undefined) {
    summary = manifestSummary(envelope);
    summaries.set(envelope, summary);
  }
  // A copy: a listener that edits its view must not edit the next one.
  return summary ? { manifest: { ...summary } } : {};
}

function manifestSummary(envelope: Envelope): ManifestSummary | null {
  const parsed = ManifestSchema.safeParse(envelope.signed);
  if (!parsed.success) return null;
  const m = parsed.data;
  return {
    ...definedProps({ deploymentId: m.deploymentId, metadataVersion: m.metadataVersion }),
    securityVersion: m.securityVersion,
    issuedAt: m.issuedAt,
    expiresAt: m.expiresAt,
  };
}
