/**
 * Statuses are committed in groups (status-inbox.ts), and a status is still never acknowledged
 * before it is stored: 20 devices flood QoS 1 statuses at the coordinator (embedded broker, its own
 * process, `fleet coordinator start`), it is killed with SIGKILL mid-flood, and every status a device
 * got a PUBACK for is in the inbox it replays on start.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic } from '../../protocol/topics.js';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import { tempDir, waitFor } from './helpers.js';
import { adminApi } from '../support/admin-api.js';

const stops: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

describe('status durability with group commits', () => {
  it('every acknowledged status is stored when the coordinator is killed mid-flood', async () => {
    const { dir: base, cleanup } = tempDir();
    stops.push(cleanup);
    const dir = join(base, 'coordinator');
    const coordinator: RunningProcess = spawnFleet(['coordinator', 'start', '--data-dir', dir, '--mqtt-port', 'auto', '--http-port', 'auto', '--log-level', 'warn']);
    stops.push(() => coordinator.stop('SIGKILL'));
    const started = await coordinator.waitForLine(/^fleet coordinator .* admin API/);
    const brokerUrl = /MQTT (\S+),/.exec(started)![1]!;
    const api = adminApi(dir);
    const ids = Array.from({ length: 20 }, (_, i) => `dur-${i}`);
    const { devices: secrets } = await api<{ devices: { deviceId: string; secret: string }[] }>('POST', '/v1/devices/provision', { deviceIds: ids, hardwareModel: 'rpi4' });
    const devices: MqttClient[] = [];
    for (const { deviceId, secret } of secrets) {
      const d = await mqtt.connectAsync(brokerUrl, { clientId: deviceId, username: deviceId, password: secret, reconnectPeriod: 0, clean: false });
      stops.push(() => d.endAsync(true));
      devices.push(d);
      await d.publishAsync(
        deviceTopic(deviceId, 'hello'),
        JSON.stringify({ v: 1, kind: 'hello', deviceId, hardwareModel: 'rpi4', firmwareVersion: '1.0.0', activeSlot: 'A', agentVersion: '0.1.0', bucket: bucketOf(deviceId), at: Date.now() }),
        { qos: 1 },
      );
    }
    await api('POST', '/v1/firmware?version=1.1.0&hardware=rpi4', undefined, Buffer.alloc(4096, 7));
    const { id: deploymentId } = await api<{ id: string }>('POST', '/v1/deployments', {
      firmwareVersion: '1.1.0',
      target: { hardwareModels: ['rpi4'] },
      waves: [{ percent: 100, soakMs: 600_000, deadlineMs: 600_000 }],
    });

    // Each device reports download progress as fast as it is acknowledged; each PUBACK is a promise.
    const acked = new Set<string>();
    let stop = false;
    // Not awaited: a publish in flight when the broker died never settles (its client stops here).
    void Promise.all(
      devices.map(async (d, i) => {
        const id = ids[i]!;
        for (let seq = 1; !stop && seq < 1000; seq++) {
          const status = { v: 1, kind: 'status', deviceId: id, deploymentId, state: 'downloading', fromVersion: '1.0.0', toVersion: '1.1.0', progress: { bytes: seq, total: 4096 }, seq, at: Date.now() };
          try {
            await d.publishAsync(deviceTopic(id, 'status'), JSON.stringify(status), { qos: 1 });
          } catch {
            return; // the coordinator died under this publish
          }
          acked.add(`${id}#${seq}`);
        }
      }),
    );
    await waitFor(() => acked.size >= 600, '600 statuses acknowledged', 30_000);
    await coordinator.stop('SIGKILL');
    const ackedAtKill = new Set(acked);
    stop = true;

    const db = new Database(join(dir, 'fleet.db'), { readonly: true, fileMustExist: true });
    let stored: Set<string>;
    try {
      stored = new Set((db.prepare('SELECT device_id, seq FROM status_inbox').all() as { device_id: string; seq: number }[]).map((r) => `${r.device_id}#${r.seq}`));
    } finally {
      db.close();
    }
    expect(ackedAtKill.size).toBeGreaterThanOrEqual(600);
    expect([...acked].filter((k) => !stored.has(k))).toEqual([]);
  }, 120_000);
});
