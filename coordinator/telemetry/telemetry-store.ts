/**
 * Telemetry ingest into SQLite: messages are queued in memory and written in one transaction per batch
 * (raw samples for tails, per-device rollups per time slot, the last cumulative counters). Raw samples
 * are kept for a bounded time; rollups carry events, exposure and metric sums. I/O shell (SQLite).
 *
 * Counters are cumulative, so a sample's events are the difference from the previous sample. When the
 * firmware version changed between the two, that difference spans the download, the install, the
 * update's own reboot and any power loss on the way: it belongs to neither version, so it is counted as
 * unattributed transition events and the new version starts from a fresh baseline.
 */
import type { TelemetryMessage } from '../../protocol/messages.js';
import type { ContinuousMetric } from '../../protocol/canary.js';
import type { Db } from '../store/db.js';
import {
  CONTINUOUS_METRICS,
  addSample,
  counterDeltas,
  emptySums,
  type CounterValues,
  type MetricSums,
} from './rollup-math.js';

export interface TelemetryStoreOptions {
  /** Length of a rollup slot in clock ms. Default 60,000. */
  rollupSlotMs: number;
  /** Raw samples older than this are pruned. */
  rawRetentionMs: number;
  /** Gaps between samples longer than this add no exposure (the device was off or silent). */
  maxExposureGapMs: number;
}

interface CounterState extends CounterValues {
  at: number;
  seq: number;
  version: string;
}

export interface RollupAcc {
  deviceId: string;
  slotStart: number;
  firmwareVersion: string;
  samples: number;
  firstAt: number;
  lastAt: number;
  exposureMs: number;
  events: CounterValues;
  metrics: Partial<Record<ContinuousMetric, MetricSums>>;
  errorLines: string[];
}

const MAX_ERROR_LINES_PER_SLOT = 20;

/** Counter differences that spanned a firmware-version change (attributed to no version). */
export interface TransitionStats {
  /** Samples whose previous sample was on another firmware version. */
  spans: number;
  /** Events in those spans, summed over devices. */
  events: CounterValues;
}

export class TelemetryStore {
  private queue: { msg: TelemetryMessage; at: number }[] = [];
  private readonly counters = new Map<string, CounterState>();
  private readonly rollups = new Map<string, RollupAcc>();
  private readonly dirty = new Set<string>();
  private readonly dirtyCounters = new Set<string>();
  private readonly stmts;
  /** Messages written since start. */
  written = 0;
  /** Version-change spans since start: their events are on neither cohort's side of a comparison. */
  readonly transitions: TransitionStats = { spans: 0, events: { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 } };

  constructor(
    private readonly db: Db,
    private readonly options: TelemetryStoreOptions,
  ) {
    this.stmts = {
      raw: db.prepare(
        'INSERT INTO telemetry_raw (device_id, at, firmware_version, cpu, mem, temp, battery, power, boot_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      getCounters: db.prepare('SELECT * FROM device_counters WHERE device_id = ?'),
      // device_counters has no version column: the version of the last stored sample is its latest rollup's.
      lastVersion: db.prepare('SELECT firmware_version FROM telemetry_rollup WHERE device_id = ? ORDER BY slot_start DESC, last_at DESC LIMIT 1').pluck(),
      putCounters: db.prepare(`INSERT INTO device_counters (device_id, at, seq, crashes, errors, reboots, agent_restarts) VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(device_id) DO UPDATE SET at = excluded.at, seq = excluded.seq, crashes = excluded.crashes, errors = excluded.errors,
        reboots = excluded.reboots, agent_restarts = excluded.agent_restarts`),
      getRollup: db.prepare('SELECT * FROM telemetry_rollup WHERE device_id = ? AND slot_start = ? AND firmware_version = ?'),
      putRollup: db.prepare(`INSERT OR REPLACE INTO telemetry_rollup (device_id, slot_start, firmware_version, samples, first_at, last_at,
        exposure_ms, crashes, errors, reboots, agent_restarts, metrics_json, error_lines) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      pruneRaw: db.prepare('DELETE FROM telemetry_raw WHERE at < ?'),
    };
  }

  /** Queues a parsed message; `at` is the coordinator's receive time (the device's clock may be off). */
  enqueue(msg: TelemetryMessage, at: number): void {
    this.queue.push({ msg, at });
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Writes every queued message in one transaction. `extra` runs inside it (e.g. last-seen updates). */
  flush(extra?: () => void): number {
    const batch = this.queue;
    if (batch.length === 0 && !extra) return 0;
    this.queue = [];
    const run = this.db.transaction(() => {
      for (const { msg, at } of batch) this.apply(msg, at);
      for (const key of this.dirty) this.writeRollup(this.rollups.get(key)!);
      // One counters row per device per batch, not per message.
      for (const id of this.dirtyCounters) {
        const c = this.counters.get(id)!;
        this.stmts.putCounters.run(id, c.at, c.seq, c.crashes, c.errors, c.reboots, c.agentRestarts);
      }
      extra?.();
    });
    run();
    this.dirty.clear();
    this.dirtyCounters.clear();
    this.evictOldRollups(batch.length ? batch[batch.length - 1]!.at : 0);
    this.written += batch.length;
    return batch.length;
  }

  private loadCounters(deviceId: string): CounterState | undefined {
    const cached = this.counters.get(deviceId);
    if (cached) return cached;
    const row = this.stmts.getCounters.get(deviceId) as
      | { at: number; seq: number; crashes: number; errors: number; reboots: number; agent_restarts: number }
      | undefined;
    if (!row) return undefined;
    const state: CounterState = {
      at: row.at,
      seq: row.seq,
      crashes: row.crashes,
      errors: row.errors,
      reboots: row.reboots,
      agentRestarts: row.agent_restarts,
      // '' (no rollup left) never equals a real version, so the next sample re-baselines.
      version: (this.stmts.lastVersion.get(deviceId) as string | undefined) ?? '',
    };
    this.counters.set(deviceId, state);
    return state;
  }

  private rollupFor(deviceId: string, slotStart: number, version: string, at: number): RollupAcc {
    const key = `${deviceId}|${slotStart}|${version}`;
    let acc = this.rollups.get(key);
    if (!acc) {
      const row = this.stmts.getRollup.get(deviceId, slotStart, version) as RollupRow | undefined;
      acc = row
        ? rollupFromRow(row)
        : {
            deviceId,
            slotStart,
            firmwareVersion: version,
            samples: 0,
            firstAt: at,
            lastAt: at,
            exposureMs: 0,
            events: { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 },
            metrics: {},
            errorLines: [],
          };
      this.rollups.set(key, acc);
    }
    this.dirty.add(key);
    return acc;
  }

  private apply(msg: TelemetryMessage, at: number): void {
    const id = msg.deviceId;
    const prev = this.loadCounters(id);
    // MQTT keeps one connection's messages in order, so receive order is the order; the same seq
    // twice is a redelivery. (seq may restart with the agent, so it is not compared for order.)
    if (prev && msg.seq === prev.seq && at - prev.at < this.options.maxExposureGapMs) return;
    const slotStart = Math.floor(at / this.options.rollupSlotMs) * this.options.rollupSlotMs;
    const acc = this.rollupFor(id, slotStart, msg.firmwareVersion, at);
    acc.samples++;
    if (at < acc.firstAt) acc.firstAt = at;
    if (at > acc.lastAt) acc.lastAt = at;
    const sameVersion = prev !== undefined && prev.version === msg.firmwareVersion;
    if (sameVersion && at > prev.at) {
      acc.exposureMs += Math.min(at - prev.at, this.options.maxExposureGapMs);
    }
    {
      const deltas = counterDeltas(prev, msg.counters);
      // Across a version change the difference is install-time events (see the header): re-baseline.
      const into = sameVersion ? acc.events : prev ? this.transitions.events : undefined;
      if (prev && !sameVersion) this.transitions.spans++;
      if (into) {
        into.crashes += deltas.crashes;
        into.errors += deltas.errors;
        into.reboots += deltas.reboots;
        into.agentRestarts += deltas.agentRestarts;
      }
      const next: CounterState = { ...msg.counters, at, seq: msg.seq, version: msg.firmwareVersion };
      this.counters.set(id, next);
      this.dirtyCounters.add(id);
    }
    const tH = (at - slotStart) / 3_600_000;
    const m = msg.metrics;
    for (const name of CONTINUOUS_METRICS) {
      const y = m[name];
      if (y === undefined) continue;
      addSample((acc.metrics[name] ??= emptySums()), tH, y);
    }
    for (const line of msg.logs) {
      if (acc.errorLines.length >= MAX_ERROR_LINES_PER_SLOT) break;
      acc.errorLines.push(line);
    }
    this.stmts.raw.run(id, at, msg.firmwareVersion, m.cpuPct ?? null, m.memUsedMb ?? null, m.temperatureC ?? null,
      m.batteryPct ?? null, m.powerW ?? null, m.bootTimeS ?? null);
  }

  private writeRollup(a: RollupAcc): void {
    this.stmts.putRollup.run(a.deviceId, a.slotStart, a.firmwareVersion, a.samples, a.firstAt, a.lastAt, Math.round(a.exposureMs),
      a.events.crashes, a.events.errors, a.events.reboots, a.events.agentRestarts, JSON.stringify(a.metrics), JSON.stringify(a.errorLines));
  }

  /** Drops in-memory rollups of slots that ended (they are in SQLite) so memory stays bounded. */
  private evictOldRollups(latestAt: number): void {
    const horizon = latestAt - 2 * this.options.rollupSlotMs;
    for (const [key, acc] of this.rollups) if (acc.slotStart < horizon) this.rollups.delete(key);
  }

  /** Deletes raw samples past retention. Returns rows deleted. */
  prune(now: number): number {
    return this.stmts.pruneRaw.run(now - this.options.rawRetentionMs).changes;
  }
}

export interface RollupRow {
  device_id: string;
  slot_start: number;
  firmware_version: string;
  samples: number;
  first_at: number;
  last_at: number;
  exposure_ms: number;
  crashes: number;
  errors: number;
  reboots: number;
  agent_restarts: number;
  metrics_json: string;
  error_lines: string;
}

export function rollupFromRow(row: RollupRow): RollupAcc {
  const metrics = JSON.parse(row.metrics_json) as Partial<Record<ContinuousMetric, MetricSums>>;
  // JSON has no -Infinity: an empty max came back as null.
  for (const s of Object.values(metrics)) if (s && typeof s.max !== 'number') s.max = Number.NEGATIVE_INFINITY;
  return {
    deviceId: row.device_id,
    slotStart: row.slot_start,
    firmwareVersion: row.firmware_version,
    samples: row.samples,
    firstAt: row.first_at,
    lastAt: row.last_at,
    exposureMs: row.exposure_ms,
    events: { crashes: row.crashes, errors: row.errors, reboots: row.reboots, agentRestarts: row.agent_restarts },
    metrics,
    errorLines: JSON.parse(row.error_lines) as string[],
  };
}
