/**
 * What the operator console reads that no other client does: the fleet's counts, one device's telemetry
 * over time, a gate decision's canary and control side by side, and the names of the live events on
 * `GET /v1/events`. The coordinator builds these answers and its tests parse them with these schemas;
 * the browser imports the types only (no zod in the bundle). Pure.
 */
import { z } from 'zod';
import { ContinuousMetricSchema, EventCounterSchema } from './canary.js';
import { DeploymentIdSchema, DeviceIdSchema } from './ids.js';

const Count = z.number().int().nonnegative();
/** A value per slot; null where the slot has no data (no samples, no exposure). */
const Column = z.array(z.number().nullable());

/** `GET /v1/fleet/summary`: the fleet by hardware model, version and update state. */
export const FleetSummarySchema = z.object({
  /** Coordinator clock time of the answer. */
  at: z.number().int(),
  devices: z.object({
    total: Count,
    online: Count,
    offline: Count,
    /** Connected without ever being provisioned: shown, never in a wave. */
    ghosts: Count,
    /** Devices with at least one recorded anomaly. */
    withAnomalies: Count,
  }),
  /** One entry per hardware model (null: a device that never said which), largest first. */
  models: z.array(
    z.object({
      hardwareModel: z.string().nullable(),
      total: Count,
      online: Count,
      versions: z.array(z.object({ version: z.string().nullable(), count: Count })),
    }),
  ),
  /** Devices per firmware version over every model, newest version first. */
  versions: z.array(z.object({ version: z.string().nullable(), count: Count })),
  /** Devices per state of their latest update (`none`: never updated). */
  updateStates: z.record(z.string(), Count),
  /** Devices per anomaly kind. */
  anomalies: z.record(z.string(), Count),
});
export type FleetSummary = z.infer<typeof FleetSummarySchema>;

/** Most slots a telemetry or cohort series is cut into. */
export const MAX_SERIES_SLOTS = 240;

/** `GET /v1/devices/:id/telemetry`: a device's rollups over time, in columns (one entry per slot). */
export const DeviceTelemetrySchema = z.object({
  deviceId: DeviceIdSchema,
  /** The window, in coordinator clock ms, cut into `t.length` slots of `slotMs` from `from`. */
  from: z.number().int(),
  to: z.number().int(),
  slotMs: z.number().int().positive(),
  /** Each slot's start. */
  t: z.array(z.number().int()).max(MAX_SERIES_SLOTS),
  samples: z.array(Count),
  /** Device-hours observed in the slot. */
  exposureH: z.array(z.number().nonnegative()),
  /** Events counted in the slot (differences of the device's cumulative counters). */
  events: z.record(EventCounterSchema, z.array(Count)),
  /** Per metric: the slot's mean and maximum of the samples. */
  metrics: z.partialRecord(ContinuousMetricSchema, z.object({ mean: Column, max: Column })),
  /** Which firmware ran when: consecutive slots on one version as one segment. */
  versions: z.array(z.object({ version: z.string(), from: z.number().int(), to: z.number().int() })),
  /** The latest error log lines the device sent (untrusted device text), or null. */
  errorLog: z.object({ at: z.number().int(), firmwareVersion: z.string(), lines: z.array(z.string()) }).nullable(),
});
export type DeviceTelemetry = z.infer<typeof DeviceTelemetrySchema>;

const CohortTotals = z.object({
  devices: Count,
  exposureH: z.number().nonnegative(),
  events: z.record(EventCounterSchema, Count),
  /** Mean over the cohort's devices of each device's window mean. */
  metrics: z.partialRecord(ContinuousMetricSchema, z.number()),
});

/**
 * `GET /v1/deployments/:id/decisions/:decisionId/cohorts`: what the gate compared, canary against
 * control, over the window it judged — from the stored snapshot. Per slot where the snapshot has slots
 * (format 2); whole-window totals always.
 */
export const CohortSeriesSchema = z.object({
  deploymentId: DeploymentIdSchema,
  decisionId: z.string(),
  wave: z.number().int().nonnegative(),
  toVersion: z.string(),
  fromVersions: z.array(z.string()),
  window: z.object({ from: z.number().int(), to: z.number().int() }),
  /** Each slot's start; empty for a format 1 snapshot (no time layer). */
  t: z.array(z.number().int()).max(MAX_SERIES_SLOTS),
  slotMs: z.number().int().positive().nullable(),
  totals: z.object({ canary: CohortTotals, control: CohortTotals }),
  /** Events per device-hour in each slot. */
  events: z.record(EventCounterSchema, z.object({ canary: Column, control: Column })),
  /** Sample-weighted mean of the metric in each slot. */
  metrics: z.partialRecord(ContinuousMetricSchema, z.object({ canary: Column, control: Column })),
});
export type CohortSeries = z.infer<typeof CohortSeriesSchema>;

/**
 * Events on `GET /v1/events` (Server-Sent Events; the data is JSON): `deployment` a deployment's
 * view after any change, `decision` a new gate decision record, `device` a changed device record (at
 * most one per device per second), `audit` a new audit entry, `clock` the coordinator's clock time
 * (at connect and every few seconds; it may run faster than real time in a simulation).
 */
export const CONSOLE_EVENT_TYPES = ['deployment', 'decision', 'device', 'audit', 'clock'] as const;
export const ConsoleEventTypeSchema = z.enum(CONSOLE_EVENT_TYPES);
export type ConsoleEventType = z.infer<typeof ConsoleEventTypeSchema>;

export const ClockEventSchema = z.object({ now: z.number().int() });
export type ClockEvent = z.infer<typeof ClockEventSchema>;
