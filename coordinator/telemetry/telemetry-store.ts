/**
 * Telemetry into the telemetry tables (telemetry-schema.ts; SQLite's telemetry.db or the PostgreSQL
 * database): parsed messages are aggregated in memory as they arrive and written in one transaction
 * per batch — per-device rollups per time slot, the batch's raw samples packed per device
 * (sample-chunks.ts), the last cumulative counters, each table in multi-row statements. Raw samples
 * are kept for a bounded time; rollups carry events, exposure and metric sums. I/O shell (Sql); in
 * the coordinator it runs on the telemetry thread (telemetry-worker.ts).
 *
 * What a message needs from the store (its device's last reading, a rollup written before a restart)
 * is read before the message is added: `prepare` loads it for a whole batch in a few queries, and
 * `add` then runs without I/O. Only devices this store has not seen yet, and slots it no longer holds,
 * are read; a steady stream reads nothing.
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
import type { Sql, SqlValue } from '../store/sql.js';
import { placeholders } from '../store/sql.js';
import { SampleChunk } from './sample-chunks.js';
import { MultiRowInsert } from '../store/multi-row-insert.js';
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
  /** Rollups of slots from this one on were read when the device was first seen: any not held does not exist. */
  loadedFrom: number;
}

/** Device ids per IN list when loading (well under both databases' parameter limits). */
const LOAD_CHUNK = 500;

const PUT_SAMPLES = new MultiRowInsert('INSERT INTO telemetry_samples (device_id, firmware_version, first_at, last_at, n, data)', 6);
const PUT_COUNTERS = new MultiRowInsert(
  'INSERT INTO device_counters (device_id, at, seq, firmware_version, crashes, errors, reboots, agent_restarts, device_at, boot_count)',
  10,
  `ON CONFLICT (device_id) DO UPDATE SET at = excluded.at, seq = excluded.seq, firmware_version = excluded.firmware_version,
  crashes = excluded.crashes, errors = excluded.errors, reboots = excluded.reboots, agent_restarts = excluded.agent_restarts,
  device_at = excluded.device_at, boot_count = excluded.boot_count`,
);
// An upsert updates the row in place; a delete and re-insert would cost both.
const PUT_ROLLUPS = new MultiRowInsert(
  `INSERT INTO telemetry_rollup (device_id, slot_start, firmware_version, samples, first_at, last_at,
  exposure_ms, crashes, errors, reboots, agent_restarts, metrics, error_lines)`,
  13,
  `ON CONFLICT (device_id, slot_start, firmware_version) DO UPDATE SET samples = excluded.samples, first_at = excluded.first_at,
  last_at = excluded.last_at, exposure_ms = excluded.exposure_ms, crashes = excluded.crashes, errors = excluded.errors,
  reboots = excluded.reboots, agent_restarts = excluded.agent_restarts, metrics = excluded.metrics, error_lines = excluded.error_lines`,
);

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
  private lastEvictedHorizon: number | undefined;
  /** Rollups of slots before this were dropped from memory (they are stored). */
  private evictedBelow = Number.NEGATIVE_INFINITY;
  /** device|slot pairs read back since the last eviction (slots before a device's `loadedFrom`, or evicted). */
  private readonly reloaded = new Set<string>();
  /** The write in flight (flushes are written one after another, in order); never rejects. */
  private writing: Promise<void> = Promise.resolve();
  /** Version-change spans since start: their events are on neither cohort's side of a comparison. */
  readonly transitions: TransitionStats = { spans: 0, events: { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 } };

  constructor(
    private readonly sql: Sql,
    private readonly options: TelemetryStoreOptions,
  ) {}

  private slotOf(at: number): number {
    return Math.floor(at / this.options.rollupSlotMs) * this.options.rollupSlotMs;
  }

  /**
   * Reads what messages with these keys need and the store does not hold: the last reading and recent
   * rollups of devices not seen yet (a few IN-list queries per batch), and rollups of slots no longer
   * held in memory (rare: a message older than the slots in memory). Resolves at once when there is
   * nothing to read. Call it before `add`ing those messages (message i: `deviceIds[i]`, received at
   * `ats[i]`), and add them in the same order.
   */
  prepare(deviceIds: readonly string[], ats: ArrayLike<number>): Promise<void> {
    let fresh: Map<string, number> | undefined;
    let old: Map<string, { deviceId: string; slot: number }> | undefined;
    for (let i = 0; i < deviceIds.length; i++) {
      const deviceId = deviceIds[i]!;
      const slot = this.slotOf(ats[i]!);
      const d = this.devices.get(deviceId);
      if (!d) {
        fresh ??= new Map();
        const first = fresh.get(deviceId);
        if (first === undefined || slot < first) fresh.set(deviceId, slot);
      } else if (slot < d.loadedFrom || slot < this.evictedBelow) {
        const key = `${deviceId}|${slot}`;
        if (!this.reloaded.has(key)) (old ??= new Map()).set(key, { deviceId, slot });
      }
    }
    if (!fresh && !old) return Promise.resolve();
    return this.load(fresh, old);
  }

  /** `prepare` then `add`, for one message (tests, replays). */
  async ingest(msg: TelemetryMessage, at: number): Promise<void> {
    await this.prepare([msg.deviceId], [at]);
    this.add(msg, at);
  }

  private async load(fresh: Map<string, number> | undefined, old: Map<string, { deviceId: string; slot: number }> | undefined): Promise<void> {
    if (fresh) {
      const ids = [...fresh.keys()];
      let from = Number.POSITIVE_INFINITY;
      for (const slot of fresh.values()) if (slot < from) from = slot;
      for (let i = 0; i < ids.length; i += LOAD_CHUNK) {
        const chunk = ids.slice(i, i + LOAD_CHUNK);
        const list = placeholders(chunk.length);
        const [counters, rollups] = await Promise.all([
          this.sql.all<CountersRow>(`SELECT * FROM device_counters WHERE device_id IN (${list})`, chunk),
          this.sql.all<RollupRow>(`SELECT * FROM telemetry_rollup WHERE device_id IN (${list}) AND slot_start >= ?`, [...chunk, from]),
        ]);
        const byId = new Map(counters.map((row) => [row.device_id, row]));
        for (const id of chunk) {
          if (this.devices.has(id)) continue;
          const row = byId.get(id);
          const state =
            row && new CounterState(row.at, row.seq, row.firmware_version, row.crashes, row.errors, row.reboots, row.agent_restarts, row.device_at ?? undefined, row.boot_count ?? undefined);
          this.devices.set(id, { deviceId: id, counters: state, rollup: undefined, chunk: undefined, dirty: false, loadedFrom: from });
        }
        for (const row of rollups) this.hold(row);
      }
    }
    if (old) {
      // Those rows may be in the write in flight: read them after it.
      await this.writing;
      for (const [key, { deviceId, slot }] of old) {
        const rows = await this.sql.all<RollupRow>('SELECT * FROM telemetry_rollup WHERE device_id = ? AND slot_start = ?', [deviceId, slot]);
        for (const row of rows) this.hold(row);
        this.reloaded.add(key);
      }
    }
  }

  /**
   * Keeps a stored rollup in memory unless one for its key is held already (the held one is newer). The
   * device's own latest rollup may have been evicted but still be in use: that object, not a copy.
   */
  private hold(row: RollupRow): void {
    const key = `${row.device_id}|${row.slot_start}|${row.firmware_version}`;
    if (this.rollups.has(key)) return;
    const own = this.devices.get(row.device_id)?.rollup;
    const same = own !== undefined && own.slotStart === row.slot_start && own.firmwareVersion === row.firmware_version;
    this.rollups.set(key, same ? own : { ...rollupFromRow(row), dirty: false });
  }

  /**
   * Aggregates a parsed message into the device's in-memory rollup, counters and sample chunk at once;
   * the next flush writes them. `prepare` must have covered its device and `at` (the coordinator's
   * receive time; the device's clock may be off). Aggregating on arrival rather than at the commit lets the parsed message die young: held
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

  /**
   * Writes what the messages since the last flush changed, in one transaction. The rows are taken at
   * the call (messages added meanwhile go to the next flush); flushes are written in call order.
   * Resolves with the number of messages written; rejects when the transaction failed (those messages'
   * rows are lost, though the next flush of the same rollup or device writes its totals again).
   */
  flush(): Promise<number> {
    const count = this.unwritten;
    // Nothing new: resolves after the writes in flight, so flushes still resolve in call order.
    if (count === 0) return this.writing.then(() => 0);
    this.unwritten = 0;
    // One rollup row, one samples row and one counters row per device per batch, not per message.
    const rollups: SqlValue[] = [];
    for (const a of this.dirtyRollups) {
      rollups.push(a.deviceId, a.slotStart, a.firmwareVersion, a.samples, a.firstAt, a.lastAt, Math.round(a.exposureMs),
        a.events.crashes, a.events.errors, a.events.reboots, a.events.agentRestarts, packSums(a.metrics), JSON.stringify(a.errorLines));
      a.dirty = false;
    }
    const samples: SqlValue[] = [];
    for (const c of this.chunks) samples.push(c.deviceId, c.firmwareVersion, c.firstAt, c.lastAt, c.length, c.pack());
    const counters: SqlValue[] = [];
    for (const d of this.dirtyDevices) {
      const c = d.counters!;
      counters.push(d.deviceId, c.at, c.seq, c.version, c.crashes, c.errors, c.reboots, c.agentRestarts, c.deviceAt ?? null, c.bootCount ?? null);
      d.dirty = false;
      d.chunk = undefined;
    }
    this.dirtyRollups = [];
    this.dirtyDevices = [];
    this.chunks = [];
    // Safe before the write ends: what is evicted is in `rollups` above, and reading it back waits for the write.
    this.evictOldRollups(this.latestAt);
    const write = this.writing.then(() =>
      this.sql.transaction(async (tx) => {
        await PUT_ROLLUPS.run(tx, rollups);
        await PUT_SAMPLES.run(tx, samples);
        await PUT_COUNTERS.run(tx, counters);
      }),
    );
    this.writing = write.catch(() => undefined);
    return write.then(() => count);
  }

  /** Resolves when every flush called so far is written (or failed). */
  settled(): Promise<void> {
    return this.writing;
  }

  private device(deviceId: string): DeviceState {
    const d = this.devices.get(deviceId);
    if (!d) throw new Error(`telemetry of ${deviceId} added before TelemetryStore.prepare read its device`);
    return d;
  }

  private rollupFor(deviceId: string, slotStart: number, version: string, at: number): LiveRollup {
    const key = `${deviceId}|${slotStart}|${version}`;
    let acc = this.rollups.get(key);
    if (!acc) {
      // Not held: not stored either (`prepare` read whatever was).
      acc = {
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
    const slotStart = this.slotOf(at);
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

  /**
   * Drops in-memory rollups of slots that ended (they are stored) so memory stays bounded. A
   * device's own `rollup` may still point at its last one until its next message replaces it.
   */
  private evictOldRollups(latestAt: number): void {
    const horizon = latestAt - 2 * this.options.rollupSlotMs;
    if (this.lastEvictedHorizon !== undefined && horizon - this.lastEvictedHorizon < this.options.rollupSlotMs) return;
    this.lastEvictedHorizon = horizon;
    if (horizon > this.evictedBelow) this.evictedBelow = horizon;
    this.reloaded.clear();
    for (const [key, acc] of this.rollups) if (acc.slotStart < horizon) this.rollups.delete(key);
  }

  /** Deletes raw sample chunks whose newest sample is past retention. Returns chunks deleted. */
  async prune(now: number): Promise<number> {
    return (await this.sql.run('DELETE FROM telemetry_samples WHERE last_at < ?', [now - this.options.rawRetentionMs])).changes;
  }
}

/** A device's stored last reading (device_counters). */
interface CountersRow {
  device_id: string;
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
