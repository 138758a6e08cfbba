/**
 * The canary snapshot: what the coordinator records at each wave gate and what every analyzer judges
 * (`fleet canary judge --input snapshot.json` replays one offline). And the verdict every analyzer
 * returns. Pure.
 *
 * The device is the unit of analysis: each entry summarises one device over the gate's window. The
 * control cohort is the eligible fleet not yet updated, observed over the same window.
 *
 * Versions: `v: 1` has one summary per device for the whole window. `v: 2` (what the coordinator
 * writes now) adds time: the window cut into `slots`, and per device a `series` of exposure, events
 * and metric means per slot, so a leak that starts half-way or a storm in the last hour is not
 * averaged away; and each canary's `fromVersion`, so strata can be built by model and from-version.
 * Version 1 snapshots still parse and are judged without the time layer.
 */
import { z } from 'zod';
import { DeploymentIdSchema, DeviceIdSchema, HardwareModelSchema, SemverSchema } from './ids.js';
import { UpdateReasonSchema } from './reasons.js';
import { UpdateStateSchema } from './update-state.js';

export const CONTINUOUS_METRICS = ['cpuPct', 'memUsedMb', 'temperatureC', 'batteryPct', 'powerW', 'bootTimeS'] as const;
export const ContinuousMetricSchema = z.enum(CONTINUOUS_METRICS);
export type ContinuousMetric = z.infer<typeof ContinuousMetricSchema>;

export const EVENT_COUNTERS = ['crashes', 'errors', 'reboots', 'agentRestarts'] as const;
export const EventCounterSchema = z.enum(EVENT_COUNTERS);
export type EventCounter = z.infer<typeof EventCounterSchema>;

/** One device's summary of a continuous metric over the window. */
export const MetricSummarySchema = z.object({
  n: z.number().int().positive(),
  mean: z.number(),
  /** 99th percentile (tail) of the device's samples. */
  p99: z.number(),
  /** Least-squares slope per hour (leaks, drains); absent with fewer than 3 samples. */
  slopePerH: z.number().optional(),
});
export type MetricSummary = z.infer<typeof MetricSummarySchema>;

/** Most slots a snapshot's window is cut into. */
export const MAX_SNAPSHOT_SLOTS = 96;

/** The current snapshot format, and every format still read. */
export const CANARY_SNAPSHOT_VERSION = 2;
export const CANARY_SNAPSHOT_VERSIONS: readonly number[] = [1, CANARY_SNAPSHOT_VERSION];

const SlotValues = z.array(z.number().nonnegative()).max(MAX_SNAPSHOT_SLOTS);
const SlotCounts = z.array(z.number().int().nonnegative()).max(MAX_SNAPSHOT_SLOTS);

/**
 * One device over the snapshot's slots (v2): index i is slot i of `CanarySnapshot.slots`. Counters
 * and metrics the device never reported in the window are left out. A metric's `mean[i]` is 0 where
 * `n[i]` is 0.
 */
export const DeviceSeriesSchema = z.object({
  exposureH: SlotValues,
  events: z.partialRecord(EventCounterSchema, SlotCounts).default({}),
  metrics: z.partialRecord(ContinuousMetricSchema, z.object({ n: SlotCounts, mean: z.array(z.number()).max(MAX_SNAPSHOT_SLOTS) })).default({}),
});
export type DeviceSeries = z.infer<typeof DeviceSeriesSchema>;

/** How a v2 snapshot's window is cut: `count` slots of `slotMs` from `from` (the last may run past `window.to`). */
export const SnapshotSlotsSchema = z.object({
  from: z.number().int().nonnegative(),
  slotMs: z.number().int().positive(),
  count: z.number().int().min(1).max(MAX_SNAPSHOT_SLOTS),
});
export type SnapshotSlots = z.infer<typeof SnapshotSlotsSchema>;

export const CohortSchema = z.enum(['canary', 'control']);
export type Cohort = z.infer<typeof CohortSchema>;

export const DeviceSummarySchema = z.object({
  deviceId: DeviceIdSchema,
  cohort: CohortSchema,
  hardwareModel: HardwareModelSchema,
  firmwareVersion: SemverSchema,
  /** Device-hours observed in the window (on this cohort's firmware). */
  exposureH: z.number().nonnegative(),
  /** Telemetry messages received in the window. */
  samples: z.number().int().nonnegative(),
  /** Events counted in the window (differences of the cumulative counters). */
  events: z.object({
    crashes: z.number().int().nonnegative(),
    errors: z.number().int().nonnegative(),
    reboots: z.number().int().nonnegative(),
    agentRestarts: z.number().int().nonnegative(),
  }),
  metrics: z.partialRecord(ContinuousMetricSchema, MetricSummarySchema).default({}),
  /** Canary devices: where the update stands for this deployment. */
  update: z.object({ state: UpdateStateSchema, reason: UpdateReasonSchema.optional() }).optional(),
  /** Stopped reporting during the window (for canaries: after installing). */
  silent: z.boolean().default(false),
  /** Normalised error signatures seen in the window (numbers and hex stripped). */
  errorSignatures: z.array(z.string().max(256)).max(50).default([]),
  /** A bounded sample of raw error lines: untrusted device text. */
  logSample: z.array(z.string().max(512)).max(20).default([]),
  /** v2, canary devices: the version it updated from (control devices run theirs: `firmwareVersion`). */
  fromVersion: SemverSchema.optional(),
  /** v2: the device's window slot by slot. */
  series: DeviceSeriesSchema.optional(),
});
export type DeviceSummary = z.infer<typeof DeviceSummarySchema>;

export const CanarySnapshotSchema = z.object({
  /** 1: summaries only; 2: with slots and series (see the header). */
  v: z.union([z.literal(1), z.literal(CANARY_SNAPSHOT_VERSION)]),
  kind: z.literal('canary-snapshot'),
  deploymentId: DeploymentIdSchema,
  /** 0-based index of the wave whose gate this is. */
  wave: z.number().int().nonnegative(),
  fromVersions: z.array(SemverSchema),
  toVersion: SemverSchema,
  window: z.object({ from: z.number().int().nonnegative(), to: z.number().int().nonnegative() }),
  takenAt: z.number().int().nonnegative(),
  /** v2: the slots every device's series is cut into. */
  slots: SnapshotSlotsSchema.optional(),
  devices: z.array(DeviceSummarySchema),
}).superRefine((s, ctx) => {
  const count = s.slots?.count;
  s.devices.forEach((d, i) => {
    if (!d.series) return;
    if (s.v < 2 || count === undefined) {
      ctx.addIssue({ code: 'custom', path: ['devices', i, 'series'], message: 'a device series needs a version 2 snapshot with slots' });
      return;
    }
    const lengths = [d.series.exposureH.length, ...Object.values(d.series.events).map((a) => a.length), ...Object.values(d.series.metrics).flatMap((m) => [m.n.length, m.mean.length])];
    if (lengths.some((l) => l !== count)) ctx.addIssue({ code: 'custom', path: ['devices', i, 'series'], message: `every series needs ${count} slots` });
  });
});
export type CanarySnapshot = z.infer<typeof CanarySnapshotSchema>;
export type CanarySnapshotInput = z.input<typeof CanarySnapshotSchema>;

export const RecommendationSchema = z.enum(['Proceed', 'Monitor', 'Abort']);
export type Recommendation = z.infer<typeof RecommendationSchema>;
export const RiskLevelSchema = z.enum(['Low', 'Medium', 'High', 'Critical']);
export type RiskLevel = z.infer<typeof RiskLevelSchema>;

/** Order of caution: a combination may only move a verdict to the right. */
export const RECOMMENDATION_ORDER: readonly Recommendation[] = ['Proceed', 'Monitor', 'Abort'];

export const EvidenceSchema = z.object({
  /** What was tested, e.g. `crashes`, `batteryPct.mean`, `trial-failures`. */
  check: z.string(),
  result: z.enum(['pass', 'high', 'low', 'critical', 'nodata', 'flag']),
  /** Numbers behind the result (rates, ratios, p-values, counts). */
  values: z.record(z.string(), z.union([z.number(), z.string(), z.boolean(), z.null()])).default({}),
  note: z.string().optional(),
});
export type Evidence = z.infer<typeof EvidenceSchema>;

export const VerdictSchema = z.object({
  recommendation: RecommendationSchema,
  riskLevel: RiskLevelSchema,
  /** 0..100, Kayenta-style; absent where the analyzer does not score. */
  score: z.number().min(0).max(100).optional(),
  /** Short human statements of what was found, most important first. */
  issues: z.array(z.string()),
  /** The rule that produced the recommendation, e.g. `hard-limit:trial-failures`. */
  rule: z.string(),
  evidence: z.array(EvidenceSchema).default([]),
});
export type Verdict = z.infer<typeof VerdictSchema>;
