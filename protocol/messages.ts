/**
 * Every MQTT message, as zod schemas with a protocol version `v`. Types are inferred from them. Pure.
 *
 * Messages are JSON. Each carries `v` (protocol version) and `kind`; `DeviceMessageSchema` and
 * `CoordinatorMessageSchema` are discriminated unions over `kind` for each direction.
 */
import { z } from 'zod';
import {
  DeploymentIdSchema,
  DeviceIdSchema,
  HardwareModelSchema,
  SemverSchema,
  TagSchema,
} from './ids.js';
import { UpdateReasonSchema } from './reasons.js';
import { SlotNameSchema, UpdateStateSchema } from './update-state.js';
import { EnvelopeSchema, PROTOCOL_VERSION } from './signed.js';

const V = z.literal(PROTOCOL_VERSION);
const EpochMsSchema = z.number().int().nonnegative();

/** Birth message, sent on every (re)connect. */
export const HelloMessageSchema = z.object({
  v: V,
  kind: z.literal('hello'),
  deviceId: DeviceIdSchema,
  hardwareModel: HardwareModelSchema,
  firmwareVersion: SemverSchema,
  activeSlot: SlotNameSchema,
  agentVersion: z.string().min(1).max(64),
  bucket: z.number().int().min(0).max(1023),
  tags: z.array(TagSchema).max(32).default([]),
  /** Anti-rollback floor the device enforces. */
  securityFloor: z.number().int().min(0).default(0),
  /** The update the device is working on or last finished, so a restarted coordinator can catch up. */
  update: z
    .object({
      deploymentId: DeploymentIdSchema,
      state: UpdateStateSchema,
      toVersion: SemverSchema.optional(),
      /**
       * Why the update is in that state, as its last status said. A hello can reach the coordinator
       * before the status it summarises: without the reason, a trial that fell back ("rolled-back",
       * trial-boot-failed) would read as a rollback someone ordered.
       */
      reason: UpdateReasonSchema.optional(),
    })
    .optional(),
  bootCount: z.number().int().nonnegative().optional(),
  at: EpochMsSchema,
});
export type HelloMessage = z.infer<typeof HelloMessageSchema>;

/** One transition of the device's update state machine. */
export const StatusMessageSchema = z.object({
  v: V,
  kind: z.literal('status'),
  deviceId: DeviceIdSchema,
  deploymentId: DeploymentIdSchema,
  state: UpdateStateSchema,
  /**
   * The version the device moves away from. For every state but `rolled-back` this is the version it
   * ran before the update. A `rolled-back` report swaps the two: `fromVersion` is the abandoned (new)
   * version and `toVersion` the old one it runs again, so `toVersion` always names the version running
   * after a terminal report (`committed`, `rolled-back`).
   */
  fromVersion: SemverSchema,
  /** The version the device moves to; after `rolled-back`, the old version it runs again (see fromVersion). */
  toVersion: SemverSchema,
  /** Bytes downloaded so far and the total, while downloading. */
  progress: z.object({ bytes: z.number().int().nonnegative(), total: z.number().int().positive() }).optional(),
  reason: UpdateReasonSchema.optional(),
  /** Human detail for the reason (bounded). */
  detail: z.string().max(512).optional(),
  /** Per-device sequence number; lets the coordinator ignore duplicates and reordering. */
  seq: z.number().int().nonnegative(),
  at: EpochMsSchema,
});
export type StatusMessage = z.infer<typeof StatusMessageSchema>;

/** At most this many custom metrics per telemetry message; the agent keeps its first 64. */
export const MAX_CUSTOM_METRICS = 64;
/** A custom metric's name: letters, digits, `_`, `.` and `-`, 1 to 64 characters. */
export const CUSTOM_METRIC_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** Custom metric values are finite and within ±1e15 (float64 still holds every whole number there). */
export const MAX_CUSTOM_METRIC_MAGNITUDE = 1e15;

/** Counts own keys, stopping past `limit`: a hostile object with 100,000 keys costs no more than 65. */
function hasAtMostKeys(value: unknown, limit: number): boolean {
  if (typeof value !== 'object' || value === null) return true; // the record schema names the type error
  let n = 0;
  for (const key in value) if (Object.hasOwn(value, key) && ++n > limit) return false;
  return true;
}

const CustomMetricsSchema = z
  .custom<Record<string, unknown>>((v) => hasAtMostKeys(v, MAX_CUSTOM_METRICS), { message: `at most ${MAX_CUSTOM_METRICS} custom metrics` })
  .pipe(z.record(z.string().regex(CUSTOM_METRIC_NAME), z.number().min(-MAX_CUSTOM_METRIC_MAGNITUDE).max(MAX_CUSTOM_METRIC_MAGNITUDE)));

/**
 * Metric values. A metric the device cannot measure is left out, never sent as zero.
 * Counters are cumulative since the agent's data directory was created (monotonic across reboots), so
 * a lost QoS 0 message loses no events: the coordinator takes differences.
 */
export const TelemetryMessageSchema = z.object({
  v: V,
  kind: z.literal('telemetry'),
  deviceId: DeviceIdSchema,
  firmwareVersion: SemverSchema,
  slot: SlotNameSchema,
  uptimeS: z.number().nonnegative(),
  bootCount: z.number().int().nonnegative(),
  metrics: z
    .object({
      cpuPct: z.number().min(0).max(100),
      memUsedMb: z.number().nonnegative(),
      memTotalMb: z.number().nonnegative(),
      temperatureC: z.number().min(-80).max(200),
      batteryPct: z.number().min(0).max(100),
      powerW: z.number().nonnegative(),
      bootTimeS: z.number().nonnegative(),
    })
    .partial(),
  counters: z.object({
    crashes: z.number().int().nonnegative(),
    agentRestarts: z.number().int().nonnegative(),
    errors: z.number().int().nonnegative(),
    reboots: z.number().int().nonnegative(),
  }),
  /** Custom numeric metrics from the device's metrics script; bounded in count, name and value. */
  custom: CustomMetricsSchema.default({}),
  /** New error log lines since the last message: untrusted, bounded, truncated by the agent. */
  logs: z.array(z.string().max(512)).max(20).default([]),
  seq: z.number().int().nonnegative(),
  at: EpochMsSchema,
});
export type TelemetryMessage = z.infer<typeof TelemetryMessageSchema>;

/** Last will (offline) and explicit presence. */
export const PresenceMessageSchema = z.object({
  v: V,
  kind: z.literal('presence'),
  deviceId: DeviceIdSchema,
  state: z.enum(['online', 'offline']),
  at: EpochMsSchema.optional(),
});
export type PresenceMessage = z.infer<typeof PresenceMessageSchema>;

/** A wave's signed manifest, published retained on each of the wave's bucket topics. */
export const RolloutMessageSchema = z.object({
  v: V,
  kind: z.literal('rollout'),
  deploymentId: DeploymentIdSchema,
  /** 0-based wave index that added this bucket. */
  wave: z.number().int().nonnegative(),
  /** Signed manifest envelope; verified by the agent before anything else. */
  manifest: EnvelopeSchema,
});
export type RolloutMessage = z.infer<typeof RolloutMessageSchema>;

/**
 * A deployment was aborted or rolled back: published retained on each of its waves' bucket topics in
 * place of the manifest, so a device that was offline when the wave was stopped still hears of it on
 * reconnect. An agent whose current update belongs to `deploymentId` and has not reached its trial
 * abandons it (reports `failed` with reason `aborted`); any other agent ignores it. A later
 * deployment's rollout message on the same topic simply replaces it. (An empty retained payload means
 * the same to agents, for any deployment.) Unsigned like the empty payload: only the coordinator may
 * publish on rollout topics (broker ACL), and a cancel can only stop an update, never start one.
 */
export const RolloutCancelMessageSchema = z.object({
  v: V,
  kind: z.literal('rollout-cancel'),
  deploymentId: DeploymentIdSchema,
  at: EpochMsSchema,
});
export type RolloutCancelMessage = z.infer<typeof RolloutCancelMessageSchema>;

/** What a device may find on its rollout topic: a wave's manifest or a deployment's cancel. */
export const RolloutTopicMessageSchema = z.discriminatedUnion('kind', [RolloutMessageSchema, RolloutCancelMessageSchema]);
export type RolloutTopicMessage = z.infer<typeof RolloutTopicMessageSchema>;

/** A signed command to one device. */
export const CommandMessageSchema = z.object({
  v: V,
  kind: z.literal('command'),
  command: EnvelopeSchema,
});
export type CommandMessage = z.infer<typeof CommandMessageSchema>;

/** Device-side feature flags, evaluated by the coordinator per device-independent rules. */
export const FlagValueSchema = z.object({
  enabled: z.boolean(),
  /** Percentage of devices (by Unleash-style bucketing on the device id) that see it enabled. */
  rollout: z.number().min(0).max(100).default(100),
  variants: z.array(z.object({ name: z.string().min(1).max(64), weight: z.number().int().min(0) })).default([]),
});
export type FlagValue = z.infer<typeof FlagValueSchema>;

export const FlagsMessageSchema = z.object({
  v: V,
  kind: z.literal('flags'),
  /** Monotonic snapshot version; agents ignore older snapshots. */
  version: z.number().int().nonnegative(),
  flags: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/), FlagValueSchema),
  at: EpochMsSchema,
});
export type FlagsMessage = z.infer<typeof FlagsMessageSchema>;

export const DeviceMessageSchema = z.discriminatedUnion('kind', [
  HelloMessageSchema,
  StatusMessageSchema,
  TelemetryMessageSchema,
  PresenceMessageSchema,
]);
export type DeviceMessage = z.infer<typeof DeviceMessageSchema>;

export const CoordinatorMessageSchema = z.discriminatedUnion('kind', [
  RolloutMessageSchema,
  RolloutCancelMessageSchema,
  CommandMessageSchema,
  FlagsMessageSchema,
]);
export type CoordinatorMessage = z.infer<typeof CoordinatorMessageSchema>;

export { TagSchema };
