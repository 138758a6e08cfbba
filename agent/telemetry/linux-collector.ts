/**
 * Device metrics from /proc and /sys on Linux. I/O adapter.
 *
 * CPU % is the busy share of /proc/stat jiffies since the previous sample (left out on the first);
 * memory from /proc/meminfo (MemTotal − MemAvailable); temperature from the first thermal zone;
 * battery and power draw from /sys/class/power_supply where a battery exists. Anything unreadable is
 * left out. The root is injectable so tests can point at a fake /proc and /sys tree.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TelemetryCollector, TelemetryMetrics, TelemetrySample } from './collector.js';

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

const round = (v: number, digits = 1): number => Number(v.toFixed(digits));
/** An agent started later than this after power-on was restarted: its start says nothing about boot time. */
const BOOT_TIME_LIMIT_S = 600;

export class LinuxCollector implements TelemetryCollector {
  private lastCpu: { busy: number; total: number } | null = null;

  /**
   * @param root filesystem root holding proc/ and sys/ (default "/").
   * @param processUptime seconds since the agent process started (default process.uptime).
   */
  constructor(
    private readonly root = '/',
    private readonly processUptime: () => number = () => process.uptime(),
  ) {}

  async collect(): Promise<TelemetrySample> {
    const metrics: TelemetryMetrics = {};
    const sample: TelemetrySample = { metrics };
    const [stat, meminfo, uptime] = await Promise.all([
      readText(join(this.root, 'proc/stat')),
      readText(join(this.root, 'proc/meminfo')),
      readText(join(this.root, 'proc/uptime')),
    ]);
    const cpu = stat ? this.cpuPct(stat) : undefined;
    if (cpu !== undefined) metrics.cpuPct = cpu;
    if (meminfo) {
      const kb = (name: string) => {
        const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(meminfo);
        return m ? Number(m[1]) : undefined;
      };
      const total = kb('MemTotal');
      const available = kb('MemAvailable');
      if (total !== undefined) metrics.memTotalMb = round(total / 1024);
      if (total !== undefined && available !== undefined) metrics.memUsedMb = round((total - available) / 1024);
    }
    if (uptime) {
      const up = Number(uptime.split(/\s+/)[0]);
      if (Number.isFinite(up)) {
        sample.uptimeS = up;
        // Power-on to agent start approximates the boot time (a canary metric for boot regressions);
        // only meaningful when the agent started with the system, not after a later restart.
        const atStart = up - this.processUptime();
        if (atStart >= 0 && atStart < BOOT_TIME_LIMIT_S) metrics.bootTimeS = round(atStart);
      }
    }
    const temp = await readText(join(this.root, 'sys/class/thermal/thermal_zone0/temp'));
    if (temp !== null) {
      const c = Number(temp.trim()) / 1000;
      if (Number.isFinite(c) && c > -80 && c < 200) metrics.temperatureC = round(c);
    }
    await this.power(metrics);
    return sample;
  }

  private cpuPct(stat: string): number | undefined {
    const line = stat.split('\n').find((l) => l.startsWith('cpu '));
    if (!line) return undefined;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
    const prev = this.lastCpu;
    this.lastCpu = { busy: total - idle, total };
    if (!prev || total <= prev.total) return undefined;
    return round(Math.min(100, Math.max(0, ((total - idle - prev.busy) / (total - prev.total)) * 100)));
  }

  private async power(metrics: TelemetryMetrics): Promise<void> {
    const base = join(this.root, 'sys/class/power_supply');
    let names: string[];
    try {
      names = await readdir(base);
    } catch {
      return;
    }
    for (const name of names) {
      const type = (await readText(join(base, name, 'type')))?.trim();
      if (type !== 'Battery') continue;
      const capacity = Number((await readText(join(base, name, 'capacity')))?.trim());
      if (Number.isFinite(capacity) && capacity >= 0 && capacity <= 100) metrics.batteryPct = capacity;
      const powerNow = Number((await readText(join(base, name, 'power_now')))?.trim()); // µW
      if (Number.isFinite(powerNow) && powerNow >= 0) metrics.powerW = round(powerNow / 1e6, 3);
      return;
    }
  }
}
