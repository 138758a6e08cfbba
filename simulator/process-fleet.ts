/**
 * The simulated fleet spread over child processes (device-process.ts), so that devices and the
 * coordinator each get CPU of their own as in the field, and a fleet can pass one process's socket
 * limit. Device i of the fleet lives in process ⌊i·N/size⌋; each process binds its devices' sockets
 * to its own loopback source address (round-robin over `localAddresses`), and every device is given
 * every broker URL (the nodes of one cluster: it starts at the node its id picks and fails over). The run's paced clock stays here: every process follows
 * it (a sync every tick) and reports its load to it, so one simulated time holds for the whole fleet
 * and every process's real work holds the pace (docs/simulated-time.md). I/O shell.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DeviceFleet, FleetDeviceOptions } from './device-fleet.js';
import type { FirmwareImage } from './device-host.js';
import type { DeviceTruth } from './report.js';
import type { PacedClock } from './paced-clock.js';
import { ChildMessageSchema, ProcessUsageSchema, type DeviceProcessCall, type DeviceProcessInit, type ParentMessage, type ProcessUsage, type TracedState } from './device-process-messages.js';
import { SimulationError } from './errors.js';
import { cpuProfileArgv } from './cpu-profile.js';

/** Real ms between the clock syncs sent to every device process (the paced clock's tick). */
const SYNC_MS = 20;
/** Real ms a device process may take to answer a call before the run gives up on it. */
const CALL_TIMEOUT_MS = 10 * 60_000;

export interface ProcessFleetOptions extends FleetDeviceOptions {
  processes: number;
  clock: PacedClock;
  /** Broker URLs: the nodes of one cluster, every device spread over them by its id (the agent's rule). */
  brokerUrls: readonly string[];
  baseVersion: string;
  telemetryIntervalMs: number;
  tags: readonly string[];
  /** Source addresses for the processes' client sockets, round-robin (none: the system's choice). */
  localAddresses?: readonly string[];
  /** Every persisted agent state, with the real time (this process's performance.now()) it happened. */
  onState?: (deviceId: string, state: TracedState, at: number) => void;
  /** Heap limit of each device process, MiB (default: Node's). */
  maxOldSpaceMiB?: number;
}

/**
 * The device processes' young generation: 64 MiB semi-spaces instead of V8's 16 MiB. A process hosting
 * hundreds of agents allocates fast (messages, states, buffers) and spent ~9 % of its samples in GC,
 * mostly scavenges of short-lived objects; bigger semi-spaces scavenge less often and promote less.
 * It costs up to ~150 MiB more per process (the young generation's spaces) — a setting of this load-testing
 * tool, not of the agent: a device runs one agent in a process of its own with Node's defaults.
 */
const DEVICE_SEMI_SPACE_MIB = 64;

/**
 * The device-process entry beside this module: the built .js, or the .ts source when this runs from
 * source under a TypeScript loader, which the child inherits with this process's exec arguments.
 */
export function deviceProcessEntry(): string {
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return fileURLToPath(new URL(`./device-process.${ext}`, import.meta.url));
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

class DeviceProcess {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  exited = false;

  constructor(readonly proc: ChildProcess, readonly index: number) {
    proc.on('exit', (code, signal) => {
      this.exited = true;
      const err = new SimulationError('device-process-exited', `device process ${index} exited (${signal ?? String(code)}); its devices are gone`);
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(err);
      }
      this.pending.clear();
    });
  }

  send(msg: ParentMessage): void {
    if (!this.exited && this.proc.connected) this.proc.send(msg);
  }

  call(call: DeviceProcessCall): Promise<unknown> {
    if (this.exited) return Promise.reject(new SimulationError('device-process-exited', `device process ${this.index} has exited`));
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SimulationError('device-process-timeout', `device process ${this.index} did not answer ${call.method} within ${CALL_TIMEOUT_MS / 60_000} minutes`));
      }, CALL_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.send({ type: 'call', id, call });
    });
  }

  settle(id: number, ok: boolean, value: unknown, error: string | undefined): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (ok) p.resolve(value);
    else p.reject(new SimulationError('device-process-failed', `device process ${this.index}: ${error ?? 'failed'}`));
  }
}

export class ProcessDeviceFleet implements DeviceFleet {
  private syncTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  private constructor(private readonly o: ProcessFleetOptions, private readonly children: DeviceProcess[]) {}

  /** Forks the device processes and hands each its slice of the fleet; resolves once all are ready. */
  static async create(o: ProcessFleetOptions): Promise<ProcessDeviceFleet> {
    const n = Math.max(1, Math.min(o.processes, o.specs.length));
    const entry = deviceProcessEntry();
    const children: DeviceProcess[] = [];
    const readies: Promise<void>[] = [];
    const keys = [...o.trust.keys.values()].map((k) => String(k.publicKey.export({ format: 'pem', type: 'spki' })));
    for (let i = 0; i < n; i++) {
      const execArgv = [
        ...process.execArgv,
        ...cpuProfileArgv(process.execArgv),
        `--max-semi-space-size=${DEVICE_SEMI_SPACE_MIB}`,
        ...(o.maxOldSpaceMiB !== undefined ? [`--max-old-space-size=${o.maxOldSpaceMiB}`] : []),
      ];
      const proc = fork(entry, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
      const child = new DeviceProcess(proc, i);
      children.push(child);
      const slice = o.specs.slice(Math.floor((i * o.specs.length) / n), Math.floor(((i + 1) * o.specs.length) / n));
      const localAddress = o.localAddresses?.length ? o.localAddresses[i % o.localAddresses.length] : undefined;
      readies.push(
        new Promise<void>((resolve, reject) => {
          proc.once('exit', (code) => reject(new SimulationError('device-process-exited', `device process ${i} exited (${String(code)}) before it was ready`)));
          proc.on('message', (raw: unknown) => {
            const parsed = ChildMessageSchema.safeParse(raw);
            if (!parsed.success) return;
            const m = parsed.data;
            if (m.type === 'ready') resolve();
            else if (m.type === 'reply') child.settle(m.id, m.ok, m.value, m.error);
            else if (m.type === 'load') o.clock.noteRemoteLoad(m);
            else o.onState?.(m.deviceId, m.state as TracedState, m.epochMs - performance.timeOrigin);
          });
        }),
      );
      const init: DeviceProcessInit = {
        type: 'init',
        specs: slice,
        secrets: Object.fromEntries(slice.flatMap((s) => (o.secrets.has(s.deviceId) ? [[s.deviceId, o.secrets.get(s.deviceId)!]] : []))),
        trust: { keys, threshold: o.trust.threshold },
        agent: { brokerUrls: [...o.brokerUrls], baseVersion: o.baseVersion, telemetryIntervalMs: o.telemetryIntervalMs, tags: [...o.tags] },
        devicesDir: o.devicesDir,
        baseImage: o.baseImage,
        behaviours: [...o.behaviours.entries()],
        sampleNoise: o.sampleNoise,
        faults: o.faults,
        proxy: o.proxy,
        ...(localAddress !== undefined ? { localAddress } : {}),
        traceStates: o.onState !== undefined,
        time: o.clock.timeSync(),
      };
      child.send(init);
    }
    const fleet = new ProcessDeviceFleet(o, children);
    try {
      await Promise.all(readies);
    } catch (err) {
      await fleet.stop();
      throw err;
    }
    fleet.syncTimer = setInterval(() => fleet.sync(), SYNC_MS);
    fleet.syncTimer.unref();
    return fleet;
  }

  get size(): number {
    return this.o.specs.length;
  }

  get processes(): number {
    return this.children.length;
  }

  private sync(): void {
    const time = this.o.clock.timeSync();
    for (const c of this.children) c.send({ type: 'sync', time });
  }

  private all(call: DeviceProcessCall): Promise<unknown[]> {
    return Promise.all(this.children.map((c) => c.call(call)));
  }

  async startOnline(concurrency: number): Promise<void> {
    // Each process connects its own devices; together no more at once than asked.
    await this.all({ method: 'startOnline', concurrency: Math.max(1, Math.ceil(concurrency / this.children.length)) });
  }

  async startReturning(concurrency: number): Promise<void> {
    await this.all({ method: 'startReturning', concurrency: Math.max(1, Math.ceil(concurrency / this.children.length)) });
  }

  async addImage(image: FirmwareImage): Promise<void> {
    await this.all({ method: 'addImage', image });
  }

  async startTelemetry(intervalMs: number): Promise<void> {
    await this.all({ method: 'startTelemetry', intervalMs });
  }

  async startDrops(perDeviceH: number, seed: string): Promise<void> {
    await Promise.all(this.children.map((c, i) => c.call({ method: 'startDrops', perDeviceH, seed: `${seed}/process-${i}` })));
  }

  async dropAll(): Promise<void> {
    await this.all({ method: 'dropAll' });
  }

  async everyoneOn(version: string): Promise<boolean> {
    return (await this.all({ method: 'everyoneOn', version })).every((x) => x === true);
  }

  async truths(): Promise<DeviceTruth[]> {
    return (await this.all({ method: 'truths' })).flatMap((x) => x as DeviceTruth[]);
  }

  async faultCounts(): Promise<Record<string, number>> {
    const sum: Record<string, number> = {};
    for (const counts of await this.all({ method: 'faultCounts' })) {
      for (const [k, v] of Object.entries(counts as Record<string, number>)) sum[k] = (sum[k] ?? 0) + v;
    }
    return sum;
  }

  /** Each device process's CPU time, RSS and connected devices now. */
  async usage(): Promise<ProcessUsage[]> {
    return (await this.all({ method: 'usage' })).map((u) => ProcessUsageSchema.parse(u));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.syncTimer = null;
    await Promise.all(
      this.children.map(async (c) => {
        if (c.exited) return;
        const exited = new Promise<void>((resolve) => c.proc.once('exit', () => resolve()));
        const kill = setTimeout(() => c.proc.kill('SIGKILL'), 30_000);
        await c.call({ method: 'stop' }).catch(() => undefined);
        await exited;
        clearTimeout(kill);
      }),
    );
  }
}
