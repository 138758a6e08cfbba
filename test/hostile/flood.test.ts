/**
 * Hostile: one device floods telemetry as fast as its socket takes it, next to an honest device. The
 * flooder's messages past its rate are shed — counted, flagged on the flooder, logged with its id at a
 * bounded rate — while every message of the honest device is stored and the shared queue never drops.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { deviceTopic } from '../../protocol/topics.js';
import { readDatabase, startCoordinator, telemetryPayload, tempDir, waitFor } from '../coordinator/helpers.js';
import { helloPayload } from './hostile-harness.js';
import { publishPacket } from './raw-mqtt.js';

const FLOOD_MS = 3_000;

describe('hostile: telemetry flood', () => {
  it("sheds the flooder's messages, not anyone else's", { timeout: 120_000 }, async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    const { dir, cleanup } = tempDir();
    const c = await startCoordinator(dir, { logger: pino({ level: 'warn' }, sink) });
    const clients: mqtt.MqttClient[] = [];
    try {
      const creds = new Map((await c.provisionDevices(['flooder', 'honest'], { hardwareModel: 'rpi4' })).map((p) => [p.deviceId, p.secret]));
      for (const id of ['flooder', 'honest']) {
        const cl = await mqtt.connectAsync(c.mqttUrl, { clientId: id, username: id, password: creds.get(id)!, reconnectPeriod: 0 });
        clients.push(cl);
        await cl.publishAsync(deviceTopic(id, 'hello'), helloPayload(id, 'rpi4'), { qos: 1 });
      }
      const [flooder, honest] = clients as [mqtt.MqttClient, mqtt.MqttClient];
      await waitFor(() => c.device('honest')?.firmwareVersion === '1.0.0' && c.device('flooder')?.firmwareVersion === '1.0.0', 'both registered');

      // The flooder writes valid telemetry PUBLISH packets straight to its socket, 200 per write.
      const packet = publishPacket(deviceTopic('flooder', 'telemetry'), telemetryPayload('flooder', 1));
      const chunk = Buffer.concat(Array.from({ length: 200 }, () => packet));
      let flooded = 0;
      // The flooder's bucket refills from here on (it was full: nothing of it had been spent).
      const started = Date.now();
      const flood = (async () => {
        const end = Date.now() + FLOOD_MS;
        while (Date.now() < end) {
          flooded += 200;
          if (!flooder.stream.write(chunk)) await new Promise<void>((r) => flooder.stream.once('drain', () => r()));
        }
      })();
      // Meanwhile the honest device sends 40 messages, QoS 0 as agents do.
      for (let seq = 1; seq <= 40; seq++) {
        honest.publish(deviceTopic('honest', 'telemetry'), telemetryPayload('honest', seq), { qos: 0 });
        await new Promise((r) => setTimeout(r, FLOOD_MS / 40));
      }
      await flood;
      const telemetryDb = readDatabase(c.config.dataDir, 'telemetry');
      const stored = (id: string): number => (telemetryDb.prepare('SELECT SUM(n) AS n FROM telemetry_samples WHERE device_id = ?').get(id) as { n: number | null }).n ?? 0;
      await waitFor(async () => (await c.flush()) >= 0 && stored('honest') === 40, 'all 40 honest messages stored', 30_000, 100);
      // Every flooded message was either shed or parsed (with the honest device's 40 and both hellos' none).
      await waitFor(() => c.counter('ingest.shed.telemetry') + c.counter('ingest.telemetry') === flooded + 40, 'every flooded message handled', 30_000, 100);
      const shed = c.counter('ingest.shed.telemetry');
      const elapsedS = (Date.now() - started) / 1000;
      expect(flooded).toBeGreaterThan(5_000);
      expect(c.counter('telemetry.dropped')).toBe(0);
      // The flooder got its burst and its rate, no more: 100 + 5/s while it flooded.
      expect(flooded - shed).toBeLessThanOrEqual(100 + 5 * elapsedS);
      const anomaly = c.anomalies('flooder').find((a) => a.kind === 'rate-limited');
      expect(anomaly?.count).toBe(shed);
      expect(c.anomalies('honest')).toEqual([]);
      // Logged with the flooder's id, a line per 10 s, not one per message.
      const logged = lines.filter((l) => l['msg'] === 'device anomaly' && l['deviceId'] === 'flooder');
      expect(logged.length).toBeGreaterThanOrEqual(1);
      expect(logged.length).toBeLessThanOrEqual(5);
      expect(lines.filter((l) => l['deviceId'] === 'honest')).toEqual([]);
      // The coordinator is alive and still takes the honest device's messages.
      await honest.publishAsync(deviceTopic('honest', 'telemetry'), telemetryPayload('honest', 41), { qos: 1 });
      await waitFor(async () => (await c.flush()) >= 0 && stored('honest') === 41, 'one more stored', 30_000, 100);
    } finally {
      await Promise.all(clients.map((cl) => cl.endAsync(true)));
      await c.stop();
      cleanup();
    }
  });
});
