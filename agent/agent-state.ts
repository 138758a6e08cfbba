/**
 * The agent's persisted state: what survives a kill, a power loss or a reboot. A zod schema (it is a
 * file format) plus small pure helpers. Pure.
 *
 * The state is written atomically *before* any effect that depends on it (see state-store.ts), so
 * after a crash the update machine resumes from the last decision it made, never from one it had not
 * recorded yet.
 */
import { z } from 'zod';
import { DeploymentIdSchema, SemverSchema, Sha256HexSchema } from '@fleet/protocol/ids';
import { UpdateReasonSchema } from '@fleet/protocol/reasons';
import { SlotNameSchema, UpdateStateSchema, type SlotName, type UpdateState } from '@fleet/protocol/update-state';

export const AGENT_STATE_VERSION = 1;
/** Deployments remembered as handled (retained rollouts are redelivered on every reconnect). */
export const HANDLED_LIMIT = 64;

/**
 * Internal stage of a job. Finer than the reported UpdateState: `committing` (mark-good in flight)
 * and `reverting` (mark-bad + reboot back) are needed to resume correctly after a crash.
 */
export const JobStageSchema = z.enum([
  'downloading',
  'verifying',
  'installing',
  'rebooting',
  'trial',
  'committing',
  'reverting',
  'done',
]);
export type JobStage = z.infer<typeof JobStageSchema>;

export const ArtifactSchema = z.object({ url: z.string().min(1), size: z.number().int().positive(), sha256: Sha256HexSchema });
export type Artifact = z.infer<typeof ArtifactSchema>;

export const JobSchema = z.object({
  /** `install` a new image, or `rollback` to the firmware still held by the other slot. */
  kind: z.enum(['install', 'rollback']),
  deploymentId: DeploymentIdSchema,
  wave: z.number().int().nonnegative().optional(),
  stage: JobStageSchema,
  /** Final reported state once `stage` is `done`. */
  result: UpdateStateSchema.optional(),
  fromVersion: SemverSchema,
  toVersion: SemverSchema,
  fromSlot: SlotNameSchema,
  toSlot: SlotNameSchema,
  artifact: ArtifactSchema.optional(),
  securityVersion: z.number().int().min(0).optional(),
  /** Download attempts made so far (bounded by config). */
  attempts: z.number().int().nonnegative().default(0),
  /** Refusals by a busy server (503/429) so far: not attempts, bounded by MAX_BUSY_RETRIES. */
  busyRetries: z.number().int().nonnegative().optional(),
  /** When the next download attempt is due (backoff after a failure). */
  retryAt: z.number().int().nonnegative().optional(),
  /** Bytes downloaded so far (last reported). */
  bytes: z.number().int().nonnegative().default(0),
  /** Last progress report, in tenths of the total, so progress is reported at most ~10 times. */
  reportedTenths: z.number().int().min(0).max(10).default(0),
  reason: UpdateReasonSchema.optional(),
  detail: z.string().max(512).optional(),
  /** Boot id when the reboot into the trial was requested: tells "not rebooted yet" from "fell back". */
  bootId: z.string().max(128).optional(),
  /** Times the agent restarted on the same boot and re-issued the reboot (bounded: no reboot loop). */
  rebootRetries: z.number().int().nonnegative().default(0),
  /**
   * Trials of this job interrupted after the agent came up on the new slot (power cut, reset) and
   * booted again; bounded by MAX_TRIAL_RETRIES. Absent: none (state files from older agents).
   */
  trialRetries: z.number().int().nonnegative().optional(),
  trialStartedAt: z.number().int().nonnegative().optional(),
  /** A rollback or abort asked for while the reboot into the trial was already under way. */
  revertRequested: UpdateReasonSchema.optional(),
  commandId: z.string().max(64).optional(),
  updatedAt: z.number().int().nonnegative(),
});
export type Job = z.infer<typeof JobSchema>;

export const AgentStateSchema = z.object({
  v: z.literal(AGENT_STATE_VERSION),
  /** Status message sequence number (per device, monotonic). */
  seq: z.number().int().nonnegative(),
  /**
   * Every status seq used so far is below this; it is kept in the durable record (durable-record.ts),
   * so an agent that lost this file starts above any seq it ever sent. Raised a block at a time.
   */
  seqReserved: z.number().int().nonnegative().default(0),
  /** Telemetry sequence numbers up to this value are reserved for the running agent. */
  telemetrySeqReserved: z.number().int().nonnegative().default(0),
  /** Firmware held by each slot; absent while a slot is being written or its content is unknown. */
  slotVersions: z.object({ A: SemverSchema.optional(), B: SemverSchema.optional() }),
  /** The deployment that wrote each slot (absent: factory image or unknown). */
  slotDeployments: z.object({ A: DeploymentIdSchema.optional(), B: DeploymentIdSchema.optional() }).default({}),
  /** The securityVersion of each slot's image, as its manifest said (absent: factory image or unknown). */
  slotSecurity: z.object({ A: z.number().int().min(0).optional(), B: z.number().int().min(0).optional() }).default({}),
  /** Slot the running system booted from, as last reported by the bootloader. */
  booted: SlotNameSchema,
  securityFloor: z.number().int().min(0),
  /** Deployment ids already finished (any terminal state), newest last. */
  handled: z.array(DeploymentIdSchema).max(HANDLED_LIMIT),
  /**
   * The highest manifest metadataVersion accepted and the deployment it came under: a manifest below
   * it (or equal under another deployment) is stale (firmware/manifest.ts freshnessProblem).
   */
  manifestVersion: z.number().int().nonnegative().default(0),
  manifestDeployment: DeploymentIdSchema.optional(),
  /** The highest command seq executed: a command not above it is a replay. */
  commandSeq: z.number().int().nonnegative().default(0),
  counters: z.object({
    crashes: z.number().int().nonnegative(),
    agentRestarts: z.number().int().nonnegative(),
    errors: z.number().int().nonnegative(),
    reboots: z.number().int().nonnegative(),
  }),
  /** Boot id of the last agent run, and whether it stopped cleanly (crash detection). */
  lastBootId: z.string().max(128).optional(),
  running: z.boolean().default(false),
  job: JobSchema.nullable(),
});
export type AgentState = z.infer<typeof AgentStateSchema>;

/** The state of a device that has never run the agent. */
export function initialAgentState(firmwareVersion: string, booted: SlotName, securityFloor = 0): AgentState {
  return {
    v: AGENT_STATE_VERSION,
    seq: 0,
    seqReserved: 0,
    telemetrySeqReserved: 0,
    slotVersions: { [booted]: firmwareVersion },
    slotDeployments: {},
    slotSecurity: {},
    booted,
    securityFloor,
    handled: [],
    manifestVersion: 0,
    commandSeq: 0,
    counters: { crashes: 0, agentRestarts: 0, errors: 0, reboots: 0 },
    running: false,
    job: null,
  };
}

/** The firmware version the device runs now. */
export function currentVersion(state: AgentState): string | undefined {
  return state.slotVersions[state.booted];
}

/** A job is busy from its first byte until it is done; a new rollout waits (or supersedes it). */
export function isBusy(state: AgentState): boolean {
  return state.job !== null && state.job.stage !== 'done';
}

/** A job before the reboot into its trial: it can still be aborted without touching the boot path. */
export function isPreReboot(job: Job): boolean {
  return job.stage === 'downloading' || job.stage === 'verifying' || job.stage === 'installing';
}

/** The UpdateState reported on the wire for a job. */
export function reportedState(job: Job): UpdateState {
  if (job.stage === 'done') return job.result ?? 'failed';
  if (job.kind === 'rollback') return 'rolling-back';
  switch (job.stage) {
    case 'downloading':
    case 'verifying':
    case 'installing':
    case 'rebooting':
    case 'trial':
      return job.stage;
    case 'committing':
      return 'trial';
    case 'reverting':
      return 'rolling-back';
  }
}

/** Appends to a bounded most-recent-last list. */
export function remember(list: readonly string[], id: string, limit: number): string[] {
  const next = list.filter((x) => x !== id);
  next.push(id);
  return next.length > limit ? next.slice(next.length - limit) : next;
}

/**
 * The state at the start of an agent run: counts a reboot (new boot id) or an agent restart (same
 * boot), a crash when the previous run did not stop cleanly, marks the run as running, and reserves a
 * block of telemetry sequence numbers so they stay monotonic across restarts.
 */
export function beginRun(state: AgentState, bootId: string, hadState: boolean, seqBlock: number): AgentState {
  const counters = { ...state.counters };
  if (hadState) {
    if (state.lastBootId !== undefined && state.lastBootId !== bootId) counters.reboots++;
    else counters.agentRestarts++;
    if (state.running) counters.crashes++;
  }
  return { ...state, counters, running: true, telemetrySeqReserved: state.telemetrySeqReserved + seqBlock };
}
