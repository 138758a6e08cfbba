/**
 * What an operator asks for: the deployment request the admin API accepts and the immutable
 * DeploymentSpec the engine runs (waves, target, gate/Monitor/rollback policies, maintenance windows),
 * as zod schemas. Re-exported by types.ts. Pure.
 */
import { z } from 'zod';
import { DeploymentIdSchema, SemverSchema } from '@fleet/protocol/ids';
import { EnvelopeSchema } from '@fleet/protocol/signed';
import { ArtifactSummarySchema, MaintenanceWindowSchema, TargetSpecSchema } from '@fleet/protocol/deployment-view';
import { GatePolicySchema } from '../gate/policy.js';
import { JudgeSettingsSchema } from '../canary/judge-settings.js';

// Durations are milliseconds; the CLI parses `30m` etc.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Default cumulative wave percentages: 1 % → 5 % → 25 % → 100 %. */
export const DEFAULT_WAVE_PERCENTS = [1, 5, 25, 100] as const;
/** Default soak after a wave completes: 30 minutes. */
export const DEFAULT_SOAK_MS = 30 * MINUTE;
/** Default time from a wave's start until silent devices count as failed: 2 hours. */
export const DEFAULT_WAVE_DEADLINE_MS = 2 * HOUR;
/** Default minimum of devices that must report before a wave counts as complete (capped by wave size). */
export const DEFAULT_MIN_DEVICES_REPORTING = 20;
/** Default time to wait for exposed devices to report their old version after a rollback: 24 hours. */
export const DEFAULT_ROLLBACK_DEADLINE_MS = 24 * HOUR;

export const WaveSpecSchema = z.object({
  /** Cumulative share of the targeted fleet (by bucket) once this wave has started, 0 < p ≤ 100. */
  percent: z.number().gt(0).max(100),
  /** Soak after the wave's devices finished, before the gate. */
  soakMs: z.number().int().nonnegative().default(DEFAULT_SOAK_MS),
  /** Devices that must have reported before the wave may complete early (capped by its size). */
  minDevicesReporting: z.number().int().nonnegative().default(DEFAULT_MIN_DEVICES_REPORTING),
  /** From the wave's start: devices not finished by then count as failed (timed out). */
  deadlineMs: z.number().int().positive().default(DEFAULT_WAVE_DEADLINE_MS),
  /** An operator must `approve` this wave before it starts. */
  requiresApproval: z.boolean().default(false),
});
export type WaveSpec = z.infer<typeof WaveSpecSchema>;
export type WaveSpecInput = z.input<typeof WaveSpecSchema>;

// Target, maintenance windows and the artifact are shown by the admin API as they are: they are defined
// with the deployment view in protocol/deployment-view.ts.
export { MaintenanceWindowSchema } from '@fleet/protocol/deployment-view';
export type { MaintenanceWindow } from '@fleet/protocol/deployment-view';

export const MonitorPolicySchema = z.object({
  /** How long a Monitor verdict extends the soak; default: the wave's own soak (at least 1 minute). */
  extensionMs: z.number().int().positive().optional(),
  /** Monitor verdicts per wave before the limit. Default 3. */
  maxExtensions: z.number().int().nonnegative().default(3),
  /** At the limit: hold for an operator (`pause`, default) or abort. */
  onLimit: z.enum(['pause', 'abort']).default('pause'),
});

export const RollbackPolicySchema = z.object({
  /** Roll back exposed devices automatically when the gate aborts. Default true. */
  auto: z.boolean().default(true),
  /** After this, devices that have not reported their old version are marked unreachable. */
  deadlineMs: z.number().int().positive().default(DEFAULT_ROLLBACK_DEADLINE_MS),
  /** Rollback commands sent to one device at most (re-sent when it reconnects still on the new version). */
  maxCommandAttempts: z.number().int().min(1).max(20).default(5),
});

/**
 * What the admin API accepts to create a deployment (`fleet deploy create`). The shell turns it into a
 * DeploymentSpec by assigning the id and bucket offset and signing the manifest.
 */
export const DeploymentRequestSchema = z.object({
  /** Optional explicit id; the shell generates one otherwise. */
  id: DeploymentIdSchema.optional(),
  firmwareVersion: SemverSchema,
  target: TargetSpecSchema,
  waves: z.array(WaveSpecSchema).min(1).max(20).optional(),
  gatePolicy: GatePolicySchema.optional(),
  /** Statistical judge settings for this deployment (warm-up, exposure floor, thresholds, plan). */
  judge: JudgeSettingsSchema.optional(),
  monitor: MonitorPolicySchema.optional(),
  rollback: RollbackPolicySchema.optional(),
  maintenanceWindows: z.array(MaintenanceWindowSchema).max(16).default([]),
  /** Epoch ms; the deployment waits in `scheduled` until then. */
  startAt: z.number().int().nonnegative().optional(),
  /** Create as a draft that needs an explicit `start`. Default false: starts right away (or at startAt). */
  draft: z.boolean().default(false),
  /** Fixed bucket offset (0..1023); the shell picks a random one otherwise. */
  bucketOffset: z.number().int().min(0).max(1023).optional(),
  description: z.string().max(500).optional(),
});
export type DeploymentRequest = z.infer<typeof DeploymentRequestSchema>;
export type DeploymentRequestInput = z.input<typeof DeploymentRequestSchema>;

/** A deployment as persisted: everything the engine needs, immutable once created. */
export const DeploymentSpecSchema = z
  .object({
    id: DeploymentIdSchema,
    firmwareVersion: SemverSchema,
    artifact: ArtifactSummarySchema,
    /** The signed manifest envelope published retained on each wave bucket's topic (as signed at creation). */
    manifest: EnvelopeSchema,
    /**
     * Who signed it: the coordinator renews only its own manifests (manifest-renewal.ts). Absent in
     * deployments created before renewal existed: judged from the manifest.
     */
    manifestOrigin: z.enum(['coordinator', 'offline']).optional(),
    target: TargetSpecSchema,
    waves: z.array(WaveSpecSchema).min(1).max(20),
    bucketOffset: z.number().int().min(0).max(1023),
    gatePolicy: GatePolicySchema,
    /** Absent in deployments created before the setting existed: the judge's defaults. */
    judge: JudgeSettingsSchema.optional(),
    monitor: MonitorPolicySchema,
    rollback: RollbackPolicySchema,
    maintenanceWindows: z.array(MaintenanceWindowSchema).max(16).default([]),
    startAt: z.number().int().nonnegative().optional(),
    draft: z.boolean().default(false),
    description: z.string().max(500).optional(),
    createdAt: z.number().int().nonnegative(),
    createdBy: z.string().max(128).optional(),
  })
  .superRefine((spec, ctx) => {
    for (let i = 1; i < spec.waves.length; i++) {
      if (spec.waves[i]!.percent <= spec.waves[i - 1]!.percent) {
        ctx.addIssue({
          code: 'custom',
          path: ['waves', i, 'percent'],
          message: 'wave percentages are cumulative and must strictly increase',
        });
      }
    }
  });
export type DeploymentSpec = z.infer<typeof DeploymentSpecSchema>;

