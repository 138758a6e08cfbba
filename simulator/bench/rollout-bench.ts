/**
 * Benchmark section: a full rollout of N simulated devices (1 → 5 → 25 → 100 %, zero soak, hard gates
 * only since a statistical judge needs soak time) in real time, against the time the downloads alone
 * take: the same N downloads of the same image from the same kind of coordinator, all at once, with
 * the agent's own downloader. I/O shell.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import pino from 'pino';
import { createCoordinator } from '@fleet/coordinator';
import { HttpDownloader } from '@fleet/agent';
import { simulate } from '../fleet-runner.js';
import { parseScenario } from '../scenario.js';
import { embeddedCoordinator } from '../coordinator-handles.js';
import { imageBytes } from '../firmware-images.js';
import { RolloutTrace, type RolloutBreakdown } from './rollout-trace.js';
import { startChild } from './child.js';
import { SelfProfile } from './self-profile.js';
import type { DeviceFleet } from '../device-fleet.js';
import type { ProcessUsage } from '../device-process-messages.js';

const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));

export interface RolloutResult {
  n: number;
  /** The artifact server's bound on concurrent downloads, the same on both sides (past it: 503, retried). */
  maxConcurrentDownloads: number;
  /** Simulated ms per real ms of the run's (fixed) clock. */
  timeScale: number;
  /** Device processes (0: the devices shared the coordinator's process). */
  processes: number;
  /** `uptime`'s load averages when the run started. */
  load: number[];
  imageKiB: number;
  rolloutMs: number;
  downloadsMs: number;
  /** CPU time (all threads) of each, ms: the coordinator's process plus the device processes. */
  rolloutCpuMs: number;
  downloadsCpuMs: number;
  /**
   * The same CPU by side, ms: the coordinator's process (the artifact server alone in the baseline;
   * broker, engine, store, ingest, gates and the server in the rollout) and the device side (the
   * baseline's download clients; the device processes). Only with devices in processes of their own.
   */
  cpuBySide?: { downloadsServerMs: number; downloadsClientsMs: number; rolloutCoordinatorMs: number; rolloutDevicesMs: number };
  completed: boolean;
  /** Where the rollout's time went, wave by wave. */
  breakdown: RolloutBreakdown;
}

const cpuSince = (start: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
};

async function downloadsAlone(n: number, imageKiB: number, processes: number, maxConcurrentDownloads: number, prof: SelfProfile): Promise<{ ms: number; cpuMs: number; serverCpuMs?: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-bench-dl-'));
  const c = await createCoordinator({
    config: { env: 'development', dataDir: join(dir, 'coord'), mqtt: { port: 0, host: '127.0.0.1' }, http: { port: 0, host: '127.0.0.1', maxConcurrentDownloads }, credentialCost: 4 },
    logger: pino({ level: 'error' }),
  });
  try {
    const bytes = imageBytes('bench/downloads', imageKiB);
    const rec = await c.uploadFirmware({ image: Readable.from([bytes]), version: '3.0.0', hardware: ['bench'] });
    const url = `${c.httpUrl.replace(/\/$/, '')}/artifacts/${rec.sha256}`;
    // Downloads are authenticated per device: each has its credentials, already verified once (here
    // by a one-byte request) as its MQTT connect would have done in the rollout.
    const devices = await c.provisionDevices(Array.from({ length: n }, (_, i) => `bench-dl-${i}`), { hardwareModel: 'bench' });
    for (const d of devices) {
      await (await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`${d.deviceId}:${d.secret}`).toString('base64')}`, range: 'bytes=0-0' } })).arrayBuffer();
    }
    if (processes > 0) return await downloadsInChildren(processes, { url, size: rec.size, sha256: rec.sha256, dir: join(dir, 'dl'), devices }, prof);
    prof.begin('downloads');
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    await Promise.all(
      devices.map(async ({ deviceId, secret }, i) => {
        const dl = new HttpDownloader({ idleTimeoutMs: 60_000, credentials: { username: deviceId, password: secret }, plainHttpCredentials: true });
        const dest = join(dir, 'dl', `d${i}.img`);
        for (let attempt = 0; attempt < 20; attempt++) {
          const r = await dl.download({ url, size: rec.size, sha256: rec.sha256, dest }, { signal: new AbortController().signal });
          if (r.ok) return;
          await new Promise((res) => setTimeout(res, 50)); // 503 past the server's concurrency bound: retry, as agents do
        }
        throw new Error(`download ${i} kept failing`);
      }),
    );
    prof.end('downloads');
    return { ms: performance.now() - t0, cpuMs: cpuSince(cpu0) };
  } finally {
    await c.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The same downloads from `processes` child processes (the devices' slices), the server here. */
async function downloadsInChildren(
  processes: number,
  job: { url: string; size: number; sha256: string; dir: string; devices: { deviceId: string; secret: string }[] },
  prof: SelfProfile,
): Promise<{ ms: number; cpuMs: number; serverCpuMs?: number }> {
  const children = await Promise.all(Array.from({ length: processes }, () => startChild(here('./download-child.js'))));
  try {
    const cpu0 = process.cpuUsage();
    prof.begin('downloads');
    const t0 = performance.now();
    const replies = await Promise.all(
      children.map(({ child }, i) => {
        const devices = job.devices.slice(Math.floor((i * job.devices.length) / processes), Math.floor(((i + 1) * job.devices.length) / processes));
        return child.request<{ ms?: number; cpuMs?: number; error?: string }>({ cmd: 'download', ...job, devices }, 'downloaded');
      }),
    );
    const ms = performance.now() - t0;
    prof.end('downloads');
    const failed = replies.find((r) => r.error !== undefined);
    if (failed) throw new Error(`downloads alone: ${failed.error}`);
    const serverCpuMs = cpuSince(cpu0);
    return { ms, cpuMs: serverCpuMs + replies.reduce((sum, r) => sum + (r.cpuMs ?? 0), 0), serverCpuMs };
  } finally {
    await Promise.all(children.map(({ child }) => child.stop()));
  }
}

const cpuOf = (usage: readonly ProcessUsage[]): number => usage.reduce((sum, u) => sum + u.cpuMs, 0);

/**
 * `processes` 0: the devices share the coordinator's process (as `fleet simulate` runs by default);
 * otherwise they run in that many child processes, and so do the baseline's downloads.
 */
export async function rolloutBench(n: number, imageKiB: number, processes = 0, timeScale = 10, maxConcurrentDownloads = 256): Promise<RolloutResult> {
  const load = loadavg();
  const prof = await SelfProfile.start();
  const downloads = await downloadsAlone(n, imageKiB, processes, maxConcurrentDownloads, prof);
  const scenario = parseScenario({
    name: 'bench-rollout',
    description: 'full rollout, zero soak',
    seed: 'bench',
    releases: [{ version: '1.1.0', behaviour: { kind: 'healthy' }, expect: 'complete', imageKiB }],
    // ×10 by default: the agents' own timers (download retry backoff after a 503 — 10 simulated
    // seconds, doubling —, reconnects) run 10× faster; the figure is wall time, and the soak is zero.
    rollout: { waves: [1, 5, 25, 100], soak: '0s', telemetryInterval: '60s', timeScale, deadline: '4h' },
  });
  let rolloutMs = 0;
  let rolloutCpuMs = 0;
  let started = 0;
  let cpu0 = process.cpuUsage();
  let fleet: DeviceFleet | null = null;
  let fleetCpu0: Promise<number> = Promise.resolve(0);
  let fleetCpuMs: Promise<number> = Promise.resolve(0);
  const trace = new RolloutTrace(scenario.rollout.timeScale);
  const report = await simulate({
    scenario,
    devices: n,
    runId: 'bro',
    coordinator: (ctx) => embeddedCoordinator(ctx, { statJudge: false, maxConcurrentDownloads, onStart: (c) => c.events.on('audit', (e) => trace.audit(e, ctx.clock.now())) }),
    onDeviceState: (deviceId, state, at) => trace.deviceState(deviceId, state, at),
    processes,
    onDeviceFleet: (f) => (fleet = f),
    // Wall time is the figure: a fixed scale, so the clock does not slow for the load being measured.
    pacing: false,
    onEvent: (e) => {
      if (e.type === 'release-start') {
        prof.begin('rollout');
        started = performance.now();
        cpu0 = process.cpuUsage();
        fleetCpu0 = fleet ? fleet.usage().then(cpuOf) : Promise.resolve(0);
      }
      if (e.type === 'release-end') {
        prof.end('rollout');
        rolloutMs = performance.now() - started;
        rolloutCpuMs = cpuSince(cpu0);
        const at = fleet ? fleet.usage().then(cpuOf) : Promise.resolve(0);
        fleetCpuMs = Promise.all([at, fleetCpu0]).then(([end, start]) => end - start);
        trace.end();
      }
    },
    pollMs: 50,
  });
  const devicesCpuMs = await fleetCpuMs;
  const coordinatorCpuMs = rolloutCpuMs;
  rolloutCpuMs += devicesCpuMs;
  await prof.stop();
  return { n, maxConcurrentDownloads, timeScale, processes, load, imageKiB, rolloutMs, downloadsMs: downloads.ms, rolloutCpuMs, downloadsCpuMs: downloads.cpuMs,
    ...(processes > 0 && downloads.serverCpuMs !== undefined
      ? { cpuBySide: { downloadsServerMs: downloads.serverCpuMs, downloadsClientsMs: downloads.cpuMs - downloads.serverCpuMs, rolloutCoordinatorMs: coordinatorCpuMs, rolloutDevicesMs: devicesCpuMs } }
      : {}),
    completed: report.releases[0]?.outcome === 'completed', breakdown: trace.breakdown() };
}
