/**
 * The rollout engine's vocabulary: deployment specs (zod, persisted and accepted by the admin API),
 * the deployment/wave/device state the pure engine steps, the events it consumes, the effects it
 * emits, operator actions, and the seams the engine runner needs injected (EffectSink,
 * DeploymentRepository, WaveDirectory). Pure: types and schemas only.
 */
import { z } from 'zod';
import { DeviceIdSchema, HardwareModelSchema, SemverSchema } from '@fleet/protocol/ids';
import { DeploymentSpecSchema, type DeploymentSpec } from './spec-schema.js';
import type { HelloMessage, RolloutMessage, StatusMessage } from '@fleet/protocol/messages';
import { UpdateReasonSchema } from '@fleet/protocol/reasons';
import { UpdateStateSchema } from '@fleet/protocol/update-state';
import { EnvelopeSchema, type Envelope } from '@fleet/protocol/signed';
import { DeploymentPhaseSchema, PauseSchema, RollbackStateSchema, WaitingForSchema, WaveCountsSchema, WaveStatusSchema, type DeploymentPhase } from '@fleet/protocol/deployment-view';
import type { DecisionRecord } from '../gate/decision.js';

export * from './spec-schema.js';

// ---------------------------------------------------------------------------------------------
// State

// Phases, wave statuses and counts, pause and rollback are shown by the admin API as they are: they are
// defined with the deployment view in protocol/deployment-view.ts.
export { DEPLOYMENT_PHASES } from '@fleet/protocol/deployment-view';
export type { DeploymentPhase, WaveCounts } from '@fleet/protocol/deployment-view';

/** Phases in which a deployment holds its hardware models (one active deployment per model). */
export const ACTIVE_PHASES: readonly DeploymentPhase[] = ['draft', 'scheduled', 'pending', 'rolling', 'soaking', 'gating', 'rolling-back'];
/** Phases in which nothing more happens to the deployment. */
export const FINAL_PHASES: readonly DeploymentPhase[] = ['aborted', 'rolled-back'];

export const WaveStateSchema = z.object({
  index: z.number().int().nonnegative(),
  status: WaveStatusSchema,
  approvedBy: z.string().max(128).optional(),
  startedAt: z.number().int().optional(),
  /** startedAt + deadlineMs, shifted by pauses. */
  deadlineAt: z.number().int().optional(),
  /** When every expected device finished (or the deadline passed). */
  completedAt: z.number().int().optional(),
  soakEndsAt: z.number().int().optional(),
  /** The wave's membership has been delivered by the directory (`wave-members`). */
  membersKnown: z.boolean().default(false),
  /** Gate runs requested for this wave; a gate result for another attempt is stale and ignored. */
  gateAttempt: z.number().int().nonnegative().default(0),
  /** Monitor verdicts so far in this wave. */
  monitorCount: z.number().int().nonnegative().default(0),
  verdict: z.enum(['Proceed', 'Monitor', 'Abort']).optional(),
  decisionId: z.string().optional(),
  counts: WaveCountsSchema,
});
export type WaveState = z.infer<typeof WaveStateSchema>;

/** The deployment's own state, without its devices (one row; small). */
export const DeploymentCoreSchema = z.object({
  spec: DeploymentSpecSchema,
  phase: DeploymentPhaseSchema,
  /** Index of the wave the phase refers to (pending/rolling/soaking/gating), or the last one reached. */
  current: z.number().int().nonnegative(),
  waves: z.array(WaveStateSchema),
  pause: PauseSchema.optional(),
  /** What the pending wave is waiting for (derived on each step; shown to operators). */
  waitingFor: z.array(WaitingForSchema).default([]),
  /** Wave indices approved ahead of time. */
  approvals: z.array(z.number().int().nonnegative()).default([]),
  rollback: RollbackStateSchema.optional(),
  abortReason: z.string().max(500).optional(),
  /** Who aborted it: `operator:<user>`, or `gate` when a gate decision did. */
  abortedBy: z.string().max(128).optional(),
  /**
   * The manifest as last renewed (manifest-renewal.ts): same deployment and image, a later
   * metadataVersion and expiry. Absent until the first renewal: spec.manifest, as signed at creation.
   */
  manifest: EnvelopeSchema.optional(),
  /** Set while renewals fail: when the next attempt is due, and why the last one failed. */
  manifestRenewal: z.object({ failures: z.number().int().positive(), retryAt: z.number().int(), error: z.string().max(500) }).optional(),
  updatedAt: z.number().int(),
  /** Bumped on every persisted change (optimistic concurrency in the repository). */
  revision: z.number().int().nonnegative(),
});
export type DeploymentCore = z.infer<typeof DeploymentCoreSchema>;

/** `waiting` device states the engine adds to the wire's UpdateState. */
export const DeviceTrackStateSchema = z.union([UpdateStateSchema, z.enum(['pending'])]);

export const DeviceRollbackSchema = z.object({
  /** `refused`: the device reported the rollback below its security floor and stays on the new image. */
  status: z.enum(['sent', 'confirmed', 'unreachable', 'refused']),
  attempts: z.number().int().nonnegative(),
  commandId: z.string(),
  sentAt: z.number().int(),
  confirmedAt: z.number().int().optional(),
});

/** One device's progress in one deployment. */
export const DeviceProgressSchema = z.object({
  deviceId: DeviceIdSchema,
  bucket: z.number().int().min(0).max(1023),
  /** The wave its bucket belongs to. */
  wave: z.number().int().nonnegative(),
  hardwareModel: HardwareModelSchema.optional(),
  state: DeviceTrackStateSchema,
  reason: UpdateReasonSchema.optional(),
  detail: z.string().max(512).optional(),
  /** The version it ran before the update (from status `fromVersion` or the hello at membership). */
  fromVersion: SemverSchema.optional(),
  /** The device's last known running version. */
  runningVersion: SemverSchema.optional(),
  online: z.boolean(),
  /** Joined after its wave started (late arrival), e.g. came online later. */
  late: z.boolean().default(false),
  /** Was silent past its wave's deadline; stays set for the record. */
  timedOut: z.boolean().default(false),
  /** The state it was last seen in when it went silent. */
  lastSeq: z.number().int().optional(),
  lastStatusAt: z.number().int().optional(),
  firstSeenAt: z.number().int(),
  lastSeenAt: z.number().int(),
  rollback: DeviceRollbackSchema.optional(),
});
export type DeviceProgress = z.infer<typeof DeviceProgressSchema>;

/**
 * The full state the pure engine steps. Devices are sharded by bucket so that a change to one device
 * copies one small shard and the shard index, never every device (fleets of 10,000+).
 */
export interface DeploymentState {
  readonly core: DeploymentCore;
  /** bucket → deviceId → progress. Treat as immutable. */
  readonly devices: Readonly<Record<number, Readonly<Record<string, DeviceProgress>>>>;
}

// ---------------------------------------------------------------------------------------------
// Operator actions (admin API → engine)

/** Every operator action may say why; the reason goes into each audit entry the action causes. */
const Reason = z.string().max(500).optional();

export const OperatorActionSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('start'), reason: Reason }),
  z.object({ type: z.literal('pause'), reason: Reason }),
  z.object({ type: z.literal('resume'), reason: Reason }),
  /** Stop the rollout; exposed devices are rolled back unless `rollback: false`. */
  z.object({ type: z.literal('abort'), reason: Reason, rollback: z.boolean().default(true) }),
  /** Roll back every exposed device (also after completion or an abort without rollback). */
  z.object({ type: z.literal('rollback'), reason: Reason }),
  /** Skip what the current wave waits for (stragglers, the rest of the soak, a window, a Monitor hold). */
  z.object({ type: z.literal('promote'), reason: Reason }),
  /** Approve a wave that requires approval; default: the next wave that needs it. */
  z.object({ type: z.literal('approve'), reason: Reason, wave: z.number().int().nonnegative().optional() }),
]);
export type OperatorAction = z.infer<typeof OperatorActionSchema>;
export type OperatorActionInput = z.input<typeof OperatorActionSchema>;

// ---------------------------------------------------------------------------------------------
// Events (inputs to step)

/** A device the directory says belongs to a wave's buckets and matches the target. */
export interface WaveMember {
  deviceId: string;
  bucket: number;
  hardwareModel: string;
  firmwareVersion: string;
  online: boolean;
}

export type EngineEvent =
  /** Timer fired (or any periodic nudge): the engine checks its deadlines against `now`. */
  | { type: 'tick' }
  /** `hardwareModel`: what the registry knows the device as (its status does not say). */
  | { type: 'device-status'; status: StatusMessage; hardwareModel?: string }
  | { type: 'device-hello'; hello: HelloMessage }
  | { type: 'device-presence'; deviceId: string; online: boolean }
  /** Answer to a `request-members` effect. */
  | { type: 'wave-members'; wave: number; members: readonly WaveMember[] }
  /** Answer to a `run-gate` effect: the combined decision. */
  | { type: 'gate-result'; wave: number; attempt: number; decision: DecisionRecord }
  /** Answer to a `renew-manifest` effect: the manifest signed afresh, or why it could not be. */
  | { type: 'manifest-renewed'; manifest: Envelope }
  | { type: 'manifest-renewal-failed'; error: string }
  | { type: 'operator'; action: OperatorAction; actor: string };

// ---------------------------------------------------------------------------------------------
// Effects (outputs of step; data the shell carries out, in order, after persisting)

export type EngineEffect =
  /** Publish the retained rollout message on `fleet/v1/rollout/{model}/{bucket}` for each bucket. */
  | { type: 'publish-rollout'; hardwareModel: string; buckets: number[]; message: RolloutMessage }
  /** Stop the deployment on those topics: the runner has the sink leave a retained rollout-cancel for it. */
  | { type: 'clear-rollout'; hardwareModel: string; buckets: number[] }
  /** Sign and send a command to one device (the sink signs; the id makes re-sends idempotent). */
  | { type: 'send-command'; command: CommandRequest }
  /** Ask the directory for a wave's members; answer with a `wave-members` event. */
  | { type: 'request-members'; wave: number; buckets: number[] }
  /** Run the gate's analyzers for this wave; answer with a `gate-result` event. */
  | { type: 'run-gate'; wave: number; attempt: number }
  /** Persist the decision (in the same transaction as the state). */
  | { type: 'record-decision'; decision: DecisionRecord }
  /**
   * Sign the deployment's manifest afresh (same deployment and image, the next metadataVersion, a new
   * lifetime) and answer with `manifest-renewed` or `manifest-renewal-failed` before any other event.
   */
  | { type: 'renew-manifest' }
  /** Wake the engine with a `tick` at this time (the runner keeps one timer per deployment). */
  | { type: 'schedule-wake'; at: number }
  /** An audit-log entry / structured log line. */
  | { type: 'audit'; entry: AuditEntry }
  /**
   * A device reported on an update it was never offered: recorded on the device for operators,
   * never fed to a gate. Changes no state (a step with only these persists nothing).
   */
  | { type: 'device-anomaly'; deviceId: string; kind: 'unoffered-status'; detail: string };

export interface CommandRequest {
  /** Deterministic per (deployment, device, attempt): a re-send after a crash is the same command. */
  commandId: string;
  deviceId: string;
  action: 'rollback';
  deploymentId: string;
}

export interface AuditEntry {
  at: number;
  /** `operator:<name>`, `gate`, `engine`. */
  actor: string;
  /** e.g. `deployment.wave-started`, `deployment.paused`. */
  action: string;
  deploymentId: string;
  wave?: number;
  deviceId?: string;
  detail: Record<string, unknown>;
}

export interface StepResult {
  state: DeploymentState;
  effects: EngineEffect[];
  /** Devices whose progress changed (persist them with the core). */
  changedDevices: DeviceProgress[];
  /** Set when an operator action is not allowed in this state; state is unchanged. */
  rejected?: { code: string; message: string };
}

// ---------------------------------------------------------------------------------------------
// Seams the runner needs injected (implemented by the shell)

/** Carries out the outward effects. Each call may be retried after a crash: keep them idempotent. */
export interface EffectSink {
  /** Publish `message` retained, QoS 1, on the rollout topic of `hardwareModel` for each bucket. */
  publishRollout(hardwareModel: string, buckets: readonly number[], message: RolloutMessage): Promise<void>;
  /**
   * Stop the deployment's waves on those topics: with `deploymentId` (as the runner passes it),
   * replace the retained manifest with a retained rollout-cancel for that deployment, so devices offline
   * now abort when they reconnect; without it, publish an empty retained payload.
   */
  clearRollout(hardwareModel: string, buckets: readonly number[], deploymentId?: string): Promise<void>;
  /** Build, sign (coordinator key) and publish a command on the device's command topic, QoS 1. */
  sendCommand(command: CommandRequest): Promise<void>;
  /** Append to the audit log and log it (pino, child `engine`); the runner awaits a returned promise. */
  audit(entry: AuditEntry): void | Promise<void>;
  /** A decision was recorded (already persisted with the state): for listeners (metrics, webhooks). */
  decision?(record: DecisionRecord): void;
  /** Record a device anomaly (the registry's anomaly log); optional for sinks that keep none. */
  anomaly?(deviceId: string, kind: 'unoffered-status', detail: string): void;
}

/**
 * Where deployments live (SQLite or PostgreSQL; deployments/deployment-repo.ts). Asynchronous: the
 * runner awaits `save` before it carries out the step's effects; `save` is one transaction.
 */
export interface DeploymentRepository {
  /** Persist the core, changed devices and decisions atomically; rejects on a revision conflict. */
  save(change: { core: DeploymentCore; devices: readonly DeviceProgress[]; decisions: readonly DecisionRecord[] }): Promise<void>;
  /** One deployment with its devices, or undefined. */
  load(deploymentId: string): Promise<DeploymentState | undefined>;
  /** Every deployment not in a final phase (completed ones included: they still track late devices). */
  loadLive(): Promise<DeploymentState[]>;
  /** Summaries, newest first. */
  list(options?: { phases?: readonly DeploymentPhase[]; limit?: number }): Promise<DeploymentCore[]>;
  /** Decisions of one deployment, oldest first. */
  decisions(deploymentId: string): Promise<DecisionRecord[]>;
  /** Device progress of one deployment, optionally one wave. */
  devices(deploymentId: string, wave?: number): Promise<DeviceProgress[]>;
}

/** The registry's answer to "who is in these buckets and matches this target". */
export interface WaveDirectory {
  members(spec: DeploymentSpec, buckets: readonly number[]): readonly WaveMember[] | Promise<readonly WaveMember[]>;
}

export type { DecisionRecord };
