/**
 * Micro-benchmark of the telemetry thread's work per message, without MQTT:
 *   1. store  — TelemetryStore: parsed messages → one transaction per batch (rollups, packed samples, counters)
 *   2. thread — TelemetryThread: raw payload batches (as the broker's thread hands them over) → zod
 *               parse → store, i.e. everything the telemetry thread does per message
 * The end-to-end figure against a bare broker is `npm run bench -- --only ingest` (simulator/bench).
 * Run: `npm run build && node coordinator/dist/bench/ingest-bench.js [--devices 1000] [--batch 2000]
 * [--store postgres://…]` — SQLite (a telemetry.db in a temporary directory) by default; with
 * `--store`, a PostgreSQL database (emptied of telemetry first: point it at a scratch database).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sql } from '../store/sql.js';
import { openPostgresStore } from '../store/open-store.js';
import { openTelemetrySqlite } from '../telemetry/telemetry-schema.js';
import { TelemetryStore } from '../telemetry/telemetry-store.js';
import { TelemetryThread } from '../telemetry/telemetry-thread.js';
import { BatchBuilder } from '../telemetry/telemetry-batch.js';
import type { TelemetryMessage } from '@fleet/protocol/messages';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const DEVICES = arg('devices', 1000);
const storeAt = process.argv.indexOf('--store');
const POSTGRES = storeAt >= 0 ? process.argv[storeAt + 1] : undefined;
const BATCH = arg('batch', 2000);
const TOTAL = 200_000;
const T0 = 1_800_000_000_000;
const OPTIONS = { rollupSlotMs: 60_000, rawRetentionMs: 48 * 3600_000, maxExposureGapMs: 300_000 };

function telemetry(i: number): TelemetryMessage {
  const seq = Math.floor(i / DEVICES) + 1;
  return {
    v: 1,
    kind: 'telemetry',
    deviceId: `bench-${String(i % DEVICES).padStart(5, '0')}`,
    firmwareVersion: '1.0.0',
    slot: 'A',
    uptimeS: seq * 10,
    bootCount: 1,
    metrics: { cpuPct: 20 + (seq % 7), memUsedMb: 300 + (seq % 13), temperatureC: 45, powerW: 3.4, bootTimeS: 24 },
    counters: { crashes: 0, agentRestarts: 0, errors: seq % 3, reboots: 0 },
    custom: {},
    logs: [],
    seq,
    at: T0 + i,
  };
}

async function open(): Promise<{ sql: Sql; close(): Promise<void> }> {
  if (POSTGRES) {
    const sql = await openPostgresStore(POSTGRES);
    for (const table of ['telemetry_rollup', 'telemetry_samples', 'device_counters']) await sql.run(`DELETE FROM ${table}`);
    return { sql, close: () => sql.close() };
  }
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-'));
  const sql = openTelemetrySqlite(join(dir, 'telemetry.db'));
  return {
    sql,
    close: async () => {
      await sql.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function run(name: string, body: (sql: Sql) => Promise<void>): Promise<void> {
  const store = await open();
  const t0 = performance.now();
  await body(store.sql);
  const ms = performance.now() - t0;
  console.log(`${name} (${store.sql.dialect}): ${TOTAL} messages from ${DEVICES} devices, ${BATCH} per transaction: ${Math.round(TOTAL / (ms / 1000))} msg/s (${((ms * 1000) / TOTAL).toFixed(1)} µs/msg)`);
  await store.close();
}

await run('store', async (sql) => {
  const store = new TelemetryStore(sql, OPTIONS);
  const ids: string[] = [];
  const ats: number[] = [];
  let batch: TelemetryMessage[] = [];
  for (let i = 0; i < TOTAL; i++) {
    const msg = telemetry(i);
    batch.push(msg);
    ids.push(msg.deviceId);
    ats.push(T0 + i);
    if (batch.length >= BATCH || i === TOTAL - 1) {
      await store.prepare(ids, ats);
      for (let k = 0; k < batch.length; k++) store.add(batch[k]!, ats[k]!);
      await store.flush();
      batch = [];
      ids.length = 0;
      ats.length = 0;
    }
  }
});

// Serialised before the clock starts, as devices would have sent them.
const payloads = Array.from({ length: TOTAL }, (_, i) => Buffer.from(JSON.stringify(telemetry(i))));
const deviceIds = Array.from({ length: TOTAL }, (_, i) => telemetry(i).deviceId);
await run('thread', async (sql) => {
  const thread = new TelemetryThread(sql, OPTIONS);
  const builder = new BatchBuilder();
  let id = 0;
  for (let i = 0; i < TOTAL; i++) {
    builder.add(deviceIds[i]!, payloads[i]!, T0 + i);
    if (builder.length >= BATCH) {
      await thread.receive(++id, builder.take());
      await thread.commit();
    }
  }
  await thread.receive(id + 1, builder.take());
  await thread.commit();
});
