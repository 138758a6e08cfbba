/**
 * The benchmark process's own CPU profile and the windows to cut every profile to, when
 * `FLEET_CPU_PROF_DIR` is set (simulator/cpu-profile.ts): the process profiles itself through the
 * inspector (its children run under `--cpu-prof`), and marks each measured window in the monotonic
 * µs of profile timestamps. `profile-components.ts` reads the directory. I/O shell.
 */
import { Session } from 'node:inspector/promises';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cpuProfileDir } from '../cpu-profile.js';

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

export class SelfProfile {
  private session: Session | null = null;
  private readonly windows: Record<string, [number, number]> = {};
  private readonly open = new Map<string, number>();

  private constructor(private readonly dir: string | undefined) {}

  /** Starts profiling this process when profiles are asked for; otherwise every method does nothing. */
  static async start(): Promise<SelfProfile> {
    const p = new SelfProfile(cpuProfileDir());
    if (p.dir === undefined) return p;
    await mkdir(p.dir, { recursive: true });
    p.session = new Session();
    p.session.connect();
    await p.session.post('Profiler.enable');
    await p.session.post('Profiler.setSamplingInterval', { interval: 1000 });
    await p.session.post('Profiler.start');
    return p;
  }

  begin(name: string): void {
    this.open.set(name, nowUs());
  }

  end(name: string): void {
    const from = this.open.get(name);
    if (from !== undefined) this.windows[name] = [from, nowUs()];
  }

  /** Writes `bench.<pid>.cpuprofile` and `marks.json` (window name → [from, to] µs). */
  async stop(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (!s || this.dir === undefined) return;
    const { profile } = await s.post('Profiler.stop');
    s.disconnect();
    await writeFile(join(this.dir, `bench.${process.pid}.cpuprofile`), JSON.stringify(profile));
    await writeFile(join(this.dir, 'marks.json'), JSON.stringify({ benchPid: process.pid, windows: this.windows }, null, 2));
  }
}
