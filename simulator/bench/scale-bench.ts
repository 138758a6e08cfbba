/**
 * Benchmark section `scale`: a large fleet (default 10,000 devices) over several device processes and
 * loopback source addresses, a release that boot-loops caught in its first wave and rolled back, with
 * connect time, memory per device, telemetry offered and the manifest's fan-out, each beside a bare
 * baseline measured in the same run: bare mqtt.js clients from as many processes against bare Aedes
 * brokers (one per 15,000 clients: a process holds at most ~19,500 sockets), and the fan-out bench's
 * device-like subscribers. The topology is the embedded coordinator in this process, or one given
 * (broker URLs, admin URL, token, trust store, device secrets). I/O shell.
 */
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { simulate } from '../fleet-runner.js';
import { parseScenario } from '../scenario.js';
import { embeddedCoordinator, remoteCoordinator } from '../coordinator-handles.js';
import type { DeviceFleet } from '../device-fleet.js';
import type { ProcessUsage } from '../device-process-messages.js';
import { startChild, type Child } from './child.js';
import type { ConnectResult } from './bare-clients.js';
import { RolloutTrace } from './rollout-trace.js';

const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
/** Clients per bare broker process, below one process's socket limit. */
const CLIENTS_PER_BROKER = 15_000;

export interface ScaleTopology {
  brokerUrls: string[];
  adminUrl: string;
  token: string;
  trustDir: string;
  /** `fleet devices provision --out` file for the devices (the broker knows their passwords). */
  secretsFile?: string;
}

export interface ScaleOptions {
  devices: number;
  processes: number;
  sourceAddresses: string[];
  topology?: ScaleTopology;
  log: (line: string) => void;
}

export interface ScaleResult {
  devices: number;
  processes: number;
  sourceAddresses: string[];
  topology: string;
  load: number[];
  bare: { brokers: number; connectMs: number; clientBytesPerConnection: number };
  simulated: {
    /** Start of the fleet → the coordinator sees every device online. */
    connectMs: number;
    /** Device processes' RSS growth from before the devices started to all online, per device. */
    bytesPerDevice: number;
    /** Telemetry messages the devices sent per real second over the rollout. */
    telemetryPerS: number;
    /** Per wave: the wave's start → the last of its devices started its job (the manifest's fan-out). */
    fanoutMs: { wave: number; devices: number; ms: number }[];
    outcome: string;
    ok: boolean;
    exposure: number;
    notBack: number;
    bricked: number;
    wallMs: number;
  };
}

async function bareConnect(n: number, processes: number): Promise<ScaleResult['bare']> {
  const brokersNeeded = Math.max(1, Math.ceil(n / CLIENTS_PER_BROKER));
  const brokers = await Promise.all(Array.from({ length: brokersNeeded }, () => startChild(here('./bare-broker-child.js'))));
  const clients: Child[] = [];
  try {
    const t0 = performance.now();
    const started = await Promise.all(
      Array.from({ length: processes }, (_, i) => {
        const share = Math.floor(((i + 1) * n) / processes) - Math.floor((i * n) / processes);
        const url = `mqtt://127.0.0.1:${String(brokers[i % brokers.length]!.ready['port'])}`;
        return startChild(here('./connect-client-child.js'), ['bare', url, String(share), '200', `scale-bare-${i}`]);
      }),
    );
    clients.push(...started.map((s) => s.child));
    const results = await Promise.all(clients.map((c) => c.request<ConnectResult>({ cmd: 'noop' }, 'result', 600_000)));
    const ms = performance.now() - t0;
    const bytes = results.reduce((sum, r) => sum + r.bytesPerConnection * r.n, 0) / n;
    return { brokers: brokers.length, connectMs: ms, clientBytesPerConnection: bytes };
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    await Promise.all(brokers.map((b) => b.child.stop()));
  }
}

const sum = (usage: readonly ProcessUsage[], f: (u: ProcessUsage) => number): number => usage.reduce((s, u) => s + f(u), 0);

export async function scaleBench(o: ScaleOptions): Promise<ScaleResult> {
  const load = loadavg();
  o.log(`  bare: ${o.devices} mqtt.js clients from ${o.processes} processes`);
  const bare = await bareConnect(o.devices, o.processes);
  o.log(`  bare: connected in ${(bare.connectMs / 1000).toFixed(1)} s (${bare.brokers} broker processes), ${(bare.clientBytesPerConnection / 1024).toFixed(1)} KiB/client`);

  const remote = o.topology;
  // Embedded: simulated time ×60 with a telemetry message per device every 10 simulated minutes
  // (10,000 devices: ~1,000 messages a real second), a 30-minute soak (30 real seconds). A running
  // coordinator keeps real time: a 1-minute interval and a 30-second soak.
  const scenario = parseScenario({
    name: 'scale',
    description: 'a release that boot-loops, caught in its first wave and rolled back',
    seed: 'scale',
    fleet: { devices: o.devices },
    releases: [{ version: '1.1.0', behaviour: { kind: 'boot-loop', share: 1 }, expect: 'abort', imageKiB: 64 }],
    rollout: remote
      ? { waves: [1, 5, 25, 100], soak: '30s', telemetryInterval: '60s', timeScale: 1, deadline: '1h', rollbackDeadline: '20m' }
      : { waves: [1, 5, 25, 100], soak: '30m', telemetryInterval: '10m', timeScale: 60, deadline: '6h' },
  });
  const secrets = remote?.secretsFile !== undefined ? new Map(Object.entries(JSON.parse(await readFile(remote.secretsFile, 'utf8')) as Record<string, string>)) : undefined;
  let fleet: DeviceFleet | null = null;
  let idle: Promise<ProcessUsage[]> = Promise.resolve([]);
  let online: Promise<ProcessUsage[]> = Promise.resolve([]);
  let first: Promise<ProcessUsage[]> = Promise.resolve([]);
  let last: Promise<ProcessUsage[]> = Promise.resolve([]);
  let connectMs = 0;
  let rolloutStart = 0;
  let rolloutEnd = 0;
  const trace = new RolloutTrace(scenario.rollout.timeScale);
  /** The run's deployment: a running coordinator's waves are marked under its id, as the devices' jobs are. */
  let deploymentId = '';
  const t0 = performance.now();
  const report = await simulate({
    scenario,
    devices: o.devices,
    runId: 'scale',
    processes: o.processes,
    localAddresses: o.sourceAddresses,
    connectConcurrency: 400,
    // Ten minutes, or 20 ms a device: 50,000 on a loaded two-core machine took 8.7 minutes, and more
    // when other work took the cores.
    onlineTimeoutMs: Math.max(600_000, o.devices * 20),
    // A shared coordinator: the run's deployments target a tag only its devices report.
    ...(remote ? { realTime: true, targetTag: 'scale-bench', brokerUrls: remote.brokerUrls, ...(secrets ? { secrets } : {}) } : {}),
    coordinator: (ctx) =>
      remote
        ? remoteCoordinator({ url: remote.brokerUrls[0]!, adminUrl: remote.adminUrl, token: remote.token, trustDir: remote.trustDir })
        : embeddedCoordinator(ctx, { onStart: (c) => c.events.on('audit', (e) => trace.audit(e, ctx.clock.now())) }),
    onDeviceFleet: (f) => {
      fleet = f;
      // Asked before the devices start (calls are answered in order): each process's own RSS.
      idle = f.usage();
    },
    onDeviceState: (id, state, at) => trace.deviceState(id, state, at),
    onEvent: (e) => {
      if (e.type === 'fleet-ready') {
        connectMs = e.ms;
        online = fleet ? fleet.usage() : online;
        o.log(`  simulated: ${e.connected}/${e.expected} online at the coordinator in ${(e.ms / 1000).toFixed(1)} s`);
      }
      if (e.type === 'release-start') {
        deploymentId = e.deploymentId;
        rolloutStart = performance.now();
        first = fleet ? fleet.usage() : first;
      }
      // A running coordinator's waves are seen by polling (within 200 ms).
      if (remote && e.type === 'wave') trace.audit({ action: 'deployment.wave-started', deploymentId, wave: e.wave, at: 0 }, 0);
      if (e.type === 'decision') o.log(`  gate after wave ${e.decision.wave + 1}: ${e.decision.recommendation} (${e.decision.rule})`);
      if (e.type === 'release-end') {
        rolloutEnd = performance.now();
        last = fleet ? fleet.usage() : last;
        trace.end();
      }
    },
  });
  const wallMs = performance.now() - t0;
  const [atIdle, atOnline, atStart, atEnd] = await Promise.all([idle, online, first, last]);
  const release = report.releases[0]!;
  const seconds = Math.max(1e-3, (rolloutEnd - rolloutStart) / 1000);
  return {
    devices: o.devices,
    processes: o.processes,
    sourceAddresses: o.sourceAddresses,
    topology: remote ? `brokers ${remote.brokerUrls.join(' ')}, admin ${remote.adminUrl}` : 'embedded coordinator (Aedes, SQLite) in the bench process',
    load,
    bare,
    simulated: {
      connectMs,
      bytesPerDevice: (sum(atOnline, (u) => u.rss) - sum(atIdle, (u) => u.rss)) / o.devices,
      telemetryPerS: (sum(atEnd, (u) => u.telemetrySent) - sum(atStart, (u) => u.telemetrySent)) / seconds,
      fanoutMs: trace.fanout(),
      outcome: release.outcome,
      ok: report.ok,
      exposure: release.exposure,
      notBack: release.notBack.length,
      bricked: release.bricked.bySystem,
      wallMs,
    },
  };
}
