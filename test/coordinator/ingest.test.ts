/**
 * Device message ingest through the real broker: good messages update the registry and telemetry;
 * bad payloads (not JSON, wrong schema, unknown protocol version, another device's id) are counted,
 * logged and dropped while the coordinator keeps running.
 */
import { Readable } from 'node:stream';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic } from '../../protocol/topics.js';
import { readDatabase, startCoordinator, telemetryPayload, tempDir, uniqueId, waitFor } from './helpers.js';

let c: Coordinator;
let cleanup: () => void;
const clients: MqttClient[] = [];

beforeEach(async () => {
  let dir: string;
  ({ dir, cleanup } = tempDir());
  c = await startCoordinator(dir);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((x) => x.endAsync(true)));
  await c.stop();
  cleanup();
});

async function connectDevice(): Promise<{ id: string; client: MqttClient }> {
  const id = uniqueId('dev');
  const [cred] = await c.provisionDevices([id]);
  const client = await mqtt.connectAsync(c.mqttUrl, { clientId: id, username: id, password: cred!.secret, reconnectPeriod: 0 });
  clients.push(client);
  return { id, client };
}

const hello = (id: string, extra: Record<string, unknown> = {}) => ({
  v: 1,
  kind: 'hello',
  deviceId: id,
  hardwareModel: 'rpi4',
  firmwareVersion: '1.0.0',
  activeSlot: 'A',
  agentVersion: '0.1.0',
  bucket: bucketOf(id),
  tags: ['lab'],
  at: Date.now(),
  ...extra,
});

describe('device ingest', () => {
  it('registers a device from its hello and tracks online/offline', async () => {
    const { id, client } = await connectDevice();
    await client.publishAsync(deviceTopic(id, 'hello'), JSON.stringify(hello(id)), { qos: 1 });
    await waitFor(() => c.device(id)?.firmwareVersion === '1.0.0', 'hello registered');
    expect(c.device(id)).toMatchObject({ hardwareModel: 'rpi4', activeSlot: 'A', agentVersion: '0.1.0', tags: ['lab'], online: true, bucket: bucketOf(id) });
    await client.publishAsync(deviceTopic(id, 'presence'), JSON.stringify({ v: 1, kind: 'presence', deviceId: id, state: 'offline' }), { qos: 1 });
    await waitFor(() => c.device(id)?.online === false, 'offline from presence');
    await client.publishAsync(deviceTopic(id, 'hello'), JSON.stringify(hello(id)), { qos: 1 });
    await waitFor(() => c.device(id)?.online === true, 'online again');
    await client.endAsync(true);
    await waitFor(() => c.device(id)?.online === false, 'offline after disconnect');
  });

  it('drops and counts bad payloads and keeps going', async () => {
    const { id, client } = await connectDevice();
    const other = uniqueId('dev');
    const bad: [string, string][] = [
      [deviceTopic(id, 'status'), 'not json {'],
      [deviceTopic(id, 'telemetry'), JSON.stringify({ v: 1, kind: 'telemetry', deviceId: id })],
      [deviceTopic(id, 'hello'), JSON.stringify(hello(id, { v: 99 }))],
      [deviceTopic(id, 'hello'), JSON.stringify(hello(other))],
      [deviceTopic(id, 'presence'), JSON.stringify({ v: 1, kind: 'presence', deviceId: id, state: 'sideways' })],
    ];
    for (const [topic, payload] of bad) await client.publishAsync(topic, payload, { qos: 1 });
    await waitFor(() => c.counter('ingest.bad') === bad.length, 'bad messages counted');
    expect(c.counter('ingest.bad.status')).toBe(1);
    expect(c.counter('ingest.bad.telemetry')).toBe(1);
    expect(c.counter('ingest.bad.hello')).toBe(2);
    expect(c.counter('ingest.bad.presence')).toBe(1);
    expect(c.device(other)).toBeUndefined();
    // Still alive: a good message goes through on the same connection.
    await client.publishAsync(deviceTopic(id, 'hello'), JSON.stringify(hello(id)), { qos: 1 });
    await waitFor(() => c.device(id)?.firmwareVersion === '1.0.0', 'good hello after bad ones');
    const metrics = (await (await fetch(`${c.httpUrl}/v1/metrics`, { headers: { authorization: `Bearer ${c.adminToken}` } })).json()) as { counters: Record<string, number> };
    expect(metrics.counters['ingest.bad']).toBe(bad.length);
  });

  it('writes telemetry in batches: rollups with counter deltas and every raw sample', async () => {
    const { id, client } = await connectDevice();
    await client.publishAsync(deviceTopic(id, 'hello'), JSON.stringify(hello(id)), { qos: 1 });
    await client.publishAsync(deviceTopic(id, 'telemetry'), telemetryPayload(id, 1, { counters: { crashes: 2, agentRestarts: 0, errors: 5, reboots: 1 } }), { qos: 1 });
    await client.publishAsync(deviceTopic(id, 'telemetry'), telemetryPayload(id, 2, { counters: { crashes: 3, agentRestarts: 0, errors: 9, reboots: 1 } }), { qos: 1 });
    // A counter reset (wiped data dir): everything it shows now is new.
    await client.publishAsync(deviceTopic(id, 'telemetry'), telemetryPayload(id, 3, { counters: { crashes: 1, agentRestarts: 0, errors: 0, reboots: 0 } }), { qos: 1 });
    await waitFor(() => c.counter('telemetry.written') >= 3, 'telemetry flushed');
    const telemetryDb = readDatabase(c.config.dataDir, 'telemetry');
    const raw = telemetryDb.prepare('SELECT SUM(n) AS n FROM telemetry_samples WHERE device_id = ?').get(id) as { n: number };
    expect(raw.n).toBe(3);
    const sums = telemetryDb.prepare('SELECT SUM(samples) AS s, SUM(crashes) AS crashes, SUM(errors) AS errors FROM telemetry_rollup WHERE device_id = ?').get(id) as {
      s: number;
      crashes: number;
      errors: number;
    };
    // First reading is the baseline; then +1 crash, +4 errors; then the reset adds 1 crash.
    expect(sums).toEqual({ s: 3, crashes: 2, errors: 4 });
  });
});

describe('status inbox', () => {
  it('replays an acknowledged status the engine had not stored when the coordinator died', async () => {
    const { id, client } = await connectDevice();
    await client.publishAsync(deviceTopic(id, 'hello'), JSON.stringify(hello(id)), { qos: 1 });
    await waitFor(() => c.device(id)?.firmwareVersion === '1.0.0', 'hello registered');
    await c.uploadFirmware({ image: Readable.from([Buffer.alloc(1000, 1)]), version: '1.1.0', hardware: ['rpi4'] });
    const d = await c.createDeployment({
      firmwareVersion: '1.1.0',
      target: { hardwareModels: ['rpi4'] },
      waves: [{ percent: 100, soakMs: 60_000, deadlineMs: 600_000, minDevicesReporting: 1 }],
    });
    await waitFor(async () => (await c.deploymentDevices(d.id)).some((p) => p.deviceId === id), 'device is a member');
    await client.endAsync(true);
    clients.length = 0;
    const dataDir = c.config.dataDir;
    await c.stop();
    // As if the PUBACK had gone out and the process died before the engine stored the status.
    const { openDatabase } = await import('../../coordinator/store/db.js');
    const db = openDatabase(`${dataDir}/fleet.db`);
    const status = { v: 1, kind: 'status', deviceId: id, deploymentId: d.id, state: 'downloading', fromVersion: '1.0.0', toVersion: '1.1.0', seq: 1, at: Date.now() };
    db.prepare('INSERT INTO status_inbox (device_id, deployment_id, seq, received_at, message_json) VALUES (?, ?, ?, ?, ?)').run(id, d.id, 1, Date.now(), JSON.stringify(status));
    db.close();
    c = await startCoordinator(dataDir);
    expect((await c.deploymentDevices(d.id)).find((p) => p.deviceId === id)?.state).toBe('downloading');
  });
});
