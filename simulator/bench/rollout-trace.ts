/**
 * Where a benchmark rollout's wall time goes: real-time marks of every simulated device's update
 * stages (from its agent's persisted states) and of the coordinator's wave audit entries, folded into
 * a per-wave breakdown along the wave's critical path (its last device to commit) plus the event
 * loop's utilisation over each wave. Collecting is I/O-free; `breakdown()` is pure over the marks.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { TracedState } from '../device-process-messages.js';

/** The agent's install stages, as the trace records them (`committed`: the job's end). */
type Stage = 'downloading' | 'verifying' | 'installing' | 'rebooting' | 'trial' | 'committed';

interface DeviceMarks {
  wave: number;
  at: Partial<Record<Stage, number>>;
  busyRetries: number;
  attempts: number;
}

interface WaveMarks {
  started?: number;
  /** The wave-started audit was heard: it follows the manifests' publish. */
  published?: number;
  completed?: number;
  gated?: number;
  eluStart?: EventLoopUtilization;
  eluEnd?: EventLoopUtilization;
  cpuStart?: NodeJS.CpuUsage;
  cpuEnd?: NodeJS.CpuUsage;
}

/** One wave's wall time, split along its critical path (ms, real time). */
export interface WaveBreakdown {
  wave: number;
  devices: number;
  /** Wave start (the engine starts it; its manifests' publish begins) → the next wave's start, or the deployment's completion. */
  totalMs: number;
  /** Critical path, along the wave's last device to commit; the parts add up to totalMs. */
  path: {
    manifestToJob: number;
    download: number;
    verifyInstall: number;
    rebootReconnect: number;
    trialCommit: number;
    statusToWaveComplete: number;
    gate: number;
    nextWavePublish: number;
  };
  /** The spread over the wave's devices. */
  spread: {
    /** Wave start → every bucket topic of the wave published. */
    publishMs: number;
    firstJobMs: number;
    lastJobMs: number;
    firstDownloadEndMs: number;
    lastDownloadEndMs: number;
    downloadMedianMs: number;
    rebootMedianMs: number;
    trialMedianMs: number;
    busyRetries: number;
  };
  /** Share of the wave's wall time the process's event loop was busy (0–1). */
  eventLoopBusy: number;
  /** CPU time of the process (all threads, user + system) over the wave, ms: less noisy than wall time on a shared machine. */
  cpuMs: number;
}

export interface RolloutBreakdown {
  waves: WaveBreakdown[];
  /** Last wave's completion (deployment.completed) → the run saw every device on the version. */
  tailMs: number;
}

export class RolloutTrace {
  /** One deployment's marks: the benchmark rolls out one release, whose id is known only once created. */
  private readonly devices = new Map<string, DeviceMarks>();
  private readonly waves = new Map<number, WaveMarks>();
  private deploymentId: string | undefined;
  private completedAt: number | undefined;
  private endedAt: number | undefined;

  /** `scale`: simulated ms per real ms of the run's (fixed-scale) clock, to place audit entries in real time. */
  constructor(private readonly scale: number) {}

  /** A device's agent persisted a new state, at real time `at` (performance.now(); a device process's, converted). */
  deviceState(deviceId: string, state: TracedState, at = performance.now()): void {
    const job = state.job;
    if (!job || job.kind !== 'install' || job.deploymentId !== (this.deploymentId ??= job.deploymentId)) return;
    const now = at;
    let d = this.devices.get(deviceId);
    if (!d) {
      d = { wave: job.wave ?? -1, at: {}, busyRetries: 0, attempts: 0 };
      this.devices.set(deviceId, d);
    }
    const stage: Stage | null = job.stage === 'done' ? (job.result === 'committed' ? 'committed' : null) : job.stage === 'committing' ? null : job.stage === 'reverting' ? null : job.stage;
    if (stage !== null) d.at[stage] ??= now;
    d.busyRetries = Math.max(d.busyRetries, job.busyRetries ?? 0);
    d.attempts = Math.max(d.attempts, job.attempts);
  }

  /**
   * A coordinator audit entry (wave started, completed, gate decided, deployment completed), heard at
   * simulated time `simNow`. Placed at the time the engine stepped (its `at`), not when the listener
   * heard it: a wave's start is audited after its manifests are published.
   */
  audit(entry: { action: string; deploymentId: string; wave?: number; at: number }, simNow: number): void {
    if (entry.deploymentId !== (this.deploymentId ??= entry.deploymentId)) return;
    const now = performance.now() - Math.max(0, simNow - entry.at) / this.scale;
    const w = entry.wave;
    if (entry.action === 'deployment.completed') this.completedAt ??= now;
    if (w === undefined) return;
    const marks = this.waves.get(w) ?? {};
    this.waves.set(w, marks);
    if (entry.action === 'deployment.wave-started') {
      marks.started ??= now;
      marks.published ??= performance.now();
      // Utilisation from when the start was heard: close enough over a wave of seconds.
      marks.eluStart ??= performance.eventLoopUtilization();
      marks.cpuStart ??= process.cpuUsage();
      const prev = this.waves.get(w - 1);
      if (prev) {
        prev.eluEnd ??= marks.eluStart;
        prev.cpuEnd ??= marks.cpuStart;
      }
    } else if (entry.action === 'deployment.wave-completed') marks.completed ??= now;
    else if (entry.action === 'deployment.gate-decided') marks.gated ??= now;
  }

  /** The run saw the release through (every device on the version). */
  end(): void {
    this.endedAt ??= performance.now();
    const last = Math.max(-1, ...this.waves.keys());
    const marks = this.waves.get(last);
    if (marks) {
      marks.eluEnd ??= performance.eventLoopUtilization();
      marks.cpuEnd ??= process.cpuUsage();
    }
  }

  /**
   * Per wave: its start → the last of its devices starting the job (every device that started one,
   * committed or not: a bad release's canaries never commit). The manifest's fan-out to the wave.
   */
  fanout(): { wave: number; devices: number; ms: number }[] {
    const out: { wave: number; devices: number; ms: number }[] = [];
    for (const w of [...this.waves.keys()].sort((a, b) => a - b)) {
      const start = this.waves.get(w)!.started;
      if (start === undefined) continue;
      const jobs = [...this.devices.values()].filter((d) => d.wave === w && d.at.downloading !== undefined).map((d) => d.at.downloading! - start);
      out.push({ wave: w, devices: jobs.length, ms: jobs.length ? Math.max(...jobs) : 0 });
    }
    return out;
  }

  breakdown(): RolloutBreakdown {
    const out: WaveBreakdown[] = [];
    const indices = [...this.waves.keys()].sort((a, b) => a - b);
    for (const w of indices) {
      const marks = this.waves.get(w)!;
      const start = marks.started;
      if (start === undefined) continue;
      const next = this.waves.get(w + 1)?.started ?? this.completedAt ?? this.endedAt ?? start;
      const devs = [...this.devices.values()].filter((d) => d.wave === w && d.at.committed !== undefined);
      const last = devs.reduce<DeviceMarks | undefined>((a, b) => (!a || b.at.committed! > a.at.committed! ? b : a), undefined);
      const at = (s: Stage): number => last?.at[s] ?? start;
      const completed = marks.completed ?? at('committed');
      const gated = marks.gated ?? completed;
      const rel = (xs: number[]): number[] => xs.map((x) => x - start).sort((a, b) => a - b);
      const jobs = rel(devs.map((d) => d.at.downloading ?? start));
      const downloaded = rel(devs.map((d) => d.at.verifying ?? start));
      const elu = marks.eluStart && marks.eluEnd ? performance.eventLoopUtilization(marks.eluEnd, marks.eluStart).utilization : 0;
      out.push({
        wave: w,
        devices: devs.length,
        totalMs: next - start,
        path: {
          manifestToJob: at('downloading') - start,
          download: at('verifying') - at('downloading'),
          verifyInstall: at('rebooting') - at('verifying'),
          rebootReconnect: at('trial') - at('rebooting'),
          trialCommit: at('committed') - at('trial'),
          statusToWaveComplete: completed - at('committed'),
          gate: gated - completed,
          nextWavePublish: next - gated,
        },
        spread: {
          publishMs: (marks.published ?? start) - start,
          firstJobMs: jobs[0] ?? 0,
          lastJobMs: jobs.at(-1) ?? 0,
          firstDownloadEndMs: downloaded[0] ?? 0,
          lastDownloadEndMs: downloaded.at(-1) ?? 0,
          downloadMedianMs: median(devs.map((d) => (d.at.verifying ?? 0) - (d.at.downloading ?? 0))),
          rebootMedianMs: median(devs.map((d) => (d.at.trial ?? 0) - (d.at.rebooting ?? 0))),
          trialMedianMs: median(devs.map((d) => (d.at.committed ?? 0) - (d.at.trial ?? 0))),
          busyRetries: devs.reduce((n, d) => n + d.busyRetries, 0),
        },
        eventLoopBusy: elu,
        cpuMs: marks.cpuStart && marks.cpuEnd ? (marks.cpuEnd.user - marks.cpuStart.user + marks.cpuEnd.system - marks.cpuStart.system) / 1000 : 0,
      });
    }
    const tailMs = this.endedAt !== undefined && this.completedAt !== undefined ? this.endedAt - this.completedAt : 0;
    return { waves: out, tailMs };
  }
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The breakdown as a Markdown table: one column per wave, rows along the critical path. */
export function breakdownTable(b: RolloutBreakdown): string {
  const s = (ms: number): string => (ms / 1000).toFixed(2);
  const rows: [string, (w: WaveBreakdown) => string][] = [
    ['devices', (w) => String(w.devices)],
    ['wave starts → its last device\'s job starts', (w) => s(w.path.manifestToJob)],
    ['its download', (w) => s(w.path.download)],
    ['its verify + slot write', (w) => s(w.path.verifyInstall)],
    ['its reboot + reconnect', (w) => s(w.path.rebootReconnect)],
    ['its trial (health) + commit', (w) => s(w.path.trialCommit)],
    ['its committed status → wave complete', (w) => s(w.path.statusToWaveComplete)],
    ['gate', (w) => s(w.path.gate)],
    ['gate decided → next wave starts', (w) => s(w.path.nextWavePublish)],
    ['**wave total**', (w) => `**${s(w.totalMs)}**`],
    ['manifests published on every bucket', (w) => s(w.spread.publishMs)],
    ['jobs started (first – last)', (w) => `${s(w.spread.firstJobMs)} – ${s(w.spread.lastJobMs)}`],
    ['downloads ended (first – last)', (w) => `${s(w.spread.firstDownloadEndMs)} – ${s(w.spread.lastDownloadEndMs)}`],
    ['median download / reboot / trial', (w) => `${s(w.spread.downloadMedianMs)} / ${s(w.spread.rebootMedianMs)} / ${s(w.spread.trialMedianMs)}`],
    ['busy (503) retries', (w) => String(w.spread.busyRetries)],
    ['coordinator process: event loop busy', (w) => `${Math.round(w.eventLoopBusy * 100)} %`],
    ['coordinator process: CPU (all threads)', (w) => s(w.cpuMs)],
  ];
  const lines = [`| seconds | ${b.waves.map((w) => `wave ${w.wave + 1}`).join(' | ')} |`, `|---|${b.waves.map(() => '---|').join('')}`];
  for (const [label, f] of rows) lines.push(`| ${label} | ${b.waves.map(f).join(' | ')} |`);
  lines.push("", `Deployment completed → the run saw every device on the version: ${s(b.tailMs)} s.`);
  return lines.join('\n');
}
