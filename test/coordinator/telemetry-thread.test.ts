/**
 * The telemetry hand-off and thread: raw batches built on the broker's thread, parsed with the
 * protocol schema on the telemetry thread (bad ones described and counted, versions noted once),
 * committed in one transaction, failures reported as lost; packed sample chunks round-trip.
 */
import { describe, expect, it } from 'vitest';
import { BatchBuilder, batchDeviceIds, decodeBatch, type TelemetryBatch, type VersionNote } from '../../coordinator/telemetry/telemetry-batch.js';
import { TelemetryThread } from '../../coordinator/telemetry/telemetry-thread.js';
import { SampleChunk, unpackSamples } from '../../coordinator/telemetry/sample-chunks.js';
import { STORE_KINDS } from '../support/postgres.js';
import { openTelemetryTestStore } from '../support/telemetry-stores.js';
import type { TelemetryMessage } from '../../protocol/messages.js';

const T0 = 1_800_000_000_000;
const OPTS = { rollupSlotMs: 60_000, rawRetentionMs: 3_600_000, maxExposureGapMs: 300_000 };

function msg(deviceId: string, seq: number, over: Partial<TelemetryMessage> = {}): TelemetryMessage {
  return {
    v: 1, kind: 'telemetry', deviceId, firmwareVersion: '1.0.0', slot: 'A', uptimeS: seq, bootCount: 1,
    metrics: { cpuPct: 10 + seq, temperatureC: 40 }, counters: { crashes: 0, agentRestarts: 0, errors: seq, reboots: 0 },
    custom: {}, logs: [], seq, at: T0, ...over,
  };
}
const bytes = (m: unknown): Buffer => Buffer.from(typeof m === 'string' ? m : JSON.stringify(m));

/** Decodes a batch, collecting what it hands on. */
function decode(batch: TelemetryBatch, seen = new Map<string, VersionNote>()) {
  const messages: { msg: TelemetryMessage; at: number }[] = [];
  const d = decodeBatch(batch, seen, (msg, at) => messages.push({ msg, at }));
  expect(d.parsed).toBe(messages.length);
  return { ...d, messages };
}

describe('telemetry batches', () => {
  it('carries every payload byte for byte, growing its buffer past the initial size', () => {
    const b = new BatchBuilder(64);
    const sent = Array.from({ length: 50 }, (_, i) => msg(`dev-${i}`, i, { logs: [`ünïcödé line ${'x'.repeat(i * 7)}`] }));
    sent.forEach((m, i) => b.add(m.deviceId, bytes(m), T0 + i));
    const batch = b.take();
    expect(b.length).toBe(0);
    expect(batchDeviceIds(batch)).toEqual(sent.map((m) => m.deviceId));
    const decoded = decode(batch);
    expect(decoded.bad).toEqual([]);
    expect(decoded.messages.map((x) => x.msg)).toEqual(sent);
    expect(decoded.messages.map((x) => x.at)).toEqual(sent.map((_, i) => T0 + i));
    // The builder is reusable after take().
    b.add('dev-x', bytes(msg('dev-x', 1)), T0);
    expect(decode(b.take()).messages).toHaveLength(1);
  });

  it('describes bad telemetry (not JSON, wrong shape, another device id) and keeps the good', () => {
    const b = new BatchBuilder();
    b.add('dev-1', bytes('{not json'), T0);
    b.add('dev-1', bytes({ ...msg('dev-1', 1), metrics: { cpuPct: 'high' } }), T0);
    b.add('dev-1', bytes(msg('dev-2', 1)), T0);
    b.add('dev-1', bytes(msg('dev-1', 2)), T0);
    const d = decode(b.take());
    expect(d.messages.map((x) => x.msg.seq)).toEqual([2]);
    expect(d.bad.map((x) => x.deviceId)).toEqual(['dev-1', 'dev-1', 'dev-1']);
    expect(d.bad[0]!.reason).toMatch(/JSON/i);
    expect(d.bad[1]!.reason).toMatch(/cpuPct/);
    expect(d.bad[2]!.reason).toBe("payload deviceId dev-2 differs from the topic's");
  });

  it('notes a firmware version or slot once when it changes, across batches', () => {
    const seen = new Map<string, VersionNote>();
    const batch = (...ms: TelemetryMessage[]) => {
      const b = new BatchBuilder();
      for (const m of ms) b.add(m.deviceId, bytes(m), T0);
      return decode(b.take(), seen).notes;
    };
    expect(batch(msg('a', 1), msg('a', 2), msg('b', 1))).toEqual([
      { deviceId: 'a', firmwareVersion: '1.0.0', slot: 'A' },
      { deviceId: 'b', firmwareVersion: '1.0.0', slot: 'A' },
    ]);
    expect(batch(msg('a', 3))).toEqual([]);
    expect(batch(msg('a', 4, { firmwareVersion: '2.0.0', slot: 'B' }))).toEqual([{ deviceId: 'a', firmwareVersion: '2.0.0', slot: 'B' }]);
  });
});

describe('sample chunks', () => {
  it('round-trip samples, missing metrics left out, filtered by time', () => {
    const c = new SampleChunk('dev-1', '1.0.0');
    c.add(T0, { cpuPct: 12.5, memUsedMb: 300 });
    c.add(T0 + 10, { batteryPct: 80, bootTimeS: 0 });
    c.add(T0 + 20, {});
    expect([c.length, c.firstAt, c.lastAt]).toEqual([3, T0, T0 + 20]);
    const packed = c.pack();
    expect(unpackSamples(packed, T0, T0 + 20)).toEqual([
      { at: T0, values: { cpuPct: 12.5, memUsedMb: 300 } },
      { at: T0 + 10, values: { batteryPct: 80, bootTimeS: 0 } },
      { at: T0 + 20, values: {} },
    ]);
    expect(unpackSamples(packed, T0 + 5, T0 + 15).map((s) => s.at)).toEqual([T0 + 10]);
    // A copy at an odd offset (as SQLite may hand it back) reads the same.
    const odd = Buffer.alloc(packed.length + 3);
    packed.copy(odd, 3);
    expect(unpackSamples(odd.subarray(3), T0, T0 + 20)).toHaveLength(3);
    expect(() => unpackSamples(packed.subarray(1), T0, T0 + 20)).toThrow(/whole number/);
  });
});

describe.each(STORE_KINDS)('telemetry thread on %s', (kind) => {
  it('reports parsed batches at once and commits them together, once', async () => {
    const db = (await openTelemetryTestStore(kind)).sql;
    const thread = new TelemetryThread(db, OPTS);
    const b = new BatchBuilder();
    b.add('dev-1', bytes(msg('dev-1', 1)), T0);
    b.add('dev-1', bytes('nope'), T0);
    const r1 = await thread.receive(1, b.take());
    expect(r1).toMatchObject({ type: 'parsed', id: 1, received: 2, parsed: 1, badCount: 1, lost: 0 });
    b.add('dev-1', bytes(msg('dev-1', 2)), T0 + 1_000);
    await thread.receive(2, b.take());
    expect(thread.queued).toBe(2);
    expect(await thread.commit()).toEqual({ type: 'stored', upTo: 2, written: 2 });
    expect(thread.commit()).toBeUndefined();
    expect(await db.get('SELECT SUM(n) AS n FROM telemetry_samples')).toEqual({ n: 2 });
    expect(await db.get('SELECT samples, errors FROM telemetry_rollup')).toEqual({ samples: 2, errors: 1 });
  });

  it('caps the bad messages it describes, counting all of them', async () => {
    const thread = new TelemetryThread((await openTelemetryTestStore(kind)).sql, OPTS);
    const b = new BatchBuilder();
    for (let i = 0; i < 50; i++) b.add('dev-1', bytes('x'), T0);
    const r = await thread.receive(1, b.take());
    expect([r.badCount, r.bad.length]).toEqual([50, 20]);
  });

  it('reports a failed commit with the messages it lost', async () => {
    const db = (await openTelemetryTestStore(kind)).sql;
    const thread = new TelemetryThread(db, OPTS);
    const b = new BatchBuilder();
    b.add('dev-1', bytes(msg('dev-1', 1)), T0);
    b.add('dev-2', bytes(msg('dev-2', 1)), T0);
    await thread.receive(7, b.take());
    await db.run('DROP TABLE telemetry_samples');
    const report = await thread.commit();
    expect(report).toMatchObject({ type: 'failed', upTo: 7, lost: 2 });
    expect(report?.type === 'failed' && report.message).toMatch(/telemetry_samples/);
    expect(thread.queued).toBe(0);
  });

  it('reports a batch lost when its devices cannot be read, and goes on with the next', async () => {
    const db = (await openTelemetryTestStore(kind)).sql;
    const thread = new TelemetryThread(db, OPTS);
    const b = new BatchBuilder();
    await db.run('ALTER TABLE device_counters RENAME TO device_counters_gone');
    b.add('dev-1', bytes(msg('dev-1', 1)), T0);
    b.add('dev-1', bytes('nope'), T0);
    const lost = await thread.receive(1, b.take());
    expect(lost).toMatchObject({ parsed: 1, badCount: 1, lost: 1 });
    expect(lost.lostReason).toMatch(/device_counters/);
    await db.run('ALTER TABLE device_counters_gone RENAME TO device_counters');
    b.add('dev-1', bytes(msg('dev-1', 2)), T0 + 1_000);
    expect(await thread.receive(2, b.take())).toMatchObject({ parsed: 1, lost: 0 });
    expect(await thread.commit()).toEqual({ type: 'stored', upTo: 2, written: 1 });
    expect(await db.get('SELECT SUM(n) AS n FROM telemetry_samples')).toEqual({ n: 1 });
  });
});
