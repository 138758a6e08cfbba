/**
 * A deployment as the admin API, the CLI and embedders see it: the engine's core state flattened for
 * reading, with its decisions when asked for. Pure.
 */
import { ManifestSchema } from '@fleet/protocol/signed';
import { definedProps } from '@fleet/firmware/defined-props';
import type { DecisionRecord } from '../gate/decision.js';
import type { DeploymentCore } from '../engine/types.js';
import { currentManifest } from '../engine/manifest-renewal.js';

/** The signed manifest the deployment publishes now (renewed during a long rollout), in brief. */
export interface ManifestSummary {
  /** The deployment it is bound to (absent: an offline-signed manifest for any deployment). */
  deploymentId?: string;
  metadataVersion?: number;
  securityVersion: number;
  issuedAt: string;
  expiresAt: string;
}

/** A deployment as the admin API shows it (the CLI's DeploymentView). */
export interface DeploymentView {
  id: string;
  firmwareVersion: string;
  description?: string;
  phase: DeploymentCore['phase'];
  current: number;
  paused: boolean;
  pause?: DeploymentCore['pause'];
  waitingFor: DeploymentCore['waitingFor'];
  target: DeploymentCore['spec']['target'];
  artifact: DeploymentCore['spec']['artifact'];
  bucketOffset: number;
  manifest?: ManifestSummary;
  /** The deployment's own judge settings (warm-up, slots, the regression its soak is planned for). */
  judge?: DeploymentCore['spec']['judge'];
  /** When its waves may start (cron, duration, time zone); none: any time. */
  maintenanceWindows: DeploymentCore['spec']['maintenanceWindows'];
  waves: {
    index: number;
    percent: number;
    status: string;
    soakMs: number;
    deadlineMs: number;
    requiresApproval: boolean;
    approved: boolean;
    /** Who approved it: `operator:<user>`. */
    approvedBy?: string;
    startedAt?: number;
    deadlineAt?: number;
    completedAt?: number;
    soakEndsAt?: number;
    verdict?: string;
    decisionId?: string;
    monitorCount: number;
    counts: Record<string, number>;
  }[];
  rollback?: DeploymentCore['rollback'];
  abortReason?: string;
  /** Who aborted it: `operator:<user>`, or `gate`. */
  abortedBy?: string;
  createdAt: number;
  createdBy?: string;
  updatedAt: number;
  revision: number;
  decisions?: DecisionRecord[];
  /**
   * At creation only (creation-warnings.ts): canary waves too small to judge, what the firmware does
   * to the devices' security floors, an offline-signed manifest that devices may refuse as stale.
   */
  warnings?: string[];
}

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

function optionalManifest(core: DeploymentCore): { manifest?: ManifestSummary } {
  const parsed = ManifestSchema.safeParse(currentManifest(core).signed);
  if (!parsed.success) return {};
  const m = parsed.data;
  return {
    manifest: {
      ...definedProps({ deploymentId: m.deploymentId, metadataVersion: m.metadataVersion }),
      securityVersion: m.securityVersion,
      issuedAt: m.issuedAt,
      expiresAt: m.expiresAt,
    },
  };
}
