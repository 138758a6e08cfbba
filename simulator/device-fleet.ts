/**
 * The simulated fleet as the runner sees it: start it, tell it about new images, run its telemetry
 * and connection drops, ask whether every live device runs a version, take its ground truth, stop it.
 * Two implementations: LocalDeviceFleet (here: every device in this process, on this process's clock)
 * and ProcessDeviceFleet (process-fleet.ts: slices of the fleet in child processes, each a
 * LocalDeviceFleet on a clock that follows this one). I/O shell.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AgentConfig, AgentState } from '@fleet/agent';
import type { TrustStore } from '@fleet/firmware/trust-store';
import { definedProps } from '@fleet/firmware/defined-props';
import { DeviceHost, type FirmwareImage } from './device-host.js';
import type { SimDeviceSpec } from './fleet-composition.js';
import type { BehaviourTable } from './behaviour.js';
import type { FaultSpec } from './scenario.js';
import type { DeviceTruth } from './report.js';
import type { SimClock } from './paced-clock.js';
import { DownloadFaultProxy } from './download-faults.js';
import { TelemetryPacer } from './telemetry-pacer.js';
import { FaultInjector } from './fault-injector.js';
import { boundedEach } from './concurrency.js';
import { Rng } from './rng.js';
import type { ProcessUsage } from './device-process-messages.js';

export interface DeviceFleet {
  /** Devices in the fleet. */
  readonly size: number;
  /** Powers on the devices that are online at the start, `concurrency` at a time. */
  startOnline(concurrency: number): Promise<void>;
  /** Powers on the devices that were offline at the start (their return). */
  startReturning(concurrency: number): Promise<void>;
  /** An image the run built: devices that boot it know which version they run. */
  addImage(image: FirmwareImage): Promise<void>;
  /** Telemetry from every live device, once per simulated `intervalMs`, evenly spread. */
  startTelemetry(intervalMs: number): Promise<void>;
  /** Connection drops at `perDeviceH` per device-hour (a Poisson process), from `seed`. */
  startDrops(perDeviceH: number, seed: string): Promise<void>;
  /** Every device's MQTT connection drops at once (what devices see of a broker restart). */
  dropAll(): Promise<void>;
  /** Whether every live device runs `version`. */
  everyoneOn(version: string): Promise<boolean>;
  /** Each device's ground truth now, `onlineAtEnd` meaning alive now; in device order. */
  truths(): Promise<DeviceTruth[]>;
  /** Faults injected so far, by kind (summed over processes). */
  faultCounts(): Promise<Record<string, number>>;
  /** Each device process's CPU, memory and connected devices (none: the devices run in this process). */
  usage(): Promise<ProcessUsage[]>;
  /** Powers every device off and releases everything. Safe twice. */
  stop(): Promise<void>;
}

/** What the devices of a fleet are made of, in this process or in device processes. */
export interface FleetDeviceOptions {
  specs: readonly SimDeviceSpec[];
  /** Device id → secret (absent: anonymous). */
  secrets: ReadonlyMap<string, string>;
  trust: TrustStore;
  /** Each device keeps its downloads in `<devicesDir>/<deviceId>`. */
  devicesDir: string;
  baseImage: FirmwareImage;
  behaviours: BehaviourTable;
  sampleNoise: number;
  faults: FaultSpec;
  /** Run downloads through a fault proxy (faulty or slow downloads in the scenario). */
  proxy: boolean;
}

export interface LocalFleetOptions extends FleetDeviceOptions {
  clock: SimClock;
  logger: Logger;
  agentConfig: AgentConfig;
  /** Bind the devices' client sockets (MQTT, HTTP) to this local address, e.g. 127.0.0.2. */
  localAddress?: string;
  onState?: (deviceId: string, state: AgentState) => void;
}

/** Every device of the fleet (or of a slice of it) in this process. */
export class LocalDeviceFleet implements DeviceFleet {
  private readonly hosts: DeviceHost[];
  private readonly images: Map<string, FirmwareImage>;
  private readonly counts: Record<string, number> = {};
  private readonly proxy: DownloadFaultProxy | null;
  private pacer: TelemetryPacer | null = null;
  private injector: FaultInjector | null = null;
  private proxyStarted: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly o: LocalFleetOptions) {
    this.images = new Map([[o.baseImage.sha256, o.baseImage]]);
    this.proxy = o.proxy ? new DownloadFaultProxy(o.clock) : null;
    this.hosts = o.specs.map(
      (spec) =>
        new DeviceHost({
          spec,
          clock: o.clock,
          logger: o.logger,
          agentConfig: o.agentConfig,
          secret: o.secrets.get(spec.deviceId) ?? null,
          trust: o.trust,
          dataDir: join(o.devicesDir, spec.deviceId),
          baseImage: o.baseImage,
          images: this.images,
          behaviours: o.behaviours,
          sampleNoise: o.sampleNoise,
          faults: o.faults,
          proxy: this.proxy,
          faultCounts: this.counts,
          ...definedProps({ onState: o.onState, localAddress: o.localAddress }),
        }),
    );
  }

  get size(): number {
    return this.hosts.length;
  }

  async startOnline(concurrency: number): Promise<void> {
    await (this.proxyStarted ??= this.proxy?.start() ?? Promise.resolve());
    const online = this.hosts.filter((h) => !h.truth.offlineAtStart);
    await boundedEach(online.length, concurrency, (i) => online[i]!.start());
  }

  async startReturning(concurrency: number): Promise<void> {
    const returning = this.hosts.filter((h) => h.truth.offlineAtStart);
    this.counts['offline-returned'] = returning.length;
    await boundedEach(returning.length, concurrency, (i) => returning[i]!.start());
  }

  addImage(image: FirmwareImage): Promise<void> {
    this.images.set(image.sha256, image);
    return Promise.resolve();
  }

  startTelemetry(intervalMs: number): Promise<void> {
    if (!this.pacer && !this.stopped) {
      this.pacer = new TelemetryPacer(this.hosts, this.o.clock, intervalMs);
      this.pacer.start();
    }
    return Promise.resolve();
  }

  startDrops(perDeviceH: number, seed: string): Promise<void> {
    if (!this.injector && !this.stopped) {
      this.injector = new FaultInjector(this.o.clock, new Rng(seed));
      this.injector.drops(this.hosts, perDeviceH);
    }
    return Promise.resolve();
  }

  dropAll(): Promise<void> {
    for (const h of this.hosts) h.dropConnection();
    return Promise.resolve();
  }

  everyoneOn(version: string): Promise<boolean> {
    return Promise.resolve(this.hosts.every((h) => !h.alive || h.truth.finalVersion === version));
  }

  truths(): Promise<DeviceTruth[]> {
    return Promise.resolve(this.hosts.map((h) => ({ ...h.truth, onlineAtEnd: h.alive })));
  }

  faultCounts(): Promise<Record<string, number>> {
    return Promise.resolve({ ...this.counts, ...(this.proxy ? { 'downloads-proxied': this.proxy.counts.proxied } : {}) });
  }

  usage(): Promise<ProcessUsage[]> {
    return Promise.resolve([]);
  }

  /** Telemetry messages sent so far. */
  get telemetrySent(): number {
    return this.pacer?.sent ?? 0;
  }

  /** Devices connected to the broker now. */
  connectedCount(): number {
    return this.hosts.filter((h) => h.connected).length;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.injector?.stop();
    this.pacer?.stop();
    await boundedEach(this.hosts.length, 500, (i) => this.hosts[i]!.stop({ powerOff: true }).catch(() => undefined));
    if (this.proxyStarted) await this.proxy?.stop();
  }
}
