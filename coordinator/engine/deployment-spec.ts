/**
 * Turns an operator's DeploymentRequest into the immutable DeploymentSpec the engine runs: default
 * waves (1, 5, 25, 100 %), default policies, and checks a schema cannot express (cron windows, the
 * semver range). Pure: the shell supplies the id, the bucket offset and the signed manifest.
 */
import { ValidationError } from '@fleet/protocol/errors';
import type { Envelope } from '@fleet/protocol/signed';
import { formatIssues } from '@fleet/protocol/parse';
import { isTimeZone, windowNeverOpens } from './maintenance-window.js';
import { isValidVersionRange } from './wave-plan.js';
import {
  DEFAULT_SOAK_MS,
  DEFAULT_WAVE_PERCENTS,
  DeploymentSpecSchema,
  WaveSpecSchema,
  type DeploymentRequest,
  type DeploymentSpec,
  type WaveSpec,
  type WaveSpecInput,
} from './types.js';

/** Waves at the given cumulative percentages, each with the same soak and the schema's defaults. */
export function defaultWaves(percents: readonly number[] = DEFAULT_WAVE_PERCENTS, soakMs: number = DEFAULT_SOAK_MS, extra: Partial<WaveSpecInput> = {}): WaveSpec[] {
  return percents.map((percent) => WaveSpecSchema.parse({ ...extra, percent, soakMs }));
}

export interface SpecContext {
  id: string;
  bucketOffset: number;
  /** The signed manifest for this deployment (deploymentId inside the signed part). */
  manifest: Envelope;
  /** Who signed it (the coordinator renews only its own). */
  manifestOrigin?: 'coordinator' | 'offline';
  artifact: { sha256: string; size: number; url?: string };
  createdAt: number;
  createdBy?: string;
}

/**
 * Checks the parts of a spec zod cannot: cron syntax and time zone, that each maintenance window can open (after
 * `now`, when given), and the semver range. Throws ValidationError.
 */
export function checkSpecSemantics(spec: Pick<DeploymentSpec, 'maintenanceWindows' | 'target'>, now?: number): void {
  const issues: string[] = [];
  spec.maintenanceWindows.forEach((w, i) => {
    if (w.timeZone !== undefined && !isTimeZone(w.timeZone)) {
      issues.push(`maintenanceWindows.${i}.timeZone: ${JSON.stringify(w.timeZone)} is not a time zone this coordinator knows; give an IANA name such as Europe/Berlin (default UTC)`);
      return;
    }
    try {
      const never = windowNeverOpens(w, now);
      if (never !== undefined) issues.push(`maintenanceWindows.${i}.cron: ${JSON.stringify(w.cron)} never opens: ${never}; choose start times that occur`);
    } catch (err) {
      issues.push(`maintenanceWindows.${i}.cron: ${err instanceof ValidationError ? err.issues.join('; ') : String(err)}`);
    }
  });
  if (!isValidVersionRange(spec.target.versionRange)) {
    issues.push(`target.versionRange: ${JSON.stringify(spec.target.versionRange)} is not a semver range such as ">=1.0.0 <2.0.0"`);
  }
  if (issues.length) throw new ValidationError('deployment', issues);
}

/** Builds and validates the spec; throws ValidationError naming each wrong field. */
export function buildDeploymentSpec(request: DeploymentRequest, ctx: SpecContext): DeploymentSpec {
  const candidate = {
    id: ctx.id,
    firmwareVersion: request.firmwareVersion,
    artifact: ctx.artifact,
    manifest: ctx.manifest,
    ...(ctx.manifestOrigin !== undefined ? { manifestOrigin: ctx.manifestOrigin } : {}),
    target: request.target,
    waves: request.waves ?? defaultWaves(),
    bucketOffset: request.bucketOffset ?? ctx.bucketOffset,
    gatePolicy: request.gatePolicy ?? {},
    ...(request.judge !== undefined ? { judge: request.judge } : {}),
    monitor: request.monitor ?? {},
    rollback: request.rollback ?? {},
    maintenanceWindows: request.maintenanceWindows,
    ...(request.startAt !== undefined ? { startAt: request.startAt } : {}),
    draft: request.draft,
    ...(request.description !== undefined ? { description: request.description } : {}),
    createdAt: ctx.createdAt,
    ...(ctx.createdBy !== undefined ? { createdBy: ctx.createdBy } : {}),
  };
  const parsed = DeploymentSpecSchema.safeParse(candidate);
  if (!parsed.success) throw new ValidationError('deployment', formatIssues(parsed.error));
  checkSpecSemantics(parsed.data, ctx.createdAt);
  return parsed.data;
}
