/**
 * The telemetry writer with its real thread: raw telemetry handed over, parsed and committed there;
 * versions and bad messages reported back; the queue bound; a failed commit and a crashed thread
 * counted as lost, the thread restarted; a clear error when the database cannot be opened.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/clock.js';
import { Counters } from '../../coordinator/metrics.js';
import type { Sql } from '../../coordinator/store/sql.js';
import { STORE_KINDS, type StoreKind } from '../support/postgres.js';
import { openTelemetryTestStore } from '../support/telemetry-stores.js';
import { TelemetryWriter, type TelemetryWriterOptions } from '../../coordinator/telemetry/telemetry-writer.js';
import type { BadTelemetry, VersionNote } from '../../coordinator/telemetry/telemetry-batch.js';
import { telemetryPayload, tempDir, waitFor } from './helpers.js';
import { freePort } from '../support/processes.js';

const T0 = 1_800_000_000_000;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Rig {
  writer: TelemetryWriter;
  counters: Counters;
  notes: VersionNote[];
  bad: { bad: BadTelemetry[]; count: number }[];
  db: Sql;
}

async function rig(kind: StoreKind, over: Partial<TelemetryWriterOptions> = {}): Promise<Rig> {
  const store = await openTelemetryTestStore(kind);
  const db = store.sql;
  const counters = new Counters();
  const notes: VersionNote[] = [];
  const bad: { bad: BadTelemetry[]; count: number }[] = [];
  const writer = await TelemetryWriter.start({
    location: store.location,
    store: { rollupSlotMs: 60_000, rawRetentionMs: 3_600_000, maxExposureGapMs: 300_000 },
    flushIntervalMs: 3_600_000,
    maxBatch: 10_000,
    maxQueue: 10_000,
    timers: systemClock,
    logger: pino({ level: 'silent' }),
    counters,
    onVersions: (n) => notes.push(...n),
    bad: { telemetry: (b, count) => void bad.push({ bad: [...b], count }) },
    ...over,
  });
  cleanups.push(() => writer.stop());
  return { writer, counters, notes, bad, db };
}

const payload = (deviceId: string, seq: number, version = '1.0.0'): Buffer => telemetryPayload(deviceId, seq, { firmwareVersion: version, at: T0 });

const samples = async (db: Sql): Promise<number> => (await db.get<{ n: number }>('SELECT COALESCE(SUM(n), 0) AS n FROM telemetry_samples'))!.n;

describe.each(STORE_KINDS)('telemetry writer on %s', (kind) => {
  it('parses and stores on its thread, reporting versions and bad telemetry back', async () => {
    const r = await rig(kind);
    for (let seq = 1; seq <= 3; seq++) expect(r.writer.enqueue('dev-1', payload('dev-1', seq), T0 + seq * 1000)).toBe(true);
    r.writer.enqueue('dev-2', payload('dev-2', 1, '2.0.0'), T0);
    r.writer.enqueue('dev-2', Buffer.from('{"v":1'), T0);
    expect(r.writer.pending).toBe(5);
    expect(await r.writer.flush()).toBe(4);
    expect(r.writer.pending).toBe(0);
    expect(r.writer.written).toBe(4);
    expect(r.counters.get('ingest.telemetry')).toBe(4);
    expect(await samples(r.db)).toBe(4);
    expect(r.notes).toEqual([
      { deviceId: 'dev-1', firmwareVersion: '1.0.0', slot: 'A' },
      { deviceId: 'dev-2', firmwareVersion: '2.0.0', slot: 'A' },
    ]);
    expect(r.bad).toHaveLength(1);
    expect(r.bad[0]!.count).toBe(1);
    expect(r.bad[0]!.bad[0]!.deviceId).toBe('dev-2');
  });

  it('commits on its own within the flush interval', async () => {
    const r = await rig(kind, { flushIntervalMs: 50 });
    r.writer.enqueue('dev-1', payload('dev-1', 1), T0);
    await waitFor(() => r.writer.written === 1, 'committed without a flush', 5_000);
    expect(await samples(r.db)).toBe(1);
  });

  it('commits a full batch at once', async () => {
    const r = await rig(kind, { maxBatch: 3 });
    for (let seq = 1; seq <= 3; seq++) r.writer.enqueue('dev-1', payload('dev-1', seq), T0 + seq);
    await waitFor(() => r.writer.written === 3, 'full batch committed', 5_000);
  });

  it('drops and counts telemetry past maxQueue, and accepts again once committed', async () => {
    const r = await rig(kind, { maxQueue: 2 });
    expect([1, 2, 3].map((seq) => r.writer.enqueue('dev-1', payload('dev-1', seq), T0 + seq))).toEqual([true, true, false]);
    expect(r.counters.get('telemetry.dropped')).toBe(1);
    expect(await r.writer.flush()).toBe(2);
    expect(r.writer.enqueue('dev-1', payload('dev-1', 4), T0 + 4)).toBe(true);
  });

  it('counts a failed commit as lost and keeps going', async () => {
    const r = await rig(kind);
    r.writer.enqueue('dev-1', payload('dev-1', 1), T0);
    await r.writer.flush();
    await r.db.run('DROP TABLE telemetry_samples');
    r.writer.enqueue('dev-1', payload('dev-1', 2), T0 + 1);
    expect(await r.writer.flush()).toBe(0);
    expect(r.counters.get('telemetry.lost')).toBe(1);
    expect(r.counters.get('telemetry.flush.errors')).toBe(1);
    expect(r.writer.pending).toBe(0);
  });

  it('restarts a crashed thread, counting what it held as lost', async () => {
    const r = await rig(kind, { workerUrl: new URL('./crashing-telemetry-worker.js', import.meta.url) });
    r.writer.enqueue('dev-1', payload('dev-1', 1), T0);
    expect(await r.writer.flush()).toBe(1);
    r.writer.enqueue('crash-now', payload('crash-now', 1), T0);
    // The flush resolves when the thread dies: the batch it held is lost, not waited for forever.
    expect(await r.writer.flush()).toBe(0);
    expect(r.counters.get('telemetry.thread.crashes')).toBe(1);
    expect(r.counters.get('telemetry.lost')).toBe(1);
    // Telemetry queued while the thread restarts is stored by the new one.
    r.writer.enqueue('dev-1', payload('dev-1', 2), T0 + 1);
    await waitFor(async () => (await r.writer.flush()) === 1 || r.writer.written === 2, 'stored by the restarted thread', 10_000, 200);
    expect(await samples(r.db)).toBe(2);
  });

  it('stops after committing what it holds; stopping twice is safe and later telemetry is refused', async () => {
    const r = await rig(kind);
    r.writer.enqueue('dev-1', payload('dev-1', 1), T0);
    await r.writer.stop();
    await r.writer.stop();
    expect(await samples(r.db)).toBe(1);
    // The final commit's report arrived before the thread ended: counted as written, nothing lost.
    expect(r.writer.written).toBe(1);
    expect(r.counters.get('telemetry.lost')).toBe(0);
    expect(r.writer.enqueue('dev-1', payload('dev-1', 2), T0 + 1)).toBe(false);
  });

  it.runIf(kind === 'sqlite')('says what to check when the telemetry database cannot be opened', async () => {
    const t = tempDir('fleet-telemetry-');
    cleanups.push(t.cleanup);
    await expect(
      TelemetryWriter.start({
        location: t.dir, // a directory, not a database file
        store: { rollupSlotMs: 60_000, rawRetentionMs: 3_600_000, maxExposureGapMs: 300_000 },
        flushIntervalMs: 100, maxBatch: 10, maxQueue: 10, timers: systemClock, logger: pino({ level: 'silent' }), counters: new Counters(),
        onVersions: () => undefined, bad: { telemetry: () => undefined },
      }),
    ).rejects.toThrow(/cannot start telemetry storage .*check the data directory/);
  });

  it.runIf(kind === 'postgres')('says which server it cannot reach, without the password', async () => {
    const port = await freePort();
    await expect(
      TelemetryWriter.start({
        location: `postgres://fleet:secret@127.0.0.1:${port}/fleet`,
        store: { rollupSlotMs: 60_000, rawRetentionMs: 3_600_000, maxExposureGapMs: 300_000 },
        flushIntervalMs: 100, maxBatch: 10, maxQueue: 10, timers: systemClock, logger: pino({ level: 'silent' }), counters: new Counters(),
        onVersions: () => undefined, bad: { telemetry: () => undefined },
      }),
    ).rejects.toThrow(new RegExp(`cannot start telemetry storage \\(postgres://fleet:\\*\\*\\*@127\\.0\\.0\\.1:${port}/fleet\\).*cannot reach PostgreSQL`));
  });
});
