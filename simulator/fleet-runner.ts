/**
 * The fleet runner: N real agents in one process, each with its own MQTT connection and credentials,
 * against a coordinator (embedded by default), all on one accelerated clock. It rolls out each
 * release of a scenario in turn, injects the scenario's faults, follows the waves and gate decisions,
 * and builds the report from the coordinator's records and the devices' ground truth. I/O shell.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { scaledClock, type Clock } from '../protocol/clock.js';
import { parseDuration } from '../firmware/duration.js';
import type { Behaviour, Scenario } from './scenario.js';
import { Rng } from './rng.js';
import { composeFleet, fleetSummary } from './fleet-composition.js';
import { DeviceHost, fleetAgentConfig, type FirmwareImage } from './device-host.js';
import { DownloadFaultProxy } from './download-faults.js';
import { digest, imageBytes } from './firmware-images.js';
import { TelemetryPacer } from './telemetry-pacer.js';
import { FaultInjector } from './fault-injector.js';
import { releaseReport, type DecisionView, type ReleaseReport, type SimulationReport } from './report.js';
import type { CoordinatorHandle, DeploymentView } from './coordinator-handle.js';
import { boundedEach } from './concurrency.js';
import { definedProps } from '../firmware/defined-props.js';

/** Progress events, for the CLI's live output. */
export type SimEvent =
  | { type: 'fleet-starting'; devices: number; offline: number }
  | { type: 'fleet-ready'; connected: number; ms: number }
  | { type: 'release-start'; version: string; behaviour: Behaviour; deploymentId: string; warnings: string[] }
  | { type: 'wave'; version: string; wave: number; percent: number; status: string; targeted: number; committed: number; failed: number }
  | { type: 'decision'; version: string; decision: DecisionView }
  | { type: 'release-end'; version: string; phase: string; simulatedMs: number }
  | { type: 'fault'; kind: string; detail?: string };

export interface SimulateOptions {
  scenario: Scenario;
  /** Default: the scenario's fleet size. */
  devices?: number;
  /** Default: the scenario's seed. */
  seed?: string | number;
  /** Simulated seconds per real second. Default: the scenario's. */
  timeScale?: number;
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
}

const FINAL = new Set(['aborted', 'rolled-back']);
const sleepReal = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs a scenario to the end and returns the report. */
export async function simulate(options: SimulateOptions): Promise<SimulationReport> {
  const scenario = options.scenario;
  const count = options.devices ?? scenario.fleet.devices;
  const seed = options.seed ?? scenario.seed;
  const timeScale = options.timeScale ?? scenario.rollout.timeScale;
  const runId = options.runId ?? 'sim';
  const logger = options.logger ?? pino({ level: 'silent' });
  const emit = options.onEvent ?? (() => undefined);
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'fleet-sim-')));
  const clock = scaledClock(timeScale);
  const rng = new Rng(seed);
  const wallStart = performance.now();
  const simStart = clock.now();
  const faultCounts: Record<string, number> = {};

  const coordinator = await options.coordinator({ clock, dataDir: join(dataDir, 'coordinator'), logger });
  const proxy = needsProxy(scenario) ? new DownloadFaultProxy(clock) : null;
  const injector = new FaultInjector(clock, rng.fork('fleet-faults'));
  let pacer: TelemetryPacer | null = null;
  const hosts: DeviceHost[] = [];
  try {
    await proxy?.start();
    const specs = composeFleet(scenario.fleet, count, seed, runId);
    const models = [...new Set(specs.map((s) => s.hardwareModel))].sort();

    // Firmware: the factory image every device starts with, and one image per release.
    const images = new Map<string, FirmwareImage>();
    const base: FirmwareImage = { version: scenario.fleet.baseVersion, ...digest(imageBytes(`${scenario.name}/${String(seed)}/${scenario.fleet.baseVersion}`, 64)) };
    images.set(base.sha256, base);
    const behaviours = new Map<string, Behaviour>();
    for (const release of scenario.releases) {
      const bytes = imageBytes(`${scenario.name}/${String(seed)}/${release.version}`, release.imageKiB);
      const d = await coordinator.uploadFirmware(release.version, bytes, models);
      images.set(d.sha256, { version: release.version, ...d });
      behaviours.set(release.version, release.behaviour);
    }

    const hardwareOf = new Map(specs.map((s) => [s.deviceId, s.hardwareModel] as const));
    const secrets = await coordinator.provision(specs.map((s) => s.deviceId), (id) => hardwareOf.get(id)!);
    const trust = await coordinator.trust();
    const intervalMs = parseDuration(scenario.rollout.telemetryInterval);
    const devicesDir = join(dataDir, 'devices');
    await mkdir(devicesDir, { recursive: true });
    const agentConfig = fleetAgentConfig(coordinator.brokerUrl, base.version, intervalMs);
    for (const spec of specs) {
      hosts.push(new DeviceHost({
        spec,
        clock,
        logger,
        agentConfig,
        secret: secrets.get(spec.deviceId) ?? null,
        trust,
        dataDir: join(devicesDir, spec.deviceId),
        baseImage: base,
        images,
        behaviours,
        sampleNoise: scenario.fleet.sampleNoise,
        faults: scenario.faults,
        proxy,
        faultCounts,
      }));
    }

    // Connect the online part of the fleet, a bounded number at a time.
    const online = hosts.filter((h) => h.truth.offlineAtStart === false);
    emit({ type: 'fleet-starting', devices: hosts.length, offline: hosts.length - online.length });
    const t0 = performance.now();
    await boundedEach(online.length, options.connectConcurrency ?? 100, async (i) => {
      await online[i]!.start();
    });
    await waitFor(async () => (await coordinator.onlineDevices()) >= online.length, 60_000);
    emit({ type: 'fleet-ready', connected: await coordinator.onlineDevices(), ms: performance.now() - t0 });

    pacer = new TelemetryPacer(hosts, clock, intervalMs);
    pacer.start();
    // Let every device report a few times before the first release, so the control cohort has data.
    await clock.sleep(3 * intervalMs);

    scheduleFleetFaults(scenario, hosts, injector, coordinator, emit, faultCounts);

    const reports: ReleaseReport[] = [];
    let fleetVersion = scenario.fleet.baseVersion;
    for (const release of scenario.releases) {
      const startedAt = clock.now();
      const { id, warnings } = await coordinator.createDeployment({
        firmwareVersion: release.version,
        hardwareModels: models,
        waves: scenario.rollout.waves.map((percent) => ({
          percent,
          soakMs: parseDuration(scenario.rollout.soak),
          deadlineMs: 2 * 3_600_000,
          minDevicesReporting: 20,
        })),
        bucketOffset: rng.fork(`offset/${release.version}`).int(0, 1023),
        description: `simulation ${scenario.name}: ${release.version} (${release.behaviour.kind})`,
        onMonitorLimit: scenario.rollout.onMonitorLimit,
        rollbackDeadlineMs: parseDuration(scenario.rollout.rollbackDeadline),
      });
      emit({ type: 'release-start', version: release.version, behaviour: release.behaviour, deploymentId: id, warnings });
      const final = await followDeployment(coordinator, id, release.version, hosts, clock, parseDuration(scenario.rollout.deadline), emit, options.pollMs ?? 200);
      const endedAt = clock.now();
      emit({ type: 'release-end', version: release.version, phase: final.phase, simulatedMs: endedAt - startedAt });
      reports.push(
        releaseReport(
          {
            release,
            previousVersion: fleetVersion,
            deploymentId: id,
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
          hosts.map((h) => ({ ...h.truth, onlineAtEnd: h.alive })),
        ),
      );
      if (final.phase === 'completed') fleetVersion = release.version;
    }

    const fleet = fleetSummary(specs);
    return {
      v: 1,
      kind: 'simulation-report',
      scenario: scenario.name,
      description: scenario.description,
      seed,
      devices: hosts.length,
      fleet,
      timeScale,
      broker: coordinator.description,
      startedAt: new Date(simStart).toISOString(),
      wallMs: performance.now() - wallStart,
      simulatedMs: clock.now() - simStart,
      faults: { ...faultCounts, ...(proxy ? { 'downloads-proxied': proxy.counts.proxied } : {}) },
      releases: reports,
      ok: reports.every((r) => r.ok),
    };
  } finally {
    injector.stop();
    pacer?.stop();
    await boundedEach(hosts.length, 500, (i) => hosts[i]!.stop({ powerOff: true }).catch(() => undefined));
    await coordinator.stop().catch(() => undefined);
    await proxy?.stop();
    if (ownDir) await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function needsProxy(s: Scenario): boolean {
  return s.faults.interruptedDownloadShare > 0 || s.faults.corruptedDownloadShare > 0 || s.fleet.slowLinkShare > 0;
}

async function waitFor(cond: () => Promise<boolean>, realMs: number): Promise<boolean> {
  const end = performance.now() + realMs;
  while (performance.now() < end) {
    if (await cond()) return true;
    await sleepReal(100);
  }
  return false;
}

function scheduleFleetFaults(
  scenario: Scenario,
  hosts: readonly DeviceHost[],
  injector: FaultInjector,
  coordinator: CoordinatorHandle,
  emit: (e: SimEvent) => void,
  counts: Record<string, number>,
): void {
  const f = scenario.faults;
  injector.drops(hosts, f.dropsPerDeviceH);
  const bump = (k: string): void => {
    counts[k] = (counts[k] ?? 0) + 1;
  };
  if (f.brokerRestartAfter !== undefined) {
    injector.at(parseDuration(f.brokerRestartAfter), async () => {
      emit({ type: 'fault', kind: 'broker-restart' });
      bump('broker-restarts');
      try {
        await coordinator.restartBroker();
      } catch {
        // The embedded broker cannot restart alone: every device connection drops at once instead,
        // which is what devices see of a broker restart (the reconnect storm), without the lost state.
        for (const h of hosts) h.dropConnection();
      }
    });
  }
  if (f.coordinatorRestartAfter !== undefined) {
    injector.at(parseDuration(f.coordinatorRestartAfter), async () => {
      emit({ type: 'fault', kind: 'coordinator-restart' });
      bump('coordinator-restarts');
      await coordinator.restartCoordinator();
    });
  }
  const returning = hosts.filter((h) => h.truth.offlineAtStart);
  const returnAt = scenario.fleet.offlineReturnAfter !== undefined ? parseDuration(scenario.fleet.offlineReturnAfter) : null;
  if (returning.length && returnAt !== null) {
    injector.at(returnAt, async () => {
      emit({ type: 'fault', kind: 'offline-devices-return', detail: `${returning.length} devices` });
      counts['offline-returned'] = returning.length;
      await boundedEach(returning.length, 50, (i) => returning[i]!.start());
    });
  }
}

/** Polls the deployment until it is final (or complete with every live device on the version). */
async function followDeployment(
  coordinator: CoordinatorHandle,
  id: string,
  version: string,
  hosts: readonly DeviceHost[],
  clock: Clock,
  deadlineMs: number,
  emit: (e: SimEvent) => void,
  pollMs: number,
): Promise<DeploymentView> {
  const start = clock.now();
  const seenWave = new Map<number, string>();
  const seenDecisions = new Set<string>();
  let completedAt: number | null = null;
  for (;;) {
    await sleepReal(pollMs);
    let d: DeploymentView;
    try {
      d = await coordinator.deployment(id);
    } catch {
      continue; // the coordinator is restarting
    }
    for (const w of d.waves) {
      const key = `${w.status}/${w.counts.committed}/${w.counts.failed}`;
      if (seenWave.get(w.index) !== key && w.status !== 'pending') {
        seenWave.set(w.index, key);
        emit({ type: 'wave', version, wave: w.index, percent: w.percent, status: w.status, targeted: w.counts.tracked, committed: w.counts.committed, failed: w.counts.failed });
      }
    }
    try {
      for (const dec of await coordinator.decisions(id)) {
        const key = `${dec.wave}/${dec.at}/${dec.source}`;
        if (seenDecisions.has(key)) continue;
        seenDecisions.add(key);
        emit({ type: 'decision', version, decision: dec });
      }
    } catch {
      // restarting
    }
    if (FINAL.has(d.phase)) return d;
    // Held for an operator (or out of time): nobody will come in a simulation. Record where it
    // stopped, then abort it as an operator would, so the next release can start.
    const stuck = d.paused ? `paused (${d.paused.cause}) in ${d.phase}` : clock.now() - start > deadlineMs && d.phase !== 'completed' ? `deadline passed in ${d.phase}` : null;
    if (stuck !== null) {
      await coordinator.abort(id, `simulation: ${stuck}; no operator to decide`).catch(() => undefined);
      await settleFinal(coordinator, id, clock, 30 * 60_000);
      return { ...d, phase: stuck };
    }
    if (d.phase === 'completed') {
      completedAt ??= clock.now();
      const everyone = hosts.filter((h) => h.alive).every((h) => h.truth.finalVersion === version);
      // Stragglers (reconnecting, slow links) get a bounded grace after the last wave.
      if (everyone || clock.now() - completedAt > 30 * 60_000) return d;
    }
    if (clock.now() - start > deadlineMs) return d;
  }
}

/** Waits (bounded, in simulated time) for an aborted deployment to reach a final phase. */
async function settleFinal(coordinator: CoordinatorHandle, id: string, clock: Clock, maxMs: number): Promise<void> {
  const end = clock.now() + maxMs;
  while (clock.now() < end) {
    const d = await coordinator.deployment(id).catch(() => null);
    if (d && FINAL.has(d.phase)) return;
    await sleepReal(100);
  }
}
