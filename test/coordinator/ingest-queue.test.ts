/**
 * The telemetry queue between the broker hook and the telemetry thread: the hook only queues raw
 * payloads; a full batch is committed without waiting for the flush interval; past `maxQueue` messages
 * (waiting or being stored) are dropped and counted, and the queue never grows beyond it.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { deviceTopic } from '../../protocol/topics.js';
import { readDatabase, startCoordinator, telemetryPayload, tempDir, uniqueId, waitFor } from './helpers.js';

let c: Coordinator | undefined;
let cleanup: (() => void) | undefined;
const clients: MqttClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((x) => x.endAsync(true)));
  await c?.stop();
  c = undefined;
  cleanup?.();
});

/** A coordinator whose periodic flush never fires during the test (one hour of real time). */
async function start(maxBatch: number, maxQueue: number): Promise<Coordinator> {
  const t = tempDir();
  cleanup = t.cleanup;
  c = await startCoordinator(t.dir, {
    config: {
      telemetry: { flushIntervalMs: 3_600_000, maxBatch, maxQueue, rollupSlotMs: 60_000, rawRetentionMs: 48 * 3600_000, silentAfterMs: 5 * 60_000 },
    },
  });
  return c;
}

async function device(co: Coordinator): Promise<{ id: string; client: MqttClient }> {
  const id = uniqueId('dev');
  const [cred] = await co.provisionDevices([id]);
  const client = await mqtt.connectAsync(co.mqttUrl, { clientId: id, username: id, password: cred!.secret, reconnectPeriod: 0 });
  clients.push(client);
  return { id, client };
}

describe('telemetry queue', () => {
  it('commits a full batch soon after it fills, without waiting for the flush interval', async () => {
    const co = await start(3, 100);
    const { id, client } = await device(co);
    for (let seq = 1; seq <= 3; seq++) await client.publishAsync(deviceTopic(id, 'telemetry'), telemetryPayload(id, seq), { qos: 1 });
    await waitFor(() => co.counter('telemetry.written') >= 3, 'batch committed', 5_000);
    expect(co.counter('telemetry.written')).toBe(3);
    expect(co.metrics().telemetry.pending).toBe(0);
    expect(co.counter('ingest.telemetry')).toBe(3);
    expect(co.counter('telemetry.dropped')).toBe(0);
  });

  it('drops and counts telemetry past maxQueue, keeps the queued rest and stores it on flush', async () => {
    const co = await start(1_000, 3);
    const { id, client } = await device(co);
    // QoS 1: each PUBACK comes after the broker hook ran, so every message has been queued or dropped.
    for (let seq = 1; seq <= 5; seq++) await client.publishAsync(deviceTopic(id, 'telemetry'), telemetryPayload(id, seq), { qos: 1 });
    expect(co.counter('telemetry.dropped')).toBe(2);
    expect(co.metrics().telemetry.pending).toBe(3);
    expect(await co.flush()).toBe(3);
    expect(co.counter('ingest.telemetry')).toBe(3);
    const raw = readDatabase(co.config.dataDir, 'telemetry').prepare('SELECT SUM(n) AS n FROM telemetry_samples WHERE device_id = ?').get(id) as { n: number };
    expect(raw.n).toBe(3);
    // The queue drained: new telemetry is accepted again.
    await client.publishAsync(deviceTopic(id, 'telemetry'), telemetryPayload(id, 6), { qos: 1 });
    expect(co.metrics().telemetry.pending).toBe(1);
    expect(co.counter('telemetry.dropped')).toBe(2);
    expect(await co.flush()).toBe(1);
  });
});
