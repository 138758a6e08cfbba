/**
 * A deployment as the admin API answers it (`GET /v1/deployments`, `/v1/deployments/:id`, the
 * console's `deployment` events): the one definition the coordinator builds its answers to and its
 * readers (the operator console, tests) take their types from. The parts of the engine's state the view
 * shows as they are — phases, wave statuses and counts, pause, rollback, target, artifact, maintenance
 * windows — are defined here and used by the engine too. The judge's settings and the gate's decisions
 * are the coordinator's own (its canary and gate schemas) and are not described here. The browser
 * imports the types only. Pure.
 */
import { z } from 'zod';
import { HardwareModelSchema, TagSchema } from './ids.js';

export const DEPLOYMENT_PHASES = [
  'draft', // created, waits for `start`
  'scheduled', // waits for spec.startAt
  'pending', // wave `current` waits for approval and/or a maintenance window
  'rolling', // wave `current`'s manifest is published; devices are updating
  'soaking', // wave `current` finished; soaking before its gate
  'gating', // the gate is running for wave `current`
  'completed', // every wave passed its gate (late devices are still tracked)
  'aborted', // stopped without a rollback (nothing exposed, or the operator chose so)
  'rolling-back', // rollback commands sent; waiting for exposed devices to report their old version
  'rolled-back', // every exposed device reported its old version back or was marked unreachable
] as const;
export const DeploymentPhaseSchema = z.enum(DEPLOYMENT_PHASES);
export type DeploymentPhase = z.infer<typeof DeploymentPhaseSchema>;

export const WaveStatusSchema = z.enum(['pending', 'rolling', 'soaking', 'gating', 'passed', 'aborted', 'skipped']);

/** What a pending wave waits for (derived on each step; shown to operators). */
export const WaitingForSchema = z.enum(['approval', 'window', 'start-time', 'operator']);

/** Per-wave device counts, kept incrementally by the engine (devices count toward their bucket's wave). */
export const WaveCountsSchema = z.object({
  /** Known to be in the wave (membership at start, late arrivals, reporters). */
  tracked: z.number().int().nonnegative(),
  /** Tracked devices that were offline and never came online: not expected to report. */
  offline: z.number().int().nonnegative(),
  /** Online, expected, not reported yet. */
  waiting: z.number().int().nonnegative(),
  /** Reported, still working (downloading … trial). */
  inProgress: z.number().int().nonnegative(),
  committed: z.number().int().nonnegative(),
  /** Failed or rolled back by themselves (install failures, trial failures, refused signatures). */
  failed: z.number().int().nonnegative(),
  /** Of `failed`: trial boot failures and fall-backs. */
  trialFailures: z.number().int().nonnegative(),
  /** Silent past the wave deadline: count as failed for the gate. */
  timedOut: z.number().int().nonnegative(),
  /** Not eligible (wrong version/hardware/tags) or already on the version: neither success nor failure. */
  ineligible: z.number().int().nonnegative(),
  /** Devices that sent at least one status for this deployment. */
  reporting: z.number().int().nonnegative(),
});
export type WaveCounts = z.infer<typeof WaveCountsSchema>;

export const PauseSchema = z.object({
  at: z.number().int(),
  by: z.string().max(128),
  /** `operator`, or `monitor-limit` when the gate kept saying Monitor. */
  cause: z.enum(['operator', 'monitor-limit']),
  reason: z.string().max(500).optional(),
});

export const RollbackStateSchema = z.object({
  startedAt: z.number().int(),
  deadlineAt: z.number().int(),
  by: z.string().max(128),
  reason: z.string().max(500),
  /** Exposed devices that must report their old version. */
  exposed: z.number().int().nonnegative(),
  confirmed: z.number().int().nonnegative(),
  unreachable: z.number().int().nonnegative(),
  /**
   * Devices that refused the rollback because it would cross their security floor: they committed an
   * image that raised it, and stay on it. Absent in older records: none.
   */
  refused: z.number().int().nonnegative().default(0),
  completedAt: z.number().int().optional(),
});

export const TargetSpecSchema = z.object({
  hardwareModels: z.array(HardwareModelSchema).min(1),
  /** semver range of current device versions, e.g. `>=1.0.0 <2.0.0`; `*` for any. */
  versionRange: z.string().min(1).max(256).default('*'),
  /** Devices must carry all of these tags. */
  tags: z.array(TagSchema).max(32).default([]),
});

/**
 * A window in which waves may START (a started wave runs on after it closes). `cron` is a 5-field
 * (minute hour day-of-month month day-of-week) or 6-field (with leading seconds) expression giving the
 * window's start times, read in `timeZone` (UTC by default); the window lasts `durationMs` of real time
 * from each start.
 */
export const MaintenanceWindowSchema = z.object({
  cron: z.string().min(1).max(200),
  durationMs: z.number().int().positive(),
  /**
   * IANA time zone the cron is read in, e.g. `Europe/Berlin`; absent means UTC (and windows stored
   * before the field existed stay UTC). Checked against the host's zone data when a deployment is created.
   */
  timeZone: z.string().min(1).max(64).regex(/^[A-Za-z0-9_+\-/]+$/, 'an IANA time zone name such as Europe/Berlin').optional(),
  /** Free text for operators, e.g. `weeknights`. */
  name: z.string().max(64).optional(),
});
export type MaintenanceWindow = z.infer<typeof MaintenanceWindowSchema>;

export const ArtifactSummarySchema = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().positive(),
  url: z.string().optional(),
});

/** The signed manifest the deployment publishes now (renewed during a long rollout), in brief. */
export const ManifestSummarySchema = z.object({
  /** The deployment it is bound to (absent: an offline-signed manifest for any deployment). */
  deploymentId: z.string().optional(),
  metadataVersion: z.number().int().optional(),
  securityVersion: z.number().int(),
  issuedAt: z.string(),
  expiresAt: z.string(),
});
export type ManifestSummary = z.infer<typeof ManifestSummarySchema>;

/** One wave: its spec (percent, soak, deadline, approval) and its state. */
export const WaveViewSchema = z.object({
  index: z.number().int().nonnegative(),
  percent: z.number(),
  status: WaveStatusSchema,
  soakMs: z.number().int(),
  deadlineMs: z.number().int(),
  requiresApproval: z.boolean(),
  approved: z.boolean(),
  /** Who approved it: `operator:<user>`. */
  approvedBy: z.string().optional(),
  startedAt: z.number().int().optional(),
  deadlineAt: z.number().int().optional(),
  completedAt: z.number().int().optional(),
  soakEndsAt: z.number().int().optional(),
  verdict: z.enum(['Proceed', 'Monitor', 'Abort']).optional(),
  decisionId: z.string().optional(),
  monitorCount: z.number().int().nonnegative(),
  counts: WaveCountsSchema,
});
export type WaveView = z.infer<typeof WaveViewSchema>;

export const DeploymentViewSchema = z.object({
  id: z.string(),
  firmwareVersion: z.string(),
  description: z.string().optional(),
  phase: DeploymentPhaseSchema,
  current: z.number().int().nonnegative(),
  paused: z.boolean(),
  pause: PauseSchema.optional(),
  waitingFor: z.array(WaitingForSchema),
  target: TargetSpecSchema,
  artifact: ArtifactSummarySchema,
  bucketOffset: z.number().int(),
  manifest: ManifestSummarySchema.optional(),
  /** When its waves may start (cron, duration, time zone); none: any time. */
  maintenanceWindows: z.array(MaintenanceWindowSchema),
  waves: z.array(WaveViewSchema),
  rollback: RollbackStateSchema.optional(),
  abortReason: z.string().optional(),
  /** Who aborted it: `operator:<user>`, or `gate`. */
  abortedBy: z.string().optional(),
  createdAt: z.number().int(),
  createdBy: z.string().optional(),
  updatedAt: z.number().int(),
  revision: z.number().int().nonnegative(),
  /**
   * At creation only: canary waves too small to judge, what the firmware does to the devices'
   * security floors, an offline-signed manifest that devices may refuse as stale.
   */
  warnings: z.array(z.string()).optional(),
});
export type DeploymentView = z.infer<typeof DeploymentViewSchema>;
