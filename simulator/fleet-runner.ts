/**
 * The fleet runner: N real agents in one process, each with its own MQTT connection and credentials,
 * against a coordinator (embedded by default), all on one paced clock. It rolls out each release of a
 * scenario in turn, injects the scenario's faults, follows the waves and gate decisions, and builds
 * the report from the coordinator's records and the devices' ground truth. I/O shell.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import type { Clock } from '@fleet/protocol/clock';
import { parseDuration } from '@fleet/firmware/duration';
import type { Behaviour, Scenario } from './scenario.js';
import { Rng } from './rng.js';
import { composeFleet, fleetSummary, type DeviceIdentity } from './fleet-composition.js';
import { fleetAgentConfig, type FirmwareImage } from './device-host.js';
import { digest, imageBytes } from './firmware-images.js';
import { FaultInjector } from './fault-injector.js';
import { LocalDeviceFleet, type DeviceFleet } from './device-fleet.js';
import { ProcessDeviceFleet } from './process-fleet.js';
import { releaseReport, type DecisionView, type ReleaseReport, type SimulationReport } from './report.js';
import type { CoordinatorHandle } from './coordinator-handle.js';
import { PacedClock } from './paced-clock.js';
import { followDeployment, sleepReal } from './deployment-follower.js';
import { scheduleFleetFaults } from './fleet-faults.js';
import { SimulationError } from './errors.js';
import { definedProps } from '@fleet/firmware/defined-props';
import type { AgentState } from '@fleet/agent';
import type { TracedState } from './device-process-messages.js';

/** Devices each wave's gate needs reporting: fewer, and the coordinator warns that it cannot judge. */
const MIN_DEVICES_REPORTING = 20;

/** Progress events, for the CLI's live output. */
export type SimEvent =
  | { type: 'fleet-starting'; devices: number; offline: number }
  | { type: 'fleet-ready'; connected: number; expected: number; ms: number }
  | { type: 'release-start'; version: string; behaviour: Behaviour; deploymentId: string; warnings: string[] }
  | { type: 'wave'; version: string; wave: number; percent: number; status: string; targeted: number; committed: number; failed: number }
  | { type: 'decision'; version: string; decision: DecisionView }
  | { type: 'release-end'; version: string; phase: string; simulatedMs: number }
  | { type: 'fault'; kind: string; detail?: string }
  | { type: 'note'; text: string };

export interface SimulateOptions {
  scenario: Scenario;
  /** Default: the scenario's fleet size. */
  devices?: number;
  /** Default: the scenario's seed. */
  seed?: string | number;
  /** Simulated seconds per real second. Default: the scenario's (with `realTime`: 1, and nothing else is accepted). */
  timeScale?: number;
  /**
   * The coordinator keeps real time (a running one, reached over the network): the run's clock is
   * real time too. Simulated time there would end soaks and deadlines the coordinator does not share.
   */
  realTime?: boolean;
  /**
   * Pace simulated time by the load (default true). false: a fixed scale whatever the load — for
   * benchmarks that measure wall time; verdicts then depend on how busy the machine is.
   */
  pacing?: boolean;
  /**
   * Devices provisioned by an operator (`fleet devices provision --out`), id → secret: the run uses
   * these ids and credentials as they are (an external broker knows them) and provisions nothing.
   */
  secrets?: ReadonlyMap<string, string>;
  /** A tag every device reports and every deployment of the run targets (default none). */
  targetTag?: string;
  /**
   * Share (0–1] of the devices online at the start that the coordinator must see online before the
   * first release. Default 1.
   */
  minOnlineShare?: number;
  /** Real ms to wait for that share (default 120 s); the run fails with a clear error after. */
  onlineTimeoutMs?: number;
  /** Builds the coordinator for the run (embedded or remote), on the run's clock and data dir. */
  coordinator: (ctx: { clock: Clock; dataDir: string; logger: Logger }) => Promise<CoordinatorHandle>;
  /** Keep data here (default: a fresh temporary directory, removed afterwards). */
  dataDir?: string;
  /** Prefix of device ids (default `sim`). */
  runId?: string;
  /** Devices connecting at once (default 100). */
  connectConcurrency?: number;
  logger?: Logger;
  onEvent?: (event: SimEvent) => void;
  /** Real-time poll interval for deployment progress (default 200 ms). */
  pollMs?: number;
  /** Every persisted state change of every simulated device's agent (benchmark traces), at real time `at` (performance.now()). */
  onDeviceState?: (deviceId: string, state: TracedState, at: number) => void;
  /**
   * Host the devices in this many child processes (device-process.ts) instead of this one (default:
   * the scenario's `fleet.processes`, 0: in-process). The coordinator stays here; every process
   * follows this process's paced clock.
   */
  processes?: number;
  /** Broker URLs the devices connect to: the nodes of one cluster, each device starting at the node its id picks (default: the coordinator's). */
  brokerUrls?: readonly string[];
  /** Told of the device fleet once it exists (benchmarks read its processes' usage). */
  onDeviceFleet?: (fleet: DeviceFleet) => void;
  /** Loopback source addresses for the devices' sockets, one per device process, round-robin (default: the system's choice). */
  localAddresses?: readonly string[];
}

/** The run's time scale: the scenario's, or real time against a coordinator that keeps real time. */
export function runTimeScale(options: Pick<SimulateOptions, 'timeScale' | 'realTime'>, scenario: Scenario): number {
  if (!options.realTime) return options.timeScale ?? scenario.rollout.timeScale;
  if (options.timeScale !== undefined && options.timeScale !== 1) {
    throw new SimulationError(
      'time-scale',
      `--time-scale ${options.timeScale} cannot run against a running coordinator: it keeps real time, so its soaks, deadlines and silence limits would not speed up with the devices; leave --time-scale out (the run is real time)`,
    );
  }
  return 1;
}

/** Runs a scenario to the end and returns the report. */
export async function simulate(options: SimulateOptions): Promise<SimulationReport> {
  const scenario = options.scenario;
  const seed = options.seed ?? scenario.seed;
  const timeScale = runTimeScale(options, scenario);
  const runId = options.runId ?? 'sim';
  const logger = options.logger ?? pino({ level: 'silent' });
  const emit = options.onEvent ?? (() => undefined);
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'fleet-sim-')));
  const paced = options.pacing !== false && !options.realTime;
  const clock = new PacedClock({ scale: timeScale, ...(paced ? {} : { pacing: false as const }) });
  clock.start();
  const rng = new Rng(seed);
  const wallStart = performance.now();
  const simStart = clock.now();
  const faultCounts: Record<string, number> = {};
  if (options.realTime) emit({ type: 'note', text: `the coordinator keeps real time, so this run does too (the scenario's ×${scenario.rollout.timeScale} does not apply)` });

  let coordinator: CoordinatorHandle;
  try {
    coordinator = await options.coordinator({ clock, dataDir: join(dataDir, 'coordinator'), logger });
  } catch (err) {
    clock.stop();
    if (ownDir) await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  const injector = new FaultInjector(clock, rng.fork('fleet-faults'));
  let devicesFleet: DeviceFleet | null = null;
  try {
    const identities = options.secrets ? await knownIdentities(options.secrets, options.devices, coordinator) : undefined;
    const count = identities?.length ?? options.devices ?? scenario.fleet.devices;
    const specs = composeFleet(scenario.fleet, count, seed, runId, identities);
    const models = [...new Set(specs.map((s) => s.hardwareModel))].sort();

    // Firmware: the factory image every device starts with; the releases' images are added (and
    // uploaded) once the fleet is online, so a run whose fleet never comes online changes nothing.
    const base: FirmwareImage = { version: scenario.fleet.baseVersion, ...digest(imageBytes(`${scenario.name}/${String(seed)}/${scenario.fleet.baseVersion}`, 64)) };
    const behaviours = new Map<string, Behaviour>(scenario.releases.map((r) => [r.version, r.behaviour]));

    const hardwareOf = new Map(specs.map((s) => [s.deviceId, s.hardwareModel] as const));
    const secrets = options.secrets ?? (await coordinator.provision(specs.map((s) => s.deviceId), (id) => hardwareOf.get(id)!));
    const trust = await coordinator.trust();
    const intervalMs = parseDuration(scenario.rollout.telemetryInterval);
    const devicesDir = join(dataDir, 'devices');
    await mkdir(devicesDir, { recursive: true });
    const tags = options.targetTag !== undefined ? [options.targetTag] : [];
    const shared = { specs, secrets, trust, devicesDir, baseImage: base, behaviours, sampleNoise: scenario.fleet.sampleNoise, faults: scenario.faults, proxy: needsProxy(scenario) };
    const processes = options.processes ?? scenario.fleet.processes;
    const onState = options.onDeviceState;
    devicesFleet =
      processes > 0
        ? await ProcessDeviceFleet.create({
            ...shared,
            processes,
            clock,
            brokerUrls: options.brokerUrls?.length ? options.brokerUrls : [coordinator.brokerUrl],
            baseVersion: base.version,
            telemetryIntervalMs: intervalMs,
            tags,
            ...definedProps({ localAddresses: options.localAddresses, onState }),
          })
        : new LocalDeviceFleet({
            ...shared,
            clock,
            logger,
            agentConfig: fleetAgentConfig(options.brokerUrls?.length ? options.brokerUrls : coordinator.brokerUrl, base.version, intervalMs, tags),
            ...definedProps({ localAddress: options.localAddresses?.[0], onState: onState && ((id: string, state: AgentState) => onState(id, state, performance.now())) }),
          });
    const devices = devicesFleet;
    options.onDeviceFleet?.(devices);

    // Connect the online part of the fleet, a bounded number at a time.
    const online = specs.filter((s) => s.offline === null);
    emit({ type: 'fleet-starting', devices: specs.length, offline: specs.length - online.length });
    const t0 = performance.now();
    await devices.startOnline(options.connectConcurrency ?? 100);
    await awaitOnline(coordinator, online.map((s) => s.deviceId), options.minOnlineShare ?? 1, options.onlineTimeoutMs ?? 120_000, emit, t0);
    for (const release of scenario.releases) {
      const bytes = imageBytes(`${scenario.name}/${String(seed)}/${release.version}`, release.imageKiB);
      const d = await coordinator.uploadFirmware(release.version, bytes, models);
      await devices.addImage({ version: release.version, ...d });
    }

    await devices.startTelemetry(intervalMs);
    // Let every device report a few times before the first release, so the control cohort has data.
    await clock.sleep(3 * intervalMs);

    await scheduleFleetFaults(scenario, devices, specs.length - online.length, injector, coordinator, clock, emit, faultCounts, rng.fork('drops').int(0, 2 ** 31));

    const reports: ReleaseReport[] = [];
    let fleetVersion = scenario.fleet.baseVersion;
    for (const release of scenario.releases) {
      const startedAt = clock.now();
      const bucketOffset = rng.fork(`offset/${release.version}`).int(0, 1023);
      const { id, warnings } = await coordinator.createDeployment({
        firmwareVersion: release.version,
        hardwareModels: models,
        waves: scenario.rollout.waves.map((percent) => ({
          percent,
          soakMs: parseDuration(scenario.rollout.soak),
          deadlineMs: 2 * 3_600_000,
          minDevicesReporting: MIN_DEVICES_REPORTING,
        })),
        bucketOffset,
        description: `simulation ${scenario.name}: ${release.version} (${release.behaviour.kind})`,
        onMonitorLimit: scenario.rollout.onMonitorLimit,
        rollbackDeadlineMs: parseDuration(scenario.rollout.rollbackDeadline),
        tags,
      });
      emit({ type: 'release-start', version: release.version, behaviour: release.behaviour, deploymentId: id, warnings });
      const final = await followDeployment({
        coordinator,
        id,
        version: release.version,
        fleet: devices,
        clock,
        deadlineMs: parseDuration(scenario.rollout.deadline),
        emit,
        pollMs: options.pollMs ?? 200,
      });
      const endedAt = clock.now();
      emit({ type: 'release-end', version: release.version, phase: final.phase, simulatedMs: endedAt - startedAt });
      reports.push(
        releaseReport(
          {
            release,
            previousVersion: fleetVersion,
            deploymentId: id,
            bucketOffset,
            minDevicesReporting: MIN_DEVICES_REPORTING,
            warnings,
            startedAt,
            endedAt,
            phase: final.phase,
            ...definedProps({ abortReason: final.abortReason }),
            waves: final.waves,
            decisions: await coordinator.decisions(id),
            progress: await coordinator.progress(id),
            ...(final.rollback ? { rollback: final.rollback } : {}),
          },
          await devices.truths(),
        ),
      );
      if (final.phase === 'completed') fleetVersion = release.version;
    }

    const summary = fleetSummary(specs);
    return {
      v: 1,
      kind: 'simulation-report',
      scenario: scenario.name,
      description: scenario.description,
      seed,
      devices: specs.length,
      deviceProcesses: processes > 0 ? Math.min(processes, specs.length) : 0,
      fleet: summary,
      timeScale,
      clock: clock.stats(),
      broker: coordinator.description,
      startedAt: new Date(simStart).toISOString(),
      wallMs: performance.now() - wallStart,
      simulatedMs: clock.now() - simStart,
      faults: mergeCounts(faultCounts, await devices.faultCounts()),
      releases: reports,
      ok: reports.every((r) => r.ok),
    };
  } finally {
    injector.stop();
    await devicesFleet?.stop().catch(() => undefined);
    await coordinator.stop().catch(() => undefined);
    clock.stop();
    if (ownDir) await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function needsProxy(s: Scenario): boolean {
  return s.faults.interruptedDownloadShare > 0 || s.faults.corruptedDownloadShare > 0 || s.fleet.slowLinkShare > 0;
}

function mergeCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const sum = { ...a };
  for (const [k, v] of Object.entries(b)) sum[k] = (sum[k] ?? 0) + v;
  return sum;
}

/** Waits (real time, bounded) until the coordinator sees the required share of the online fleet. */
async function awaitOnline(
  coordinator: CoordinatorHandle,
  online: readonly string[],
  share: number,
  timeoutMs: number,
  emit: (e: SimEvent) => void,
  t0: number,
): Promise<void> {
  const ids = new Set(online);
  const needed = Math.ceil(share * ids.size);
  const end = performance.now() + timeoutMs;
  let seen = 0;
  for (;;) {
    seen = await coordinator.onlineDevices(ids).catch(() => seen);
    if (seen >= needed) break;
    if (performance.now() > end) {
      throw new SimulationError(
        'fleet-not-online',
        `only ${seen} of ${ids.size} simulated devices came online within ${Math.round(timeoutMs / 1000)} s, and the rollout waits for ${needed} (${Math.round(share * 100)}%, --min-online): check the broker URL and the device credentials`,
      );
    }
    await sleepReal(250);
  }
  emit({ type: 'fleet-ready', connected: seen, expected: ids.size, ms: performance.now() - t0 });
}

/** The operator's devices from a secrets file, with the hardware models the coordinator knows for them. */
async function knownIdentities(secrets: ReadonlyMap<string, string>, devices: number | undefined, coordinator: CoordinatorHandle): Promise<DeviceIdentity[]> {
  const ids = [...secrets.keys()].sort();
  if (ids.length === 0) throw new SimulationError('no-devices', 'the secrets file holds no devices; write one with `fleet devices provision <ids…> --out secrets.json`');
  if (devices !== undefined && devices > ids.length) {
    throw new SimulationError('no-devices', `--devices ${devices} asks for more devices than the secrets file holds (${ids.length}); provision more or ask for fewer`);
  }
  const chosen = ids.slice(0, devices ?? ids.length);
  const models = await coordinator.hardwareModels(chosen);
  return chosen.map((deviceId) => {
    const hardwareModel = models.get(deviceId);
    return hardwareModel === undefined ? { deviceId } : { deviceId, hardwareModel };
  });
}
