/**
 * Scenario files: what fleet to simulate, which releases to roll out and how each behaves, and which
 * faults to inject. Validated with zod at the edge; the library lives in simulator/scenarios/*.json and
 * `fleet simulate --scenario` takes a library name or a path. Pure apart from `loadScenario`.
 */
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { FleetError, errorMessage } from '@fleet/protocol/errors';
import { HardwareModelSchema, SemverSchema } from '@fleet/protocol/ids';
import { formatIssues } from '@fleet/protocol/parse';
import { parseDuration } from '@fleet/firmware/duration';

const DurationSchema = z.string().refine((s) => {
  try {
    parseDuration(s);
    return true;
  } catch {
    return false;
  }
}, { message: 'must be a duration such as 30s, 10m, 2h' });
const ShareSchema = z.number().min(0).max(1);

/** How a firmware version behaves on a device, relative to the device's own baseline. */
export const BehaviourSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('healthy') }),
  /** Power draw up by `percent`, so the battery drains that much faster. */
  z.object({ kind: z.literal('battery-drain'), percent: z.number().positive().default(30) }),
  /** CPU load multiplied by `factor`. */
  z.object({ kind: z.literal('cpu-regression'), factor: z.number().positive().default(1.6) }),
  /** Memory up by `extraMb` at once and growing by `leakMbPerH`. */
  z.object({
    kind: z.literal('memory-regression'),
    extraMb: z.number().nonnegative().default(120),
    leakMbPerH: z.number().nonnegative().default(0),
  }),
  /** Crashes per device-hour multiplied by `factor`. */
  z.object({ kind: z.literal('crash-rate'), factor: z.number().positive().default(5) }),
  /** The trial boot never becomes healthy on this share of devices (the bootloader falls back). */
  z.object({ kind: z.literal('boot-loop'), share: ShareSchema.default(1) }),
  /** This share of devices never comes back after rebooting into the image. */
  z.object({ kind: z.literal('brick'), share: ShareSchema.default(1) }),
  /** A small relative shift of one metric, visible only across many devices. */
  z.object({
    kind: z.literal('subtle'),
    metric: z.enum(['cpuPct', 'memUsedMb', 'powerW', 'temperatureC']).default('cpuPct'),
    shift: z.number().default(0.15),
  }),
  /** Per-sample noise multiplied by `factor`, same means: a good release that looks busy. */
  z.object({ kind: z.literal('noisy'), factor: z.number().min(1).default(3) }),
]);
export type Behaviour = z.infer<typeof BehaviourSchema>;

/** Baseline of a hardware model; each device draws its own around it. */
export const HardwareProfileSchema = z.object({
  model: HardwareModelSchema,
  /** Share of the fleet (normalised over all models). */
  share: z.number().positive(),
  cpuPct: z.number().min(0).max(100).default(20),
  memUsedMb: z.number().nonnegative().default(300),
  memTotalMb: z.number().positive().default(1024),
  temperatureC: z.number().default(48),
  powerW: z.number().nonnegative().default(3),
  /** Devices on battery report batteryPct; mains devices leave it out. */
  battery: z.boolean().default(false),
  bootTimeS: z.number().nonnegative().default(22),
  /** Rare events: crashes, and error log lines (common on real devices; they give the rate tests data). */
  crashesPerH: z.number().nonnegative().default(0.01),
  errorsPerH: z.number().nonnegative().default(2),
});
export type HardwareProfile = z.infer<typeof HardwareProfileSchema>;

export const FleetSpecSchema = z.object({
  /** Default device count; `--devices` overrides it. */
  devices: z.number().int().positive().default(1000),
  /** Firmware every device runs at the start. */
  baseVersion: SemverSchema.default('1.0.0'),
  hardware: z.array(HardwareProfileSchema).min(1).default([
    { model: 'rpi4', share: 0.7, cpuPct: 20, memUsedMb: 310, memTotalMb: 4096, temperatureC: 52, powerW: 3.4, battery: false, bootTimeS: 24, crashesPerH: 0.01, errorsPerH: 2 },
    { model: 'rpi-zero2', share: 0.3, cpuPct: 28, memUsedMb: 180, memTotalMb: 512, temperatureC: 45, powerW: 1.2, battery: true, bootTimeS: 31, crashesPerH: 0.01, errorsPerH: 2 },
  ]),
  /** Device-to-device spread of baselines (relative sd) and per-sample noise (relative sd). */
  deviceSpread: z.number().min(0).max(1).default(0.1),
  sampleNoise: z.number().min(0).max(1).default(0.04),
  /** Share of devices offline from the start; they return after `offlineReturnAfter` if set. */
  offlineShare: ShareSchema.default(0),
  offlineReturnAfter: DurationSchema.optional(),
  /** Share of devices on slow links: their downloads are throttled to `slowLinkKiBps`. */
  slowLinkShare: ShareSchema.default(0),
  slowLinkKiBps: z.number().positive().default(64),
  /**
   * Child processes hosting the devices (0: every device in the simulator's own process); `--processes`
   * overrides it. Past ~15,000 devices a process runs out of sockets (the open-file limit).
   */
  processes: z.number().int().min(0).max(64).default(0),
});
export type FleetSpec = z.infer<typeof FleetSpecSchema>;

export const ReleaseSchema = z.object({
  version: SemverSchema,
  behaviour: BehaviourSchema.default({ kind: 'healthy' }),
  /** What a correct system does with it: reach every online device, or abort early. */
  expect: z.enum(['complete', 'abort']),
  /** Image size; small by default so that the simulation measures the system, not the disk. */
  imageKiB: z.number().int().positive().max(64 * 1024).default(64),
});
export type Release = z.infer<typeof ReleaseSchema>;

export const RolloutSpecSchema = z.object({
  /** Cumulative wave percentages. */
  waves: z.array(z.number().positive().max(100)).min(1).default([1, 5, 25, 100]),
  soak: DurationSchema.default('30m'),
  /** Device telemetry interval in simulated time. */
  telemetryInterval: DurationSchema.default('2m'),
  /** Default time scale (simulated seconds per real second); `--time-scale` overrides it. */
  timeScale: z.number().positive().default(300),
  /** Give up on a release after this much simulated time. */
  deadline: DurationSchema.default('12h'),
  /**
   * What the gate does when it keeps saying Monitor: a simulation has no operator to ask, so by
   * default it aborts (and rolls back) rather than pausing for one.
   */
  onMonitorLimit: z.enum(['abort', 'pause']).default('abort'),
  /** Exposed devices not back by then are marked unreachable (a bricked device never comes back). */
  rollbackDeadline: DurationSchema.default('2h'),
});

export const FaultSpecSchema = z.object({
  /** MQTT connection drops per device-hour (the agent reconnects by itself). */
  dropsPerDeviceH: z.number().nonnegative().default(0),
  /** Share of updating devices that lose power once, at a random one of `powerLossStages`. */
  powerLossShare: ShareSchema.default(0),
  /**
   * Update stages where power may be lost. A power loss during the trial makes the bootloader fall
   * back, which the device reports as a failed trial — and any failed trial aborts the wave.
   */
  powerLossStages: z
    .array(z.enum(['downloading', 'verifying', 'installing', 'rebooting', 'trial', 'committing']))
    .min(1)
    .default(['downloading', 'verifying', 'installing', 'rebooting', 'trial', 'committing']),
  /** Share of downloads cut off part-way (the agent resumes them). */
  interruptedDownloadShare: ShareSchema.default(0),
  /** Share of downloads that arrive corrupted once (the agent must refuse them before any slot write). */
  corruptedDownloadShare: ShareSchema.default(0),
  /** Restart the broker this long after the first release starts. */
  brokerRestartAfter: DurationSchema.optional(),
  /** Restart the whole coordinator (same data directory) this long after the first release starts. */
  coordinatorRestartAfter: DurationSchema.optional(),
});
export type FaultSpec = z.infer<typeof FaultSpecSchema>;

export const ScenarioSchema = z.object({
  v: z.literal(1).default(1),
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/),
  description: z.string().max(500),
  seed: z.union([z.string(), z.number()]).default(1),
  fleet: FleetSpecSchema.default(FleetSpecSchema.parse({})),
  releases: z.array(ReleaseSchema).min(1),
  rollout: RolloutSpecSchema.default(RolloutSpecSchema.parse({})),
  faults: FaultSpecSchema.default(FaultSpecSchema.parse({})),
});
export type Scenario = z.infer<typeof ScenarioSchema>;

export class ScenarioError extends FleetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('scenario', message, options);
  }
}

/** The bundled scenario library: simulator/scenarios, beside the sources and beside dist/. */
export function scenarioDirs(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, 'scenarios'), join(here, '..', 'scenarios')];
}

/** Parses a scenario already decoded from JSON; throws ScenarioError naming every bad field. */
export function parseScenario(value: unknown, what = 'scenario'): Scenario {
  const result = ScenarioSchema.safeParse(value);
  if (!result.success) throw new ScenarioError(`${what} is invalid: ${formatIssues(result.error).join('; ')}`);
  return result.data;
}

/** Names of the bundled scenarios. */
export async function listScenarios(): Promise<string[]> {
  for (const dir of scenarioDirs()) {
    try {
      const names = await readdir(dir);
      return names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5)).sort();
    } catch {
      // try the next location
    }
  }
  return [];
}

/** Loads a bundled scenario by name, or a scenario file by path (anything with a `/` or `.json`). */
export async function loadScenario(nameOrPath: string): Promise<Scenario> {
  const isPath = nameOrPath.includes('/') || nameOrPath.endsWith('.json');
  const candidates = isPath ? [nameOrPath] : scenarioDirs().map((d) => join(d, `${nameOrPath}.json`));
  for (const file of candidates) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new ScenarioError(`${file} is not JSON: ${errorMessage(err)}`, { cause: err });
    }
    return parseScenario(value, file);
  }
  const known = await listScenarios();
  throw new ScenarioError(
    isPath
      ? `cannot read scenario file ${nameOrPath}`
      : `no scenario named ${JSON.stringify(nameOrPath)}; bundled ones: ${known.join(', ')} (or pass a path to a .json file)`,
  );
}
