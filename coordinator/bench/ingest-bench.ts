/**
 * Benchmark: the coordinator's telemetry ingest on this machine.
 *   1. store   — TelemetryStore: parsed messages → batched SQLite transactions (raw + rollups + counters)
 *   2. edge    — DeviceIngest.handle: bytes → topic check → zod parse → store queue, then flush
 *   3. mqtt    — end to end: mqtt.js publishers (in this process) → embedded Aedes with auth and ACLs
 *                → ingest → SQLite, at a paced offered rate; reports delivered/offered
 * Run: `npm run build && node dist/coordinator/bench/ingest-bench.js [--devices 1000] [--seconds 5]`.
 * Figures are machine-dependent; compare with docs/machine-limits (bare Aedes + SQLite ≈ 58–64k msg/s).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { openDatabase } from '../store/db.js';
import { TelemetryStore } from '../telemetry/telemetry-store.js';
import { DeviceIngest } from '../ingest/device-ingest.js';
import { Counters } from '../metrics.js';
import { Coordinator } from '../coordinator.js';
import type { TelemetryMessage } from '../../protocol/messages.js';
import { deviceTopic } from '../../protocol/topics.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const DEVICES = arg('devices', 1000);
const SECONDS = arg('seconds', 5);
const logger = pino({ level: 'silent' });

function telemetry(deviceId: string, seq: number, at: number): TelemetryMessage {
  return {
    v: 1,
    kind: 'telemetry',
    deviceId,
    firmwareVersion: '1.0.0',
    slot: 'A',
    uptimeS: seq * 10,
    bootCount: 1,
    metrics: { cpuPct: 20 + (seq % 7), memUsedMb: 300 + (seq % 13), temperatureC: 45, batteryPct: 80 },
    counters: { crashes: 0, agentRestarts: 0, errors: seq % 3, reboots: 0 },
    custom: {},
    logs: [],
    seq,
    at,
  };
}

function benchStore(): void {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-'));
  const db = openDatabase(join(dir, 'fleet.db'));
  const store = new TelemetryStore(db, { rollupSlotMs: 60_000, rawRetentionMs: 48 * 3600_000, maxExposureGapMs: 300_000 });
  const total = 200_000;
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    store.enqueue(telemetry(`dev-${i % DEVICES}`, Math.floor(i / DEVICES) + 1, 1_800_000_000_000 + i * 10), 1_800_000_000_000 + i * 10);
    if (store.pending >= 2000) store.flush();
  }
  store.flush();
  const ms = performance.now() - t0;
  console.log(`store: ${total} messages in ${ms.toFixed(0)} ms → ${Math.round(total / (ms / 1000))} msg/s (raw row + rollup upsert + counters, 2,000 per transaction)`);
  db.close();
  rmSync(dir, { recursive: true, force: true });
}

function benchEdge(): void {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-'));
  const db = openDatabase(join(dir, 'fleet.db'));
  const store = new TelemetryStore(db, { rollupSlotMs: 60_000, rawRetentionMs: 48 * 3600_000, maxExposureGapMs: 300_000 });
  const counters = new Counters();
  const ingest = new DeviceIngest(
    { hello: () => undefined, status: () => undefined, presence: () => undefined, telemetry: (m) => store.enqueue(m, m.at) },
    counters,
    logger,
  );
  const total = 200_000;
  // Distinct payloads (seq rises per device), serialised before the clock starts.
  const payloads = Array.from({ length: total }, (_, i) => Buffer.from(JSON.stringify(telemetry(`dev-${i % DEVICES}`, Math.floor(i / DEVICES) + 1, 1_800_000_000_000 + i * 10))));
  const topics = Array.from({ length: DEVICES }, (_, d) => deviceTopic(`dev-${d}`, 'telemetry'));
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const d = i % DEVICES;
    ingest.handle({ topic: topics[d]!, payload: payloads[i]!, clientDeviceId: `dev-${d}`, ack: () => undefined });
    if (store.pending >= 2000) store.flush();
  }
  store.flush();
  const ms = performance.now() - t0;
  const stored = (db.prepare('SELECT COUNT(*) AS n FROM telemetry_raw').get() as { n: number }).n;
  console.log(`edge: ${total} messages in ${ms.toFixed(0)} ms → ${Math.round(total / (ms / 1000))} msg/s (JSON + zod parse + store); stored ${stored}, bad ${counters.get('ingest.bad')}`);
  db.close();
  rmSync(dir, { recursive: true, force: true });
}

async function benchMqtt(rate: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-'));
  const c = await Coordinator.create({
    logger,
    config: { env: 'development', dataDir: dir, mqtt: { port: 0 }, http: { port: 0 }, allowAnonymousDevices: false, credentialCost: 4 },
  });
  const ids = Array.from({ length: DEVICES }, (_, i) => `bench-${i}`);
  const creds = await c.provisionDevices(ids);
  const clients: MqttClient[] = [];
  for (let i = 0; i < creds.length; i += 100) {
    clients.push(
      ...(await Promise.all(
        creds.slice(i, i + 100).map((p) => mqtt.connectAsync(c.mqttUrl, { clientId: p.deviceId, username: p.deviceId, password: p.secret, reconnectPeriod: 0 })),
      )),
    );
  }
  const before = c.counters.get('ingest.telemetry');
  const tickMs = 50;
  const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
  let offered = 0;
  let seq = 1;
  const t0 = Date.now();
  while (Date.now() - t0 < SECONDS * 1000) {
    const tick = Date.now();
    for (let k = 0; k < perTick; k++) {
      const i = offered % clients.length;
      clients[i]!.publish(deviceTopic(ids[i]!, 'telemetry'), JSON.stringify(telemetry(ids[i]!, seq, Date.now())), { qos: 0 });
      offered++;
      if (i === clients.length - 1) seq++;
    }
    const wait = tickMs - (Date.now() - tick);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const elapsed = (Date.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  const delivered = c.counters.get('ingest.telemetry') - before;
  c.flush();
  console.log(
    `mqtt: offered ${Math.round(offered / elapsed)} msg/s from ${DEVICES} authenticated devices for ${SECONDS}s → ingested ${delivered}/${offered} (${((100 * delivered) / offered).toFixed(1)} %), stored ${c.telemetry.written}`,
  );
  await Promise.all(clients.map((x) => x.endAsync(true)));
  await c.stop();
  rmSync(dir, { recursive: true, force: true });
}

benchStore();
benchEdge();
for (const rate of [2_000, 5_000, 10_000, 20_000]) await benchMqtt(rate);
