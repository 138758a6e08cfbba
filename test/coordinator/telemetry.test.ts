/** Telemetry rollup arithmetic and the canary snapshot builder (SQLite in memory, fixed times). */
import { describe, expect, it } from 'vitest';
import { openTelemetrySqlite } from '../../coordinator/telemetry/telemetry-schema.js';
import { TelemetryStore } from '../../coordinator/telemetry/telemetry-store.js';
import { SnapshotBuilder } from '../../coordinator/telemetry/snapshot-builder.js';
import {
  addSample,
  addCounterDeltas,
  ZERO_COUNTERS,
  emptySums,
  errorSignature,
  mergeSums,
  packSums,
  percentile,
  slopePerHour,
  unpackSums,
  PACKED_SUMS_BYTES,
} from '../../coordinator/telemetry/rollup-math.js';
import { closeDatabase, openDatabase } from '../../coordinator/store/db.js';
import { SqliteSql } from '../../coordinator/store/sqlite-sql.js';
import type { Sql } from '../../coordinator/store/sql.js';
import { STORE_KINDS } from '../support/postgres.js';
import { openTelemetryTestStore } from '../support/telemetry-stores.js';
import { applyMigrations } from '../../coordinator/store/migrations.js';
import { TELEMETRY_MIGRATIONS } from '../../coordinator/telemetry/telemetry-schema.js';
import { rollupFromRow, type RollupRow } from '../../coordinator/telemetry/telemetry-store.js';
import { CanarySnapshotSchema } from '../../protocol/canary.js';
import type { TelemetryMessage } from '../../protocol/messages.js';
import { definedProps } from '../../firmware/defined-props.js';

const H = 3_600_000;
const T0 = 1_800_000_000_000;

describe('rollup math', () => {
  it.each([
    [{ crashes: 5, errors: 1, reboots: 0, agentRestarts: 0 }, { crashes: 7, errors: 1, reboots: 1, agentRestarts: 0 }, { crashes: 2, errors: 0, reboots: 1, agentRestarts: 0 }],
    [{ crashes: 5, errors: 9, reboots: 3, agentRestarts: 1 }, { crashes: 1, errors: 9, reboots: 0, agentRestarts: 1 }, { crashes: 1, errors: 0, reboots: 0, agentRestarts: 0 }],
  ])('counter deltas %#', (prev, cur, want) => {
    const into = { ...ZERO_COUNTERS };
    addCounterDeltas(into, prev, cur);
    expect(into).toEqual(want);
    // Added, not assigned: a second span adds again.
    addCounterDeltas(into, prev, cur);
    expect(into.crashes).toBe(2 * want.crashes);
  });

  it("counts nothing before a device's first reading (its counters are the baseline)", async () => {
    const db = openTelemetrySqlite(':memory:');
    const store = new TelemetryStore(db, { rollupSlotMs: 60_000, rawRetentionMs: H, maxExposureGapMs: 5 * 60_000 });
    await store.ingest(msg('first-1', '1.0.0', 0, 5, { crashes: 5, errors: 1 }), T0);
    await store.flush();
    expect(await db.get('SELECT crashes, errors, reboots, agent_restarts FROM telemetry_rollup')).toEqual({ crashes: 0, errors: 0, reboots: 0, agent_restarts: 0 });
    await db.close();
  });

  it('computes an exact least-squares slope, also when sums are merged across slots', () => {
    const whole = emptySums();
    const a = emptySums();
    const b = emptySums();
    // y = 50 + 2·t (t in hours) over 4 hours, sampled every 10 minutes.
    for (let i = 0; i <= 24; i++) {
      const t = i / 6;
      const y = 50 + 2 * t;
      addSample(whole, t, y);
      if (t < 2) addSample(a, t, y);
      else addSample(b, t - 2, y); // b measures t from its own slot start, 2 h later
    }
    expect(slopePerHour(whole)).toBeCloseTo(2, 9);
    const merged = emptySums();
    mergeSums(merged, a, 0);
    mergeSums(merged, b, 2);
    expect(slopePerHour(merged)).toBeCloseTo(2, 9);
    expect(merged.n).toBe(25);
    expect(merged.sum / merged.n).toBeCloseTo(whole.sum / whole.n, 9);
  });

  it('has no slope with fewer than 3 samples', () => {
    const s = emptySums();
    addSample(s, 0, 1);
    addSample(s, 1, 2);
    expect(slopePerHour(s)).toBeUndefined();
  });

  it('takes the nearest-rank 99th percentile', () => {
    const values = Array.from({ length: 200 }, (_, i) => i + 1);
    expect(percentile(values, 99)).toBe(198);
    expect(percentile([7], 99)).toBe(7);
  });

  it('normalises error lines into signatures', () => {
    expect(errorSignature('panic at 0xdeadbeef in task 42 after 3.5s')).toBe(errorSignature('panic at 0xcafe0000 in task 7 after 10.25s'));
  });
});

function msg(deviceId: string, version: string, seq: number, cpu: number, counters: Partial<TelemetryMessage['counters']> = {}, logs: string[] = []): TelemetryMessage {
  return {
    v: 1,
    kind: 'telemetry',
    deviceId,
    firmwareVersion: version,
    slot: 'A',
    uptimeS: seq * 60,
    bootCount: 1,
    metrics: { cpuPct: cpu, memUsedMb: 100 + seq },
    counters: { crashes: 0, agentRestarts: 0, errors: 0, reboots: 0, ...counters },
    custom: {},
    logs,
    seq,
    at: T0 + seq * 60_000,
  };
}

describe('packed rollup sums', () => {
  it('round-trip exactly, a metric never seen stays absent and an empty max stays -Infinity', () => {
    const cpu = emptySums();
    addSample(cpu, 0.1, 12.345678901234);
    addSample(cpu, 0.2, 0.1 + 0.2);
    const empty = { ...emptySums(), n: 0 };
    const packed = packSums({ cpuPct: cpu, powerW: empty });
    expect(packed.length).toBe(PACKED_SUMS_BYTES);
    expect(unpackSums(packed)).toEqual({ cpuPct: cpu });
    const onlyMax = { n: 1, sum: 0, sumsq: 0, max: Number.NEGATIVE_INFINITY, st: 0, stt: 0, sty: 0 };
    expect(unpackSums(packSums({ temperatureC: onlyMax })).temperatureC!.max).toBe(Number.NEGATIVE_INFINITY);
    expect(() => unpackSums(packed.subarray(8))).toThrow(/expected/);
  });

  it('a version-1 telemetry.db (sums as JSON) is converted by its migration, -Infinity included', () => {
    const db = openDatabase(':memory:', { migrations: TELEMETRY_MIGRATIONS.filter((m) => m.version < 2) });
    try {
      const cpu = { n: 3, sum: 60.5, sumsq: 1300.25, max: 25.5, st: 0.1, stt: 0.01, sty: 2.05 };
      const mem = { n: 1, sum: 0, sumsq: 0, max: Number.NEGATIVE_INFINITY, st: 0, stt: 0, sty: 0 };
      db.prepare(`INSERT INTO telemetry_rollup (device_id, slot_start, firmware_version, samples, first_at, last_at, exposure_ms, crashes,
        errors, reboots, agent_restarts, metrics_json, error_lines) VALUES ('d1', ?, '1.0.0', 3, ?, ?, 60000, 0, 1, 0, 0, ?, '["oops"]')`)
        .run(T0, T0, T0 + 60_000, JSON.stringify({ cpuPct: cpu, memUsedMb: mem }));
      expect(applyMigrations(db, TELEMETRY_MIGRATIONS)).toEqual([2, 3]);
      const row = db.prepare('SELECT * FROM telemetry_rollup').get() as RollupRow & { metrics_json?: string };
      expect(row.metrics_json).toBeUndefined();
      const r = rollupFromRow(row);
      expect(r.metrics).toEqual({ cpuPct: cpu, memUsedMb: mem });
      expect(r.errorLines).toEqual(['oops']);
    } finally {
      closeDatabase(db);
    }
  });
});

describe.each(STORE_KINDS)('telemetry store and snapshot builder on %s', (kind) => {
  it('summarises canary and control devices over the same window', async () => {
    const db = (await openTelemetryTestStore(kind)).sql;
    const store = new TelemetryStore(db, { rollupSlotMs: 10 * 60_000, rawRetentionMs: 48 * H, maxExposureGapMs: 5 * 60_000 });
    // One sample a minute for 2 hours; the canary crashes twice and leaks memory, the control is calm.
    for (let i = 0; i <= 120; i++) {
      const at = T0 + i * 60_000;
      await store.ingest(msg('canary-1', '2.0.0', i, i === 120 ? 99 : 20, { crashes: i >= 60 ? (i >= 90 ? 2 : 1) : 0 }, i === 61 ? ['segfault at 0x1234 pid 77'] : []), at);
      await store.ingest(msg('control-1', '1.0.0', i, 10), at);
    }
    expect(await store.flush()).toBe(242);
    const builder = new SnapshotBuilder(db, 10 * 60_000);
    const snapshot = await builder.build({
      deploymentId: 'd-1',
      wave: 0,
      fromVersions: ['1.0.0'],
      toVersion: '2.0.0',
      window: { from: T0, to: T0 + 2 * H },
      takenAt: T0 + 2 * H,
      canary: [{ deviceId: 'canary-1', hardwareModel: 'rpi4', state: 'committed', installedAt: T0, lastSeen: T0 + 2 * H }],
      control: [{ deviceId: 'control-1', hardwareModel: 'rpi4', firmwareVersion: '1.0.0', lastSeen: T0 + 2 * H }],
      silentAfterMs: 5 * 60_000,
    });
    expect(CanarySnapshotSchema.safeParse(snapshot).success).toBe(true);
    const canary = snapshot.devices.find((d) => d.deviceId === 'canary-1')!;
    const control = snapshot.devices.find((d) => d.deviceId === 'control-1')!;
    expect(canary.cohort).toBe('canary');
    expect(canary.update).toEqual({ state: 'committed' });
    expect(canary.samples).toBe(121);
    expect(canary.events.crashes).toBe(2);
    expect(canary.exposureH).toBeCloseTo(2, 6);
    expect(canary.metrics.cpuPct!.p99).toBe(20); // one spike in 121 samples is above the 99th percentile rank
    expect(canary.metrics.cpuPct!.mean).toBeCloseTo((20 * 120 + 99) / 121, 6);
    expect(canary.metrics.memUsedMb!.slopePerH).toBeCloseTo(60, 3); // +1 MB a minute
    expect(canary.errorSignatures).toEqual([errorSignature('segfault at 0x1234 pid 77')]);
    expect(canary.silent).toBe(false);
    expect(control.cohort).toBe('control');
    expect(control.events.crashes).toBe(0);
    expect(control.metrics.cpuPct!.mean).toBe(10);
  });

  it('marks a canary silent when it stopped reporting after installing, and prunes raw samples', async () => {
    const db = (await openTelemetryTestStore(kind)).sql;
    const store = new TelemetryStore(db, { rollupSlotMs: 60_000, rawRetentionMs: H, maxExposureGapMs: 5 * 60_000 });
    // One commit per minute, as a quiet fleet's telemetry arrives: one sample chunk each.
    for (let i = 0; i <= 10; i++) {
      await store.ingest(msg('quiet-1', '2.0.0', i, 5), T0 + i * 60_000);
      await store.flush();
    }
    const snapshot = await new SnapshotBuilder(db, 60_000).build({
      deploymentId: 'd-2',
      wave: 0,
      fromVersions: ['1.0.0'],
      toVersion: '2.0.0',
      window: { from: T0, to: T0 + H },
      takenAt: T0 + H,
      canary: [{ deviceId: 'quiet-1', hardwareModel: 'rpi4', state: 'trial', installedAt: T0, lastSeen: T0 + 10 * 60_000 }],
      control: [],
      silentAfterMs: 5 * 60_000,
    });
    expect(snapshot.devices[0]!.silent).toBe(true);
    // Retention 1 h at T0 + 65 min: the chunks whose newest sample is before T0 + 5 min (minutes 0..4) go.
    expect(await store.prune(T0 + H + 5 * 60_000)).toBe(5);
    const left = await db.get('SELECT SUM(n) AS n, MIN(first_at) AS first FROM telemetry_samples');
    expect(left).toEqual({ n: 6, first: T0 + 5 * 60_000 });
  });

  it('keeps a chunk that straddles the retention cut until its newest sample is past it', async () => {
    const db = (await openTelemetryTestStore(kind)).sql;
    const store = new TelemetryStore(db, { rollupSlotMs: 60_000, rawRetentionMs: H, maxExposureGapMs: 5 * 60_000 });
    for (let i = 0; i <= 10; i++) await store.ingest(msg('busy-1', '2.0.0', i, 5), T0 + i * 60_000);
    await store.flush();
    expect(await store.prune(T0 + H + 5 * 60_000)).toBe(0);
    expect(await store.prune(T0 + H + 11 * 60_000)).toBe(1);
  });
});

describe.each(STORE_KINDS)('telemetry store: counters across a firmware-version change on %s', (kind) => {
  const OPTS = { rollupSlotMs: 10 * 60_000, rawRetentionMs: 48 * H, maxExposureGapMs: 5 * 60_000 };
  const canaryEvents = async (db: Sql, deviceId: string) =>
    (await new SnapshotBuilder(db, OPTS.rollupSlotMs).build({
      deploymentId: 'd-x',
      wave: 0,
      fromVersions: ['1.0.0'],
      toVersion: '2.0.0',
      window: { from: T0, to: T0 + H },
      takenAt: T0 + H,
      canary: [{ deviceId, hardwareModel: 'rpi4', state: 'committed', installedAt: T0, lastSeen: T0 + H }],
      control: [],
      silentAfterMs: 5 * 60_000,
    })).devices[0]!;

  /**
   * Minutes 0..9 on 1.0.0; a power loss during the install (a crash, an agent restart and a reboot) and
   * the update's own reboot land between minute 9 (last 1.0.0 sample) and minute 12 (first 2.0.0
   * sample); on 2.0.0 the device crashes once at minute 20 and once at minute 30.
   */
  async function feed(store: TelemetryStore): Promise<void> {
    const install = { crashes: 1, agentRestarts: 1, reboots: 2 };
    for (let i = 0; i <= 40; i++) {
      if (i > 9 && i < 12) continue; // downloading/installing/rebooting: no samples
      const after = i >= 12;
      const crashes = (after ? install.crashes : 0) + (i >= 20 ? 1 : 0) + (i >= 30 ? 1 : 0);
      await store.ingest(msg('flip-1', after ? '2.0.0' : '1.0.0', i, 20, {
        crashes,
        agentRestarts: after ? install.agentRestarts : 0,
        reboots: after ? install.reboots : 0,
      }), T0 + i * 60_000);
    }
    await store.flush();
  }

  it('attributes the span over the install to neither version, and later events to the new one', async () => {
    const db = (await openTelemetryTestStore(kind)).sql;
    const store = new TelemetryStore(db, OPTS);
    await feed(store);
    const d = await canaryEvents(db, 'flip-1');
    // The crash, agent restart and both reboots during the install are not the new version's.
    expect(d.events).toEqual({ crashes: 2, errors: 0, reboots: 0, agentRestarts: 0 });
    expect(store.transitions).toEqual({ spans: 1, events: { crashes: 1, errors: 0, reboots: 2, agentRestarts: 1 } });
    // Nor the old version's: its rollups have no events.
    const old = await db.get('SELECT SUM(crashes) AS c, SUM(reboots) AS r FROM telemetry_rollup WHERE firmware_version = ?', ['1.0.0']);
    expect(old).toEqual({ c: 0, r: 0 });
    // Exposure on 2.0.0 starts at its first sample: minutes 12..40.
    expect(d.exposureH).toBeCloseTo(28 / 60, 6);
  });

  it('re-baselines the same way when the coordinator restarted in between (version from the stored counters)', async () => {
    const db = (await openTelemetryTestStore(kind)).sql;
    const first = new TelemetryStore(db, OPTS);
    // Minutes 0..9 through the first store, then a new store (a coordinator restart) takes over.
    for (let i = 0; i <= 9; i++) await first.ingest(msg('flip-2', '1.0.0', i, 20), T0 + i * 60_000);
    await first.flush();
    const second = new TelemetryStore(db, OPTS);
    for (let i = 12; i <= 40; i++) {
      await second.ingest(msg('flip-2', '2.0.0', i, 20, { crashes: 1 + (i >= 20 ? 1 : 0), reboots: 2, agentRestarts: 1 }), T0 + i * 60_000);
    }
    await second.flush();
    expect((await canaryEvents(db, 'flip-2')).events).toEqual({ crashes: 1, errors: 0, reboots: 0, agentRestarts: 0 });
    expect(second.transitions.spans).toBe(1);
    // Without a version change a restart keeps attributing: the crash at minute 20 counted above.
  });

  it('still counts a rollback\'s later events on the old version, not the span back', async () => {
    const db = (await openTelemetryTestStore(kind)).sql;
    const store = new TelemetryStore(db, OPTS);
    await store.ingest(msg('back-1', '2.0.0', 0, 20), T0);
    await store.ingest(msg('back-1', '2.0.0', 1, 20, { crashes: 3 }), T0 + 60_000);
    await store.ingest(msg('back-1', '1.0.0', 2, 20, { crashes: 4, reboots: 1 }), T0 + 2 * 60_000);
    await store.ingest(msg('back-1', '1.0.0', 3, 20, { crashes: 5, reboots: 1 }), T0 + 3 * 60_000);
    await store.flush();
    const sum = await db.all('SELECT firmware_version AS v, SUM(crashes) AS c, SUM(reboots) AS r FROM telemetry_rollup GROUP BY firmware_version ORDER BY v');
    expect(sum).toEqual([{ v: '1.0.0', c: 1, r: 0 }, { v: '2.0.0', c: 3, r: 0 }]);
  });
});

describe.each(STORE_KINDS)('telemetry store: an offline gap across a coordinator restart on %s', (kind) => {
  const OPTS = { rollupSlotMs: 10 * 60_000, rawRetentionMs: 48 * H, maxExposureGapMs: 5 * 60_000 };
  /** Minutes 0..10, offline until minute 130, then minutes 130..140; `boot` describes the return. */
  const messages = (id: string, boot?: { bootCount: number; uptimeS: number }): [TelemetryMessage, number][] => {
    const out: [TelemetryMessage, number][] = [];
    for (const i of [...Array.from({ length: 11 }, (_, k) => k), ...Array.from({ length: 11 }, (_, k) => 130 + k)]) {
      const m = msg(id, '1.0.0', i, 20, { crashes: i >= 130 ? 3 : 0 });
      out.push([i >= 130 && boot ? { ...m, bootCount: boot.bootCount, uptimeS: boot.uptimeS + (i - 130) * 60 } : m, T0 + i * 60_000]);
    }
    return out;
  };
  const exposureMs = async (db: Sql, id: string): Promise<number> =>
    (await db.get<{ e: number }>('SELECT SUM(exposure_ms) AS e FROM telemetry_rollup WHERE device_id = ?', [id]))!.e;

  it.each([
    ['ran through the gap', undefined, 140],
    // Booted in the gap, up 30 minutes when it came back: the rest of the gap is charged with the cap.
    ['rebooted in the gap', { bootCount: 2, uptimeS: 30 * 60 }, 10 + 30 + 5 + 10],
  ] as const)('charges the gap the same whether or not the coordinator restarted in it (%s)', async (_what, boot, minutes) => {
    const id = 'gap-1';
    const all = messages(id, boot);
    // One store throughout.
    const steady = (await openTelemetryTestStore(kind)).sql;
    const store = new TelemetryStore(steady, OPTS);
    for (const [m, at] of all) await store.ingest(m, at);
    await store.flush();
    // The same messages with the telemetry store closed and reopened by a new TelemetryStore in the gap.
    const restarted = await openTelemetryTestStore(kind);
    const first = new TelemetryStore(restarted.sql, OPTS);
    for (const [m, at] of all.slice(0, 11)) await first.ingest(m, at);
    await first.flush();
    const reopened = await restarted.reopen();
    const second = new TelemetryStore(reopened, OPTS);
    for (const [m, at] of all.slice(11)) await second.ingest(m, at);
    await second.flush();
    expect(await exposureMs(steady, id)).toBe(minutes * 60_000);
    const rows = (db: Sql) => db.all('SELECT * FROM telemetry_rollup ORDER BY slot_start');
    expect(await rows(reopened)).toEqual(await rows(steady));
    expect(await reopened.get('SELECT device_at, boot_count FROM device_counters')).toEqual({ device_at: all.at(-1)![0].at, boot_count: boot?.bootCount ?? 1 });
  });

  it.runIf(kind === 'sqlite')('falls back to the capped gap once for a reading stored before the device clock was', async () => {
    const db = openDatabase(':memory:', { migrations: TELEMETRY_MIGRATIONS.filter((m) => m.version < 3) });
    try {
      db.prepare(`INSERT INTO device_counters (device_id, at, seq, firmware_version, crashes, errors, reboots, agent_restarts)
        VALUES ('old-2', ?, 10, '1.0.0', 0, 0, 0, 0)`).run(T0 + 10 * 60_000);
      expect(applyMigrations(db, TELEMETRY_MIGRATIONS)).toEqual([3]);
      const sql = new SqliteSql(db);
      const store = new TelemetryStore(sql, OPTS);
      for (const [m, at] of messages('old-2').slice(11)) await store.ingest(m, at);
      await store.flush();
      // 5 minutes for the gap (the cap), then 10 minutes of steady reports.
      expect(await exposureMs(sql, 'old-2')).toBe(15 * 60_000);
    } finally {
      closeDatabase(db);
    }
  });
});

describe.each(STORE_KINDS)('snapshot builder: warm-up after the commit on %s', (kind) => {
  /** A canary that committed at T0 + 3 min: 90 % CPU (and a crash) for 4 minutes after it, then 20 %. */
  async function seed(rollupSlotMs: number): Promise<SnapshotBuilder> {
    const db = (await openTelemetryTestStore(kind)).sql;
    const store = new TelemetryStore(db, { rollupSlotMs, rawRetentionMs: 48 * H, maxExposureGapMs: 5 * 60_000 });
    for (let i = 0; i <= 60; i++) {
      const boot = i >= 3 && i < 7;
      await store.ingest(msg('warm-1', '2.0.0', i, boot ? 90 : 20, { crashes: i >= 4 ? 1 : 0 }), T0 + i * 60_000);
    }
    await store.flush();
    return new SnapshotBuilder(db, rollupSlotMs);
  }
  const request = (warmUpMs?: number) => ({
    deploymentId: 'd-3',
    wave: 0,
    fromVersions: ['1.0.0'],
    toVersion: '2.0.0',
    window: { from: T0, to: T0 + H },
    takenAt: T0 + H,
    canary: [{ deviceId: 'warm-1', hardwareModel: 'rpi4', state: 'committed' as const, installedAt: T0, runningSince: T0 + 3 * 60_000, lastSeen: T0 + H }],
    control: [],
    silentAfterMs: 5 * 60_000,
    ...definedProps({ warmUpMs }),
  });

  it.each([
    ['slots aligned with the warm-up', 60_000],
    ['a slot straddling the end of the warm-up (raw samples fill it)', 10 * 60_000],
  ])('leaves the boot spike out of the CPU by default: %s', async (_name, slotMs) => {
    const d = (await (await seed(slotMs)).build(request())).devices[0]!;
    // Warm-up ends at T0 + 8 min: samples at minutes 8..60 count, all at 20 %.
    expect(d.metrics.cpuPct).toMatchObject({ n: 53, mean: 20, p99: 20 });
    // Event counters are not warmed up: the crash during it counts, and so does the exposure.
    expect(d.events.crashes).toBe(1);
    expect(d.samples).toBe(61);
    expect(d.silent).toBe(false);
  });

  it('a warm-up of 0 keeps every sample, spike included', async () => {
    const d = (await (await seed(60_000)).build(request(0))).devices[0]!;
    expect(d.metrics.cpuPct!.n).toBe(61);
    expect(d.metrics.cpuPct!.p99).toBe(90);
  });

  it('a longer warm-up skips more', async () => {
    const d = (await (await seed(10 * 60_000)).build(request(30 * 60_000))).devices[0]!;
    expect(d.metrics.cpuPct).toMatchObject({ n: 28, mean: 20 }); // minutes 33..60
  });
});
