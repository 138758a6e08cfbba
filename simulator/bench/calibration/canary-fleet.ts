/**
 * Synthetic canary fleets for the judge's golden set and calibration study: seeded telemetry messages
 * (and canary statuses) as real agents would send them — cumulative counters, metrics with device-level
 * random effects, error log lines, boot counts and uptime — for a mixed fleet of hardware models and
 * from-versions, with the faults real fleets produce: a regression confined to one model or from-version,
 * an onset mid-soak, metrics that stop being reported, a control outage, devices offline for hours
 * (queuing their telemetry, or powered off), a pathological device, a fleet-wide incident, failed trials.
 * Pure: the same spec gives the same messages.
 */
import type { ContinuousMetric, EventCounter } from '@fleet/protocol/canary';
import type { StatusMessage, TelemetryMessage } from '@fleet/protocol/messages';
import { Rng } from '../../rng.js';

const H = 3_600_000;
const MIN = 60_000;

export interface ModelProfile {
  cpuPct: number;
  memUsedMb: number;
  temperatureC: number;
  powerW: number;
  /** Battery drain in % per hour; absent on mains-powered models. */
  drainPctPerH?: number;
  bootTimeS: number;
  /** Events per device-hour. */
  rates: Record<EventCounter, number>;
  errorLines: readonly string[];
}

export const MODELS: Readonly<Record<string, ModelProfile>> = {
  'sensor-v2': {
    cpuPct: 22, memUsedMb: 118, temperatureC: 44, powerW: 1.2, drainPctPerH: 1, bootTimeS: 18,
    rates: { crashes: 0.01, errors: 0.08, reboots: 0.004, agentRestarts: 0.004 },
    errorLines: ['mqtt: reconnect after keepalive timeout', 'sensor: read retry 3', 'ntp: clock step 120 ms'],
  },
  'gateway-x': {
    cpuPct: 38, memUsedMb: 410, temperatureC: 52, powerW: 4.5, bootTimeS: 31,
    rates: { crashes: 0.02, errors: 0.15, reboots: 0.006, agentRestarts: 0.008 },
    errorLines: ['modbus: timeout on unit 7', 'lte: signal lost 2 s', 'mqtt: reconnect after keepalive timeout'],
  },
  'cam-mini': {
    cpuPct: 55, memUsedMb: 220, temperatureC: 58, powerW: 2.8, drainPctPerH: 2, bootTimeS: 24,
    rates: { crashes: 0.005, errors: 0.05, reboots: 0.003, agentRestarts: 0.003 },
    errorLines: ['isp: frame drop 4', 'h264: encoder underrun', 'wifi: roam to ap 2'],
  },
};

/** What the new firmware does differently, on the devices it affects, from `onsetH` into the window. */
export interface CanaryEffect {
  /** Only canaries of these models (default all). */
  models?: string[];
  /** Only canaries updated from these versions (default all). */
  fromVersions?: string[];
  onsetH?: number;
  /** Rate multipliers per counter. */
  rates?: Partial<Record<EventCounter, number>>;
  /** Metric multipliers (CPU mean, CPU tail spikes, power, battery drain). */
  cpu?: number;
  cpuSpikes?: number;
  power?: number;
  drain?: number;
  /** Added: memory growth in MB per hour after onset; temperature shift in °C. */
  memLeakMbPerH?: number;
  tempShift?: number;
  /** Metrics the new firmware no longer reports. */
  dropMetrics?: ContinuousMetric[];
  /** A log line each crash writes on affected devices. */
  crashLine?: string;
}

export interface OfflineSpell {
  cohort: 'canary' | 'control' | 'both';
  share: number;
  fromH: number;
  toH: number;
  /** The agent queued its telemetry and sends it at reconnect; otherwise the device was powered off. */
  queued: boolean;
}

export interface FleetSpec {
  seed: string | number;
  hours: number;
  intervalMin: number;
  canary: number;
  control: number;
  /** Model mix (weights). */
  models: Record<string, number>;
  /** Versions the fleet runs before the update (weights). */
  fromVersions: Record<string, number>;
  toVersion: string;
  effect?: CanaryEffect;
  /** Both cohorts: rate multipliers between fromH and toH (a broker outage, a bad network day). */
  fleetWide?: { fromH: number; toH: number; rates: Partial<Record<EventCounter, number>> };
  /** A share of control devices whose telemetry is lost between fromH and toH. */
  controlOutage?: { fromH: number; toH: number; share: number };
  offline?: OfflineSpell[];
  /** Canary devices that crash at this rate per hour, whatever the release. */
  pathological?: { count: number; crashesPerH: number };
  /** Canary trials that fail (rolled back, trial-boot-failed) and canaries silent after installing. */
  trialFailures?: number;
  silentAfterInstall?: number;
  /** Device-to-device spread multiplier (1 = typical). */
  noise?: number;
  /** Epoch ms of the window start (default on a whole hour, 2026-09-21T14:00Z). */
  start?: number;
}

export interface GeneratedFleet {
  window: { from: number; to: number };
  toVersion: string;
  devices: { deviceId: string; hardwareModel: string; cohort: 'canary' | 'control'; fromVersion: string }[];
  statuses: StatusMessage[];
  telemetry: { msg: TelemetryMessage; at: number }[];
}

const METRIC_ORDER: readonly ContinuousMetric[] = ['cpuPct', 'memUsedMb', 'temperatureC', 'batteryPct', 'powerW', 'bootTimeS'];
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

const pick = (rng: Rng, weights: Record<string, number>): string => rng.weighted(Object.keys(weights), (k) => weights[k]!);

/** Generates the fleet's telemetry and statuses for the window [start, start + hours). */
export function generateFleet(spec: FleetSpec): GeneratedFleet {
  const root = new Rng(spec.seed);
  const start = spec.start ?? 1_789_999_200_000;
  const window = { from: start, to: start + Math.round(spec.hours * H) };
  const intervalMs = Math.round(spec.intervalMin * MIN);
  const noise = spec.noise ?? 1;
  const devices: GeneratedFleet['devices'] = [];
  const statuses: StatusMessage[] = [];
  const telemetry: GeneratedFleet['telemetry'] = [];
  const total = spec.canary + spec.control;
  for (let i = 0; i < total; i++) {
    const cohort = i < spec.canary ? 'canary' : 'control';
    const deviceId = `${cohort === 'canary' ? 'cn' : 'ct'}-${String(cohort === 'canary' ? i : i - spec.canary).padStart(4, '0')}`;
    const rng = root.fork(deviceId);
    const model = pick(rng, spec.models);
    const profile = MODELS[model];
    if (!profile) throw new RangeError(`unknown model ${model}`);
    const fromVersion = pick(rng, spec.fromVersions);
    devices.push({ deviceId, hardwareModel: model, cohort, fromVersion });
    const e = spec.effect;
    const affected = cohort === 'canary' && !!e && (!e.models || e.models.includes(model)) && (!e.fromVersions || e.fromVersions.includes(fromVersion));
    const onsetMs = window.from + (e?.onsetH ?? 0) * H;
    // Device-level random effects: devices differ far more from each other than samples within a device.
    const dev = {
      cpu: profile.cpuPct * Math.exp(rng.normal(0, 0.15 * noise)),
      mem: profile.memUsedMb * Math.exp(rng.normal(0, 0.06 * noise)),
      temp: profile.temperatureC + rng.normal(0, 2.5 * noise),
      power: profile.powerW * Math.exp(rng.normal(0, 0.06 * noise)),
      drain: profile.drainPctPerH === undefined ? undefined : profile.drainPctPerH * Math.exp(rng.normal(0, 0.06 * noise)),
      boot: profile.bootTimeS * Math.exp(rng.normal(0, 0.05 * noise)),
      battery: 60 + rng.uniform(0, 35),
      frailty: Math.exp(rng.normal(0, 0.3 * noise) - 0.045 * noise * noise),
    };
    const phase = rng.uniform(0, intervalMs);
    const installAt = cohort === 'canary' ? window.from + Math.round(rng.uniform(2, 20) * MIN) : undefined;
    const index = cohort === 'canary' ? i : -1;
    const trialFails = index >= 0 && index < (spec.trialFailures ?? 0);
    const silentAfter = index >= 0 && index >= (spec.trialFailures ?? 0) && index < (spec.trialFailures ?? 0) + (spec.silentAfterInstall ?? 0);
    const pathological = index >= 0 && index >= spec.canary - (spec.pathological?.count ?? 0);
    const outage = cohort === 'control' && spec.controlOutage && rng.chance(spec.controlOutage.share) ? spec.controlOutage : undefined;
    const spells = (spec.offline ?? []).filter((o) => (o.cohort === 'both' || o.cohort === cohort) && rng.chance(o.share));
    if (installAt !== undefined) {
      let seq = 0;
      const st = (state: StatusMessage['state'], at: number, extra: Partial<StatusMessage> = {}): StatusMessage => ({
        v: 1, kind: 'status', deviceId, deploymentId: 'golden', state, fromVersion, toVersion: spec.toVersion, seq: seq++, at, ...extra,
      });
      statuses.push(st('downloading', installAt - 4 * MIN), st('rebooting', installAt - MIN), st('trial', installAt));
      if (trialFails) statuses.push(st('rolled-back', installAt + 3 * MIN, { reason: 'trial-boot-failed', fromVersion: spec.toVersion, toVersion: fromVersion }));
      else statuses.push(st('committed', installAt + 2 * MIN));
    }
    const counters = { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 };
    let bootCount = 3;
    let bootedAt = window.from - Math.round(rng.uniform(2, 48) * H);
    let seq = 0;
    let queue: { msg: TelemetryMessage; at: number }[] = [];
    for (let t = window.from - intervalMs + phase; t < window.to; t += intervalMs) {
      const at = Math.round(t);
      const onNew = installAt !== undefined && at >= installAt && !trialFails;
      if (installAt !== undefined && at >= installAt && bootedAt < installAt - MIN) {
        bootCount++;
        bootedAt = installAt - MIN;
      }
      if (silentAfter && installAt !== undefined && at > installAt + 20 * MIN) break;
      const spell = spells.find((s) => at >= window.from + s.fromH * H && at < window.from + s.toH * H);
      if (spell && !spell.queued) continue; // powered off: no samples, no events
      const ended = spells.find((s) => !s.queued && at >= window.from + s.toH * H && bootedAt < window.from + s.toH * H);
      if (ended) {
        bootCount++;
        bootedAt = window.from + ended.toH * H;
      }
      const hours = intervalMs / H;
      const tH = (at - window.from) / H;
      const live = affected && onNew && at >= onsetMs;
      const fw = spec.fleetWide && tH >= spec.fleetWide.fromH && tH < spec.fleetWide.toH ? spec.fleetWide.rates : undefined;
      const logs: string[] = [];
      for (const c of ['crashes', 'errors', 'reboots', 'agentRestarts'] as const) {
        const mult = (live ? e?.rates?.[c] ?? 1 : 1) * (fw?.[c] ?? 1) * dev.frailty;
        let rate = profile.rates[c] * mult;
        if (c === 'crashes' && pathological && onNew) rate += spec.pathological!.crashesPerH;
        const k = rng.poisson(rate * hours);
        counters[c] += k;
        for (let j = 0; j < k && logs.length < 20; j++) {
          if (c === 'crashes' && live && e?.crashLine) logs.push(e.crashLine.replace('<n>', String(rng.int(100, 999))));
          else if (c === 'errors') logs.push(`E ${profile.errorLines[rng.int(0, profile.errorLines.length - 1)]!}`);
        }
      }
      const leak = live && e?.memLeakMbPerH ? e.memLeakMbPerH * Math.max(0, (at - Math.max(onsetMs, installAt ?? 0)) / H) : 0;
      const spike = rng.chance(0.03) ? 1.8 * (live ? e?.cpuSpikes ?? 1 : 1) : 1;
      const metrics: Partial<Record<ContinuousMetric, number>> = {
        cpuPct: Math.min(100, Math.max(0.5, dev.cpu * (live ? e?.cpu ?? 1 : 1) * spike * (1 + rng.normal(0, 0.08)))),
        memUsedMb: Math.max(10, dev.mem + leak + rng.normal(0, 2)),
        temperatureC: dev.temp + (live ? e?.tempShift ?? 0 : 0) + rng.normal(0, 0.8),
        powerW: Math.max(0.05, dev.power * (live ? e?.power ?? 1 : 1) * (1 + rng.normal(0, 0.03))),
        bootTimeS: dev.boot,
      };
      if (dev.drain !== undefined) {
        const drain = dev.drain * (live ? e?.drain ?? 1 : 1);
        metrics.batteryPct = Math.max(1, dev.battery - drain * Math.max(0, tH + 1) + rng.normal(0, 0.2));
      }
      if (live && e?.dropMetrics) for (const m of e.dropMetrics) delete metrics[m];
      const msg: TelemetryMessage = {
        v: 1,
        kind: 'telemetry',
        deviceId,
        firmwareVersion: onNew ? spec.toVersion : fromVersion,
        slot: onNew ? 'B' : 'A',
        uptimeS: Math.max(0, Math.round((at - bootedAt) / 1000)),
        bootCount,
        metrics: Object.fromEntries(METRIC_ORDER.flatMap((m) => (metrics[m] === undefined ? [] : [[m, r3(metrics[m])]]))),
        counters: { ...counters },
        custom: {},
        logs,
        seq: seq++,
        at,
      };
      if (outage && at >= window.from + outage.fromH * H && at < window.from + outage.toH * H) continue;
      if (spell?.queued) {
        queue.push({ msg, at });
        continue;
      }
      const receivedAt = at + 40 + Math.round(rng.uniform(0, 200));
      if (queue.length) {
        // Reconnected: the queued messages arrive first, back to back.
        queue.forEach((q, j) => telemetry.push({ msg: q.msg, at: receivedAt - (queue.length - j) * 5 }));
        queue = [];
      }
      telemetry.push({ msg, at: receivedAt });
    }
  }
  telemetry.sort((a, b) => a.at - b.at || (a.msg.deviceId < b.msg.deviceId ? -1 : 1));
  return { window, toVersion: spec.toVersion, devices, statuses, telemetry };
}
