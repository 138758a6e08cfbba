/**
 * What crosses the IPC channel between the simulator and its device processes (process-fleet.ts,
 * device-process.ts): zod schemas, parsed on arrival at both ends. Pure.
 */
import { z } from 'zod';
import type { AgentState } from '@fleet/agent';
import { BehaviourSchema, FaultSpecSchema } from './scenario.js';

export const TimeSyncSchema = z.object({
  sim: z.number(),
  epochMs: z.number(),
  rate: z.number().positive(),
  leadMs: z.number().nonnegative(),
});

const BaselineSchema = z.object({
  cpuPct: z.number(),
  memUsedMb: z.number(),
  memTotalMb: z.number(),
  temperatureC: z.number(),
  powerW: z.number(),
  battery: z.boolean(),
  bootTimeS: z.number(),
  crashesPerH: z.number(),
  errorsPerH: z.number(),
});

/** fleet-composition.ts's SimDeviceSpec. */
export const SimDeviceSpecSchema = z.object({
  index: z.number().int().nonnegative(),
  deviceId: z.string(),
  hardwareModel: z.string(),
  baseline: BaselineSchema,
  offline: z.object({ returnAtMs: z.number().nullable() }).nullable(),
  slowLinkKiBps: z.number().nullable(),
  seed: z.string(),
});

export const FirmwareImageSchema = z.object({ version: z.string(), sha256: z.string(), size: z.number().int().nonnegative() });

/** The slice of the fleet a device process hosts, and everything its devices need. */
export const DeviceProcessInitSchema = z.object({
  type: z.literal('init'),
  specs: z.array(SimDeviceSpecSchema),
  secrets: z.record(z.string(), z.string()),
  /** The trust store's public keys (PEM) and threshold. */
  trust: z.object({ keys: z.array(z.string()), threshold: z.number().int().positive() }),
  /** Every URL is a node of one cluster: each device starts at the node its id picks. */
  agent: z.object({ brokerUrls: z.array(z.string()).min(1), baseVersion: z.string(), telemetryIntervalMs: z.number().positive(), tags: z.array(z.string()) }),
  devicesDir: z.string(),
  baseImage: FirmwareImageSchema,
  behaviours: z.array(z.tuple([z.string(), BehaviourSchema])),
  sampleNoise: z.number(),
  faults: FaultSpecSchema,
  proxy: z.boolean(),
  localAddress: z.string().optional(),
  traceStates: z.boolean(),
  time: TimeSyncSchema,
});
export type DeviceProcessInit = z.infer<typeof DeviceProcessInitSchema>;

/** A call on the process's LocalDeviceFleet (device-fleet.ts), answered by a reply with the same id. */
export const DeviceProcessCallSchema = z.discriminatedUnion('method', [
  z.object({ method: z.literal('startOnline'), concurrency: z.number().int().positive() }),
  z.object({ method: z.literal('startReturning'), concurrency: z.number().int().positive() }),
  z.object({ method: z.literal('addImage'), image: FirmwareImageSchema }),
  z.object({ method: z.literal('startTelemetry'), intervalMs: z.number().positive() }),
  z.object({ method: z.literal('startDrops'), perDeviceH: z.number().nonnegative(), seed: z.string() }),
  z.object({ method: z.literal('dropAll') }),
  z.object({ method: z.literal('everyoneOn'), version: z.string() }),
  z.object({ method: z.literal('truths') }),
  z.object({ method: z.literal('faultCounts') }),
  z.object({ method: z.literal('usage') }),
  z.object({ method: z.literal('stop') }),
]);
export type DeviceProcessCall = z.infer<typeof DeviceProcessCallSchema>;

export const ParentMessageSchema = z.discriminatedUnion('type', [
  DeviceProcessInitSchema,
  z.object({ type: z.literal('sync'), time: TimeSyncSchema }),
  z.object({ type: z.literal('call'), id: z.number().int(), call: DeviceProcessCallSchema }),
]);
export type ParentMessage = z.infer<typeof ParentMessageSchema>;

/** A device process's resources: CPU (user + system, ms), RSS (bytes), connected devices, telemetry messages sent. */
export const ProcessUsageSchema = z.object({ cpuMs: z.number(), rss: z.number(), connected: z.number().int(), telemetrySent: z.number().int() });
export type ProcessUsage = z.infer<typeof ProcessUsageSchema>;

type Job = NonNullable<AgentState['job']>;

/**
 * What a benchmark trace reads of an agent's persisted state (rollout-trace.ts): its job's stage and
 * counters. A device process sends this, not the whole state, and only when it changed.
 */
export interface TracedState {
  job: Pick<Job, 'kind' | 'deploymentId' | 'wave' | 'stage' | 'result' | 'busyRetries' | 'attempts'> | null;
}

export function tracedState(state: TracedState): TracedState {
  const j = state.job;
  if (!j) return { job: null };
  const job: TracedState['job'] = { kind: j.kind, deploymentId: j.deploymentId, stage: j.stage, attempts: j.attempts };
  if (j.wave !== undefined) job.wave = j.wave;
  if (j.result !== undefined) job.result = j.result;
  if (j.busyRetries !== undefined) job.busyRetries = j.busyRetries;
  return { job };
}

export const ChildMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('reply'), id: z.number().int(), ok: z.boolean(), value: z.unknown().optional(), error: z.string().optional() }),
  z.object({ type: z.literal('load'), lagMs: z.number(), utilization: z.number(), oldestWorkMs: z.number() }),
  /** What a trace reads of an agent's persisted state (TracedState), at wall-clock `epochMs`. */
  z.object({ type: z.literal('state'), deviceId: z.string(), state: z.unknown(), epochMs: z.number() }),
]);
export type ChildMessage = z.infer<typeof ChildMessageSchema>;
