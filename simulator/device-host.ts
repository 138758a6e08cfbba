/**
 * One simulated device: the real agent (re-created at every boot by the agent's SimulatedDevice
 * harness) on the in-memory slot backend, a behaviour-model telemetry collector, its own MQTT
 * connection and credentials, and the fault hooks (connection drops, power loss at a chosen update
 * stage, faulty downloads). It also keeps the ground truth the report needs: which firmware really
 * booted when, and whether a dead device was killed by its firmware or by the system. I/O shell.
 */
import type { Logger } from 'pino';
import { createConnection } from 'node:net';
import mqtt, { MqttClient, type IClientOptions } from 'mqtt';
import { DeviceIdSchema, HardwareModelSchema } from '@fleet/protocol/ids';
import type { TrustStore } from '@fleet/firmware/trust-store';
import {
  AgentConfigSchema,
  type AgentConfig,
  HttpDownloader,
  downloadCredentials,
  MemoryStateStore,
  SimulatedDevice,
  type AgentState,
  type Downloader,
  type HealthCheckRunner,
  type TelemetryCollector,
} from '@fleet/agent';
import { MemorySlotBackend } from './memory-slot-backend.js';
import { bootOutcome, DeviceBehaviourModel, type BehaviourTable } from './behaviour.js';
import type { SimDeviceSpec } from './fleet-composition.js';
import type { DeviceTruth } from './report.js';
import type { DownloadFault, DownloadFaultProxy } from './download-faults.js';
import type { FaultSpec } from './scenario.js';
import { Rng } from './rng.js';
import type { SimClock } from './paced-clock.js';


/** A sample covers at most this many telemetry intervals (the simulator's coordinator counts 20 minutes of exposure per gap at most). */
const MAX_SAMPLE_SPAN_INTERVALS = 10;
export interface FirmwareImage {
  version: string;
  sha256: string;
  size: number;
}

export interface DeviceHostOptions {
  spec: SimDeviceSpec;
  /** The run's clock; real work (downloads, connects) is tracked on it so that deadlines wait for it. */
  clock: SimClock;
  logger: Logger;
  /** The agent configuration the fleet shares (fleetAgentConfig): broker, telemetry interval, timings. */
  agentConfig: AgentConfig;
  /** The device's own credentials (null: anonymous, client id = device id). */
  secret: string | null;
  trust: TrustStore;
  /** Where this device keeps downloads. */
  dataDir: string;
  baseImage: FirmwareImage;
  /** sha256 → image, for every firmware of the run: how the simulator knows what a slot runs. */
  images: ReadonlyMap<string, FirmwareImage>;
  behaviours: BehaviourTable;
  sampleNoise: number;
  faults: FaultSpec;
  proxy: DownloadFaultProxy | null;
  /** Counts of injected faults, shared by the fleet. */
  faultCounts: Record<string, number>;
  /** Every persisted state change of the agent (benchmark traces). */
  onState?: (deviceId: string, state: AgentState) => void;
  /**
   * Bind the device's MQTT (plain mqtt:// only) and HTTP client sockets to this local address, e.g.
   * 127.0.0.2: one source address has ~28,000 ephemeral ports toward one destination.
   */
  localAddress?: string;
}

/** A health-check runner with no checks to run: the firmware model decides at boot whether the trial comes up. */
const PASSING_HEALTH: HealthCheckRunner = { run: () => Promise.resolve({ ok: true }) };

/**
 * The agent configuration every device of a fleet shares, parsed with the agent's schema once for the
 * fleet (a zod parse per device was a tenth of a simulated device's start-up CPU); each device's own
 * identity, data directory and credentials go on a copy (deviceConfig). Frozen, so an agent that wrote
 * to its configuration would fail loudly instead of changing its neighbours'.
 */
export function fleetAgentConfig(brokerUrl: string | readonly string[], firmwareVersion: string, telemetryIntervalMs: number, tags: readonly string[] = []): AgentConfig {
  const config = AgentConfigSchema.parse({
    // Placeholders: deviceConfig() puts in each device's own.
    deviceId: 'device',
    hardwareModel: 'model',
    firmwareVersion,
    // Reported in every hello: against a shared coordinator the run's deployments target this tag alone.
    tags,
    broker: {
      // Several URLs: the nodes of one cluster; each device starts at the node its id picks.
      url: typeof brokerUrl === 'string' || brokerUrl.length !== 1 ? brokerUrl : brokerUrl[0],
      keepalive: 60_000,
      // Reconnect backoff in simulated time: a fleet after a broker restart spreads over seconds, not minutes.
      reconnectMin: 2_000,
      reconnectMax: 60_000,
      connectTimeout: 30_000,
    },
    trustStoreDir: '/nonexistent/the-simulator-injects-the-trust-store',
    dataDir: '/nonexistent/each-device-has-its-own',
    slots: { kind: 'memory' },
    telemetry: { interval: telemetryIntervalMs },
    download: { retryBase: 10_000, retryMax: 120_000, maxAttempts: 8 },
    // Deadlines that race real network latency are widened: at ×300 the default 2-minute broker
    // deadline is 0.4 s of real time, shorter than a reconnect on a busy 2-core machine.
    health: { brokerDeadline: 30 * 60_000, trialWindow: 60 * 60_000 },
    logLevel: 'error',
  });
  deepFreeze(config);
  return config;
}

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const v of Object.values(value)) deepFreeze(v);
}

/** One device's configuration: the fleet's, with its identity (checked like the schema would), data directory and credentials. */
function deviceConfig(fleet: AgentConfig, deviceId: string, hardwareModel: string, dataDir: string, secret: string | null): AgentConfig {
  return {
    ...fleet,
    deviceId: DeviceIdSchema.parse(deviceId),
    hardwareModel: HardwareModelSchema.parse(hardwareModel),
    dataDir,
    broker: { ...fleet.broker, ...(secret !== null ? { username: deviceId, password: secret } : {}) },
  };
}

/** mqtt.connect, with the client socket bound to `localAddress` where one is given (plain TCP only). */
export function connectFrom(options: IClientOptions, localAddress: string | undefined): MqttClient {
  const protocol = options.protocol ?? 'mqtt';
  if (localAddress === undefined || (protocol !== 'mqtt' && protocol !== 'tcp')) return mqtt.connect(options);
  const host = options.hostname ?? options.host ?? 'localhost';
  const port = options.port ?? 1883;
  const servers = options.servers ?? [];
  let attempt = 0;
  // mqtt.connect's TCP stream builder takes no local address; the client accepts any stream builder.
  // Several nodes (`servers`): the next one at every connect, as mqtt.connect's own builder does.
  return new MqttClient(() => {
    const node = servers.length ? servers[attempt++ % servers.length] : undefined;
    return createConnection({ host: node?.host ?? host, port: node?.port ?? port, localAddress });
  }, { ...options, protocol: 'mqtt' });
}

export class DeviceHost {
  readonly truth: DeviceTruth;
  readonly slots: MemorySlotBackend;
  private device: SimulatedDevice | null = null;
  private client: MqttClient | null = null;
  private readonly rng: Rng;
  private readonly store = new MemoryStateStore();
  private readonly model: DeviceBehaviourModel;
  private runningVersion: string | null;
  private bootedAt = 0;
  private lastSampleAt = 0;
  private dead = false;
  private powerLossStage: string | null;
  private downloadAttempts = new Map<string, number>();
  private started = false;
  private stopped = false;
  /** This device was sent a corrupted image and its agent refused it (hash mismatch): correct and final. */
  corruptedRefused = false;
  private corruptedSent = false;

  constructor(private readonly o: DeviceHostOptions) {
    const spec = o.spec;
    this.rng = new Rng(spec.seed);
    this.model = new DeviceBehaviourModel(spec.baseline, o.behaviours, this.rng.fork('telemetry'), o.sampleNoise);
    this.slots = new MemorySlotBackend({ factoryImage: { sha256: o.baseImage.sha256, size: o.baseImage.size }, onReboot: () => undefined });
    this.runningVersion = o.baseImage.version;
    const faults = this.rng.fork('faults');
    const stages = o.faults.powerLossStages;
    this.powerLossStage = faults.chance(o.faults.powerLossShare) ? stages[faults.int(0, stages.length - 1)]! : null;
    this.truth = {
      deviceId: spec.deviceId,
      hardwareModel: spec.hardwareModel,
      offlineAtStart: spec.offline !== null,
      onlineAtEnd: false,
      ranAt: { [o.baseImage.version]: 0 },
      updateStartedAt: {},
      leftAt: {},
      finalVersion: o.baseImage.version,
      brickedByFirmware: null,
      brickedBySystem: null,
      refusedCorruptImage: false,
    };
  }

  get deviceId(): string {
    return this.o.spec.deviceId;
  }

  /** Running, with an agent that is connected to the broker. */
  get connected(): boolean {
    return this.device?.agent?.connected ?? false;
  }

  get alive(): boolean {
    return this.started && !this.dead && !this.stopped;
  }

  /** Powers the device on for the first time (factory state: slot A, committed). */
  async start(): Promise<void> {
    if (this.started || this.stopped) return;
    this.started = true;
    const o = this.o;
    const spec = o.spec;
    const config = deviceConfig(o.agentConfig, spec.deviceId, spec.hardwareModel, o.dataDir, o.secret);
    const collector: TelemetryCollector = {
      collect: () => {
        const version = this.runningVersion ?? o.baseImage.version;
        const now = o.clock.now();
        // Events accrue over the simulated time this sample really covers (since the previous sample
        // of this boot), not the nominal interval: on a starved machine samples come late, and a crash
        // rate per sample would then shrink the crashes per simulated hour that the gate judges.
        // Capped like the coordinator's exposure gap, so both sides of a rate count the same time.
        const covered = Math.min(Math.max(0, now - Math.max(this.bootedAt, this.lastSampleAt)), MAX_SAMPLE_SPAN_INTERVALS * o.agentConfig.telemetry.interval);
        this.lastSampleAt = now;
        const s = this.model.sample(version, now - this.bootedAt, covered);
        return Promise.resolve({ metrics: s.metrics, events: s.events, logs: s.logs, uptimeS: (now - this.bootedAt) / 1000 });
      },
    };
    // With the device's credentials: the coordinator authenticates every download.
    const http = new HttpDownloader({ idleTimeoutMs: 30_000, ...(await downloadCredentials(config)), ...(o.localAddress !== undefined ? { localAddress: o.localAddress } : {}) });
    const downloader: Downloader = {
      download: (req, opts) => {
        const { url, fault } = this.downloadFault(req.url);
        const transfer = http.download({ ...req, url }, opts);
        // A throttled transfer runs on simulated time (a slow link), so it is not real work to wait for.
        return fault.kind === 'throttle' ? transfer : o.clock.track(transfer);
      },
      digest: (path) => http.digest(path),
      discard: (path) => http.discard(path),
    };
    const random = this.rng.fork('agent');
    this.device = new SimulatedDevice({
      config,
      clock: o.clock,
      logger: o.logger,
      connect: (options) => {
        const c = connectFrom(options, o.localAddress);
        this.client = c;
        this.trackConnects(c);
        return c;
      },
      telemetry: collector,
      downloader,
      // The device's "disk": survives every simulated reboot and power loss of this device.
      store: this.store,
      slots: this.slots,
      trust: o.trust,
      healthChecks: PASSING_HEALTH,
      random: () => random.next(),
      telemetryTimer: false,
      bootOutcome: () => this.onBoot(),
      maxResets: 4,
      onStateChange: (state) => this.onState(state),
    });
    this.bootedAt = o.clock.now();
    await this.device.start();
  }

  /** What the bootloader booted, as the simulated firmware would behave. */
  private onBoot(): 'up' | 'reset' {
    const now = this.o.clock.now();
    if (this.dead) return 'reset';
    const result = this.slots.lastBoot;
    if (result && !result.ok) {
      this.dead = true;
      this.truth.brickedBySystem = { at: now, reason: result.reason };
      this.setRunning(null, now);
      return 'reset';
    }
    const content = this.slots.running();
    const image = content ? this.o.images.get(content.sha256) : undefined;
    const version = image?.version ?? null;
    this.setRunning(version, now);
    this.bootedAt = now;
    if (version === null) {
      // An intact slot with an image this run never built cannot happen: treat as a system failure.
      this.dead = true;
      this.truth.brickedBySystem = { at: now, reason: 'unknown image in the booted slot' };
      return 'reset';
    }
    const outcome = bootOutcome(this.model.behaviourOf(version), this.rng, version);
    if (outcome === 'brick') {
      this.dead = true;
      this.truth.brickedByFirmware = { version, at: now };
      this.setRunning(null, now);
      return 'reset';
    }
    if (outcome === 'boot-loop' && this.slots.trial) return 'reset';
    return 'up';
  }

  private setRunning(version: string | null, now: number): void {
    const previous = this.runningVersion;
    if (previous !== null && previous !== version) this.truth.leftAt[previous] = now;
    if (version !== null && this.truth.ranAt[version] === undefined) this.truth.ranAt[version] = now;
    this.runningVersion = version;
    this.truth.finalVersion = version;
  }

  private onState(state: AgentState): void {
    this.o.onState?.(this.o.spec.deviceId, state);
    const job = state.job;
    if (!job) return;
    if (this.corruptedSent && job.stage === 'done' && job.result === 'failed' && job.reason === 'hash-mismatch') {
      this.corruptedRefused = true;
      this.truth.refusedCorruptImage = true;
    }
    if (job.kind === 'install' && job.stage === 'downloading' && this.truth.updateStartedAt[job.deploymentId] === undefined) {
      this.truth.updateStartedAt[job.deploymentId] = this.o.clock.now();
    }
    if (this.powerLossStage !== null && job.stage === this.powerLossStage && job.kind === 'install') {
      this.powerLossStage = null;
      this.o.faultCounts['power-losses'] = (this.o.faultCounts['power-losses'] ?? 0) + 1;
      // Cut the power a moment later, from outside the agent's own event queue.
      const delay = this.rng.fork(`power-loss-delay`).uniform(0, 2_000);
      this.o.clock.setTimeout(() => void this.device?.powerLoss(), delay);
    }
  }

  /**
   * Each connect attempt (CONNECT to CONNACK, with the broker's password check) is real work in
   * flight until it connects or fails; the session's reconnects reuse the client.
   */
  private trackConnects(c: MqttClient): void {
    let end: (() => void) | null = this.o.clock.begin();
    const done = (): void => {
      end?.();
      end = null;
    };
    c.on('connect', done);
    c.on('close', done);
    c.on('end', done);
    c.on('reconnect', () => {
      done();
      end = this.o.clock.begin();
    });
  }

  /** The artifact URL this attempt should use (direct, or through the fault proxy) and its fault. */
  private downloadFault(url: string): { url: string; fault: DownloadFault } {
    const proxy = this.o.proxy;
    if (!proxy) return { url, fault: { kind: 'pass' } };
    const attempt = (this.downloadAttempts.get(url) ?? 0) + 1;
    this.downloadAttempts.set(url, attempt);
    const r = this.rng.fork(`download/${url}/${attempt}`);
    const f = this.o.faults;
    let fault: DownloadFault = { kind: 'pass' };
    if (attempt === 1 && r.chance(f.corruptedDownloadShare)) fault = { kind: 'corrupt' };
    else if (attempt === 1 && r.chance(f.interruptedDownloadShare)) fault = { kind: 'cut', afterBytes: r.int(1, 48 * 1024) };
    else if (this.o.spec.slowLinkKiBps !== null) fault = { kind: 'throttle', kibps: this.o.spec.slowLinkKiBps };
    if (fault.kind === 'corrupt') this.corruptedSent = true;
    if (fault.kind !== 'pass') this.o.faultCounts[`download-${fault.kind}`] = (this.o.faultCounts[`download-${fault.kind}`] ?? 0) + 1;
    return { url: proxy.urlFor(url, fault), fault };
  }

  /** Resolves once the agent's MQTT connection is up (false after `timeoutMs` real milliseconds). */
  whenConnected(timeoutMs: number): Promise<boolean> {
    if (this.connected) return Promise.resolve(true);
    const c = this.client;
    if (!c) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        c.off('connect', onConnect);
        resolve(this.connected);
      }, timeoutMs);
      const onConnect = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      c.once('connect', onConnect);
    });
  }

  /** Drops the MQTT connection without warning (the agent reconnects by itself). */
  dropConnection(): void {
    const c = this.client;
    if (!c || !this.alive) return;
    this.o.faultCounts['connection-drops'] = (this.o.faultCounts['connection-drops'] ?? 0) + 1;
    c.stream?.destroy();
  }

  /** One telemetry message now, if the agent is up. */
  async sendTelemetry(): Promise<void> {
    const agent = this.device?.agent;
    if (!agent || !this.alive) return;
    await agent.sendTelemetry();
  }

  /** Waits for a power cycle in progress to finish. */
  async settled(): Promise<void> {
    await this.device?.settled();
  }

  /**
   * Stops the device. `powerOff` (the end of a run) cuts the agent like a power switch — no clean
   * disconnect, nothing left to save — so that a thousand devices stop in a moment.
   */
  async stop(options: { powerOff?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.truth.onlineAtEnd = this.started && !this.dead;
    this.stopped = true;
    if (options.powerOff) await this.device?.agent?.kill();
    await this.device?.stop();
  }
}
