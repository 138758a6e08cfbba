/**
 * Behaviour models: what a simulated device measures while it runs a given firmware. Each release of a
 * scenario names a behaviour (healthy, battery drain, CPU or memory regression, crash rate ×k, boot
 * loop, brick, subtle, noisy); the device's own baseline and seeded noise do the rest. Pure, apart from
 * the seeded random stream it is given.
 *
 * Boot loop and brick act at boot (see memory-slot-backend.ts and device-host.ts); here they only
 * decide, per device, whether that device is affected, so the same seed affects the same devices.
 */
import type { Behaviour } from './scenario.js';
import type { DeviceBaseline } from './fleet-composition.js';
import type { Rng } from './rng.js';

/** Metrics in the shape of the telemetry message's `metrics`. */
export interface SimMetrics {
  cpuPct: number;
  memUsedMb: number;
  memTotalMb: number;
  temperatureC: number;
  powerW: number;
  batteryPct?: number;
  bootTimeS: number;
}

/** One telemetry sample: metrics, events since the previous sample, and new error log lines. */
export interface SimSample {
  metrics: SimMetrics;
  events: { crashes: number; errors: number };
  logs: string[];
}

/** What happens when a device boots a firmware image. */
export type BootOutcome = 'healthy' | 'boot-loop' | 'brick';

/** Lookup of the behaviour of each firmware version in a run; unknown versions behave healthily. */
export type BehaviourTable = ReadonlyMap<string, Behaviour>;

const HEALTHY: Behaviour = { kind: 'healthy' };
const round = (v: number, digits = 2): number => Number(v.toFixed(digits));
const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

/** Decides, once per device and version, how booting that version goes. */
export function bootOutcome(behaviour: Behaviour, deviceRng: Rng, version: string): BootOutcome {
  // A dedicated fork per version: the draw never depends on how many samples came before.
  const draw = deviceRng.fork(`boot/${version}`).next();
  if (behaviour.kind === 'boot-loop' && draw < behaviour.share) return 'boot-loop';
  if (behaviour.kind === 'brick' && draw < behaviour.share) return 'brick';
  return 'healthy';
}

/**
 * The telemetry model of one device. It keeps the battery level between samples; everything else is
 * a function of baseline, behaviour, uptime and noise.
 */
export class DeviceBehaviourModel {
  private batteryPct: number;

  constructor(
    private readonly baseline: DeviceBaseline,
    private readonly table: BehaviourTable,
    private readonly rng: Rng,
    private readonly sampleNoise: number,
  ) {
    this.batteryPct = baseline.battery ? rng.uniform(40, 100) : 0;
  }

  behaviourOf(version: string): Behaviour {
    return this.table.get(version) ?? HEALTHY;
  }

  /**
   * One sample for a device running `version`, `uptimeMs` after its boot, covering the last
   * `intervalMs` of simulated time.
   */
  sample(version: string, uptimeMs: number, intervalMs: number): SimSample {
    const b = this.behaviourOf(version);
    const base = this.baseline;
    const noiseSd = this.sampleNoise * (b.kind === 'noisy' ? b.factor : 1);
    const noisy = (v: number): number => v * Math.max(0.05, 1 + this.rng.normal(0, noiseSd));
    const hours = intervalMs / 3_600_000;
    const uptimeH = uptimeMs / 3_600_000;

    let cpu = base.cpuPct;
    let mem = base.memUsedMb;
    let power = base.powerW;
    let temp = base.temperatureC;
    let crashesPerH = base.crashesPerH;
    switch (b.kind) {
      case 'cpu-regression':
        cpu *= b.factor;
        break;
      case 'memory-regression':
        mem += b.extraMb + b.leakMbPerH * uptimeH;
        break;
      case 'battery-drain':
        power *= 1 + b.percent / 100;
        break;
      case 'crash-rate':
        crashesPerH *= b.factor;
        break;
      case 'subtle':
        if (b.metric === 'cpuPct') cpu *= 1 + b.shift;
        else if (b.metric === 'memUsedMb') mem *= 1 + b.shift;
        else if (b.metric === 'powerW') power *= 1 + b.shift;
        else temp += Math.abs(temp) * b.shift;
        break;
      case 'healthy':
      case 'noisy':
      case 'boot-loop':
      case 'brick':
        break;
    }
    const cpuPct = clamp(noisy(cpu), 0, 100);
    // A busier CPU runs warmer: about 0.15 °C per CPU percentage point above the device's baseline.
    temp += 0.15 * (cpuPct - base.cpuPct);
    const powerW = noisy(power);
    const metrics: SimMetrics = {
      cpuPct: round(cpuPct),
      memUsedMb: round(Math.min(base.memTotalMb, noisy(mem)), 1),
      memTotalMb: base.memTotalMb,
      temperatureC: round(clamp(temp + this.rng.normal(0, noiseSd * 20), -40, 120), 1),
      powerW: round(powerW, 3),
      bootTimeS: round(base.bootTimeS, 1),
    };
    if (base.battery) {
      // A full charge lasts about 24 h at the device's baseline draw; below 15% it is recharged.
      const drainPerH = (100 / 24) * (powerW / Math.max(0.01, base.powerW));
      this.batteryPct -= drainPerH * hours;
      if (this.batteryPct < 15) this.batteryPct = 100;
      metrics.batteryPct = round(clamp(this.batteryPct, 0, 100), 1);
    }
    const crashes = this.rng.poisson(crashesPerH * hours);
    const errors = this.rng.poisson(base.errorsPerH * hours) + crashes;
    const logs: string[] = [];
    for (let i = 0; i < Math.min(crashes, 5); i++) {
      logs.push(`sensord[${this.rng.int(200, 9000)}]: segfault at ${this.rng.int(0x1000, 0xffffff).toString(16)} ip ${this.rng.int(0x400000, 0x4fffff).toString(16)} in sensord`);
    }
    for (let i = 0; i < Math.min(errors - crashes, 5); i++) {
      logs.push(`netd: upstream timeout after ${this.rng.int(5, 30)}s, retrying`);
    }
    return { metrics, events: { crashes, errors }, logs };
  }
}
