/**
 * Telemetry into the telemetry database (telemetry-schema.ts): parsed messages are aggregated in memory
 * as they arrive and written in one transaction per batch — per-device rollups per time slot, the
 * batch's raw samples packed per device (sample-chunks.ts), the last cumulative counters. Raw samples
 * are kept for a bounded time; rollups carry events, exposure and metric sums. I/O shell (SQLite); in
 * the coordinator it runs on the telemetry thread (telemetry-worker.ts).
 *
 * Counters are cumulative, so a sample's events are the difference from the previous sample. When the
 * firmware version changed between the two, that difference spans the download, the install, the
 * update's own reboot and any power loss on the way: it belongs to neither version, so it is counted as
 * unattributed transition events and the new version starts from a fresh baseline.
 *
 * Exposure is the time between a device's samples, and a gap is charged with the time the device ran
 * in it, because the events counted across it happened in that time: the device's own clock between
 * the two samples (messages it queued while offline arrive together but carry their own times) when
 * it did not boot in between, and its uptime plus `maxExposureGapMs` when it did (it was off for an
 * unknown part of the rest). Charging a whole offline stretch's events to a capped few minutes made
 * devices that were offline look many times as crash-prone as they are. The device's clock and boot
 * count are stored with its counters, so a coordinator restart in the middle of a gap changes nothing.
 */
import type { TelemetryMessage } from '@fleet/protocol/messages';
import type { ContinuousMetric } from '@fleet/protocol/canary';
import type { Db } from '../store/db.js';
import { SampleChunk } from './sample-chunks.js';
import {
  CONTINUOUS_METRICS,
  addCounterDeltas,
  addSample,
  emptySums,
  packSums,
  unpackSums,
  type CounterValues,
  type MetricSums,
} from './rollup-math.js';

export interface TelemetryStoreOptions {
  /** Length of a rollup slot in clock ms. Default 60,000. */
  rollupSlotMs: number;
  /** Raw samples older than this are pruned. */
  rawRetentionMs: number;
  /**
   * Gaps between received samples longer than this count only the time the device says it ran
   * (its clock between samples without a boot in between, else its uptime plus this); see the header.
   */
  maxExposureGapMs: number;
}

/**
 * A device's last reading. A class, so every device's reading has one shape from the start: object
 * literals built by spreading the parsed message drifted apart in shape and made the per-message
 * updates megamorphic.
 */
class CounterState implements CounterValues {
  constructor(
    public at: number,
    public seq: number,
    public version: string,
    public crashes: number,
    public errors: number,
    public reboots: number,
    public agentRestarts: number,
    /** The device's own time and boot count at that reading (stored with it; undefined in rows written before they were). */
    public deviceAt: number | undefined,
    public bootCount: number | undefined,
  ) {}
}

/**
 * Device-hours a sample adds (ms): the receive gap while the device reports steadily; across a longer
 * gap, the time the device ran in it (see the header), never more than the receive gap plus
 * `maxGapMs` (a device clock that jumps ahead does not invent exposure).
 */
export function exposureIncrementMs(
  prev: { at: number; deviceAt: number | undefined; bootCount: number | undefined },
  msg: { at: number; bootCount: number; uptimeS: number },
  at: number,
  maxGapMs: number,
): number {
  const received = Math.max(0, at - prev.at);
  if (prev.deviceAt === undefined) return Math.min(received, maxGapMs);
  const deviceGap = msg.at - prev.deviceAt;
  // Reporting steadily. A burst of messages queued offline arrives at once: their own times count.
  if (received <= maxGapMs && deviceGap <= maxGapMs) return Math.max(received, deviceGap);
  const booted = msg.bootCount !== prev.bootCount || msg.uptimeS * 1000 < deviceGap;
  const ran = booted ? Math.min(deviceGap, msg.uptimeS * 1000 + maxGapMs) : deviceGap;
  return Math.max(0, Math.min(ran, received + maxGapMs));
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

/** A rollup being accumulated; `dirty` until the next commit writes it. */
interface LiveRollup extends RollupAcc {
  dirty: boolean;
}

/** What the store holds per device between messages: one map lookup per message finds it all. */
interface DeviceState {
  deviceId: string;
  /** The last stored reading; undefined before the device's first sample. */
  counters: CounterState | undefined;
  /** The rollup of the device's latest slot and version. */
  rollup: LiveRollup | undefined;
  /** This batch's samples on the device's current version. */
  chunk: SampleChunk | undefined;
  /** Changed in this batch (counters row to write). */
  dirty: boolean;
}

export class TelemetryStore {
  /** Messages added since the last flush, and the latest receive time among them. */
  private unwritten = 0;
  private latestAt = 0;
  private readonly devices = new Map<string, DeviceState>();
  /** Rollups by device|slot|version, for slots still open; looked up only when a device changes slot or version. */
  private readonly rollups = new Map<string, LiveRollup>();
  private dirtyRollups: LiveRollup[] = [];
  private dirtyDevices: DeviceState[] = [];
  private chunks: SampleChunk[] = [];
  private readonly stmts;
  private lastEvictedHorizon: number | undefined;
  /** Version-change spans since start: their events are on neither cohort's side of a comparison. */
  readonly transitions: TransitionStats = { spans: 0, events: { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 } };

  constructor(
    private readonly db: Db,
    private readonly options: TelemetryStoreOptions,
  ) {
    this.stmts = {
      putSamples: db.prepare('INSERT INTO telemetry_samples (device_id, firmware_version, first_at, last_at, n, data) VALUES (?, ?, ?, ?, ?, ?)'),
      getCounters: db.prepare('SELECT * FROM device_counters WHERE device_id = ?'),
      putCounters: db.prepare(`INSERT INTO device_counters (device_id, at, seq, firmware_version, crashes, errors, reboots, agent_restarts, device_at, boot_count)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(device_id) DO UPDATE SET at = excluded.at, seq = excluded.seq, firmware_version = excluded.firmware_version,
        crashes = excluded.crashes, errors = excluded.errors, reboots = excluded.reboots, agent_restarts = excluded.agent_restarts,
        device_at = excluded.device_at, boot_count = excluded.boot_count`),
      getRollup: db.prepare('SELECT * FROM telemetry_rollup WHERE device_id = ? AND slot_start = ? AND firmware_version = ?'),
      // An upsert updates the row in place; INSERT OR REPLACE would delete and re-insert it.
      putRollup: db.prepare(`INSERT INTO telemetry_rollup (device_id, slot_start, firmware_version, samples, first_at, last_at,
        exposure_ms, crashes, errors, reboots, agent_restarts, metrics, error_lines) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (device_id, slot_start, firmware_version) DO UPDATE SET samples = excluded.samples, first_at = excluded.first_at,
        last_at = excluded.last_at, exposure_ms = excluded.exposure_ms, crashes = excluded.crashes, errors = excluded.errors,
        reboots = excluded.reboots, agent_restarts = excluded.agent_restarts, metrics = excluded.metrics, error_lines = excluded.error_lines`),
      pruneSamples: db.prepare('DELETE FROM telemetry_samples WHERE last_at < ?'),
    };
  }

  /**
   * Aggregates a parsed message into the device's in-memory rollup, counters and sample chunk at once;
   * the next flush writes them. `at` is the coordinator's receive time (the device's clock may be
   * off). Aggregating on arrival rather than at the commit lets the parsed message die young: held
   * until the commit, every message survived a scavenge or two and was copied with it.
   */
  add(msg: TelemetryMessage, at: number): void {
    this.apply(msg, at);
    this.unwritten++;
    if (at > this.latestAt) this.latestAt = at;
  }

  get pending(): number {
    return this.unwritten;
  }

  /** Writes what the messages since the last flush changed, in one transaction. Returns their number. */
  flush(): number {
    const count = this.unwritten;
    if (count === 0) return 0;
    this.unwritten = 0;
    const run = this.db.transaction(() => {
      // One rollup row, one samples row and one counters row per device per batch, not per message.
      for (const r of this.dirtyRollups) this.writeRollup(r);
      for (const c of this.chunks) this.stmts.putSamples.run(c.deviceId, c.firmwareVersion, c.firstAt, c.lastAt, c.length, c.pack());
      for (const d of this.dirtyDevices) {
        const c = d.counters!;
        this.stmts.putCounters.run(d.deviceId, c.at, c.seq, c.version, c.crashes, c.errors, c.reboots, c.agentRestarts, c.deviceAt ?? null, c.bootCount ?? null);
      }
    });
    try {
      run();
    } finally {
      for (const r of this.dirtyRollups) r.dirty = false;
      for (const d of this.dirtyDevices) {
        d.dirty = false;
        d.chunk = undefined;
      }
      this.dirtyRollups = [];
      this.dirtyDevices = [];
      this.chunks = [];
    }
    this.evictOldRollups(this.latestAt);
    return count;
  }

  private device(deviceId: string): DeviceState {
    let d = this.devices.get(deviceId);
    if (d) return d;
    const row = this.stmts.getCounters.get(deviceId) as CountersRow | undefined;
    const counters =
      row && new CounterState(row.at, row.seq, row.firmware_version, row.crashes, row.errors, row.reboots, row.agent_restarts, row.device_at ?? undefined, row.boot_count ?? undefined);
    d = { deviceId, counters, rollup: undefined, chunk: undefined, dirty: false };
    this.devices.set(deviceId, d);
    return d;
  }

  private rollupFor(deviceId: string, slotStart: number, version: string, at: number): LiveRollup {
    const key = `${deviceId}|${slotStart}|${version}`;
    let acc = this.rollups.get(key);
    if (!acc) {
      const row = this.stmts.getRollup.get(deviceId, slotStart, version) as RollupRow | undefined;
      acc = row
        ? { ...rollupFromRow(row), dirty: false }
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
            dirty: false,
          };
      this.rollups.set(key, acc);
    }
    return acc;
  }

  private apply(msg: TelemetryMessage, at: number): void {
    const id = msg.deviceId;
    const version = msg.firmwareVersion;
    const d = this.device(id);
    const prev = d.counters;
    // MQTT keeps one connection's messages in order, so receive order is the order; the same seq
    // twice is a redelivery. (seq may restart with the agent, so it is not compared for order.)
    if (prev && msg.seq === prev.seq && at - prev.at < this.options.maxExposureGapMs) return;
    const slotStart = Math.floor(at / this.options.rollupSlotMs) * this.options.rollupSlotMs;
    let acc = d.rollup;
    if (!acc || acc.slotStart !== slotStart || acc.firmwareVersion !== version) acc = d.rollup = this.rollupFor(id, slotStart, version, at);
    if (!acc.dirty) {
      acc.dirty = true;
      this.dirtyRollups.push(acc);
    }
    acc.samples++;
    if (at < acc.firstAt) acc.firstAt = at;
    if (at > acc.lastAt) acc.lastAt = at;
    const cur = msg.counters;
    if (!prev) {
      // The first reading is the baseline: nothing before it can be dated.
      d.counters = new CounterState(at, msg.seq, version, cur.crashes, cur.errors, cur.reboots, cur.agentRestarts, msg.at, msg.bootCount);
    } else {
      const sameVersion = prev.version === version;
      if (sameVersion) acc.exposureMs += exposureIncrementMs(prev, msg, at, this.options.maxExposureGapMs);
      // Across a version change the difference is install-time events (see the header): re-baseline.
      if (!sameVersion) this.transitions.spans++;
      addCounterDeltas(sameVersion ? acc.events : this.transitions.events, prev, cur);
      prev.crashes = cur.crashes;
      prev.errors = cur.errors;
      prev.reboots = cur.reboots;
      prev.agentRestarts = cur.agentRestarts;
      prev.at = at;
      prev.seq = msg.seq;
      prev.version = version;
      prev.deviceAt = msg.at;
      prev.bootCount = msg.bootCount;
    }
    if (!d.dirty) {
      d.dirty = true;
      this.dirtyDevices.push(d);
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
    let chunk = d.chunk;
    if (!chunk || chunk.firmwareVersion !== version) {
      chunk = d.chunk = new SampleChunk(id, version);
      this.chunks.push(chunk);
    }
    chunk.add(at, m);
  }

  private writeRollup(a: RollupAcc): void {
    this.stmts.putRollup.run(a.deviceId, a.slotStart, a.firmwareVersion, a.samples, a.firstAt, a.lastAt, Math.round(a.exposureMs),
      a.events.crashes, a.events.errors, a.events.reboots, a.events.agentRestarts, packSums(a.metrics), JSON.stringify(a.errorLines));
  }

  /**
   * Drops in-memory rollups of slots that ended (they are in SQLite) so memory stays bounded. A
   * device's own `rollup` may still point at its last one until its next message replaces it.
   */
  private evictOldRollups(latestAt: number): void {
    const horizon = latestAt - 2 * this.options.rollupSlotMs;
    if (this.lastEvictedHorizon !== undefined && horizon - this.lastEvictedHorizon < this.options.rollupSlotMs) return;
    this.lastEvictedHorizon = horizon;
    for (const [key, acc] of this.rollups) if (acc.slotStart < horizon) this.rollups.delete(key);
  }

  /** Deletes raw sample chunks whose newest sample is past retention. Returns chunks deleted. */
  prune(now: number): number {
    return this.stmts.pruneSamples.run(now - this.options.rawRetentionMs).changes;
  }
}

/** A device's stored last reading (device_counters). */
interface CountersRow {
  at: number;
  seq: number;
  firmware_version: string;
  crashes: number;
  errors: number;
  reboots: number;
  agent_restarts: number;
  device_at: number | null;
  boot_count: number | null;
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
  /** Packed metric sums (rollup-math.ts packSums). */
  metrics: Uint8Array;
  error_lines: string;
}

export function rollupFromRow(row: RollupRow): RollupAcc {
  const metrics = unpackSums(row.metrics);
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
