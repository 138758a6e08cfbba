/**
 * `--broker mqtt://…` against Debian's Mosquitto: the coordinator as a client of another broker does
 * the same work (ingest, registry, retained manifests), and loses no acknowledged status across a
 * SIGKILL mid-wave — the statuses the broker kept for it while it was down arrive right behind the
 * CONNACK, and each is stored before its PUBACK.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic, rolloutTopic } from '../../protocol/topics.js';
import { hasMosquitto, Mosquitto } from '../support/mosquitto.js';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import { ExternalBroker } from '../../coordinator/broker/external-broker.js';
import { silentLogger, startCoordinator, tempDir, uniqueId, waitFor } from './helpers.js';
import { adminApi } from '../support/admin-api.js';

const stops: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

const hello = (id: string): string =>
  JSON.stringify({ v: 1, kind: 'hello', deviceId: id, hardwareModel: 'rpi4', firmwareVersion: '1.0.0', activeSlot: 'A', agentVersion: '0.1.0', bucket: bucketOf(id), at: Date.now() });

async function broker(): Promise<Mosquitto> {
  // The coordinator's session may queue every status sent while it is down (default bound: 1,000).
  const m = await Mosquitto.start({ allowAnonymous: true, extra: ['max_queued_messages 100000'] });
  stops.push(() => m.close());
  return m;
}

async function device(url: string, id: string): Promise<MqttClient> {
  const d = await mqtt.connectAsync(url, { clientId: id, reconnectPeriod: 0 });
  stops.push(() => d.endAsync(true));
  return d;
}

describe.skipIf(!hasMosquitto)('external broker (Mosquitto)', () => {
  it('ingests device messages and publishes retained manifests through another broker', async () => {
    const m = await broker();
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const c = await startCoordinator(dir, { config: { mqtt: { port: 0, host: '127.0.0.1', brokerUrl: m.url } } });
    stops.push(() => c.stop());
    expect(c.mqttUrl).toBe(m.url);

    const id = uniqueId('ext');
    const d = await device(m.url, id);
    await d.publishAsync(deviceTopic(id, 'hello'), hello(id), { qos: 1 });
    await waitFor(() => c.device(id)?.firmwareVersion === '1.0.0', 'hello through the external broker');

    await c.uploadFirmware({ image: Readable.from([Buffer.alloc(2000, 9)]), version: '1.1.0', hardware: ['rpi4'] });
    const got = new Promise<string>((resolve) => d.on('message', (_t, payload) => resolve(payload.toString('utf8'))));
    await d.subscribeAsync(rolloutTopic('rpi4', bucketOf(id)), { qos: 1 });
    await c.createDeployment({ firmwareVersion: '1.1.0', target: { hardwareModels: ['rpi4'] }, waves: [{ percent: 100, soakMs: 60_000 }] });
    const manifest = JSON.parse(await got) as { kind: string; deploymentId: string };
    expect(manifest.kind).toBe('rollout');
  });

  it('a message the handler could not store gets no PUBACK and comes again after a reconnect', async () => {
    const m = await broker();
    const transport = new ExternalBroker({ url: m.url, clientId: uniqueId('coord'), logger: silentLogger });
    const seen: string[] = [];
    transport.onMessage((msg) => {
      seen.push(msg.payload.toString('utf8'));
      // The first delivery fails to be stored; the second is stored.
      msg.ack(seen.length === 1 ? new Error('disk full') : undefined);
    });
    await transport.start();
    stops.push(() => transport.stop());
    const id = uniqueId('ext');
    const d = await device(m.url, id);
    await d.publishAsync(deviceTopic(id, 'hello'), hello(id), { qos: 1 });
    await waitFor(() => seen.length >= 2, 'the message delivered again after the reconnect');
    expect(seen[1]).toBe(seen[0]);
  });

  it('loses no acknowledged status when the coordinator is killed mid-wave and restarted', async () => {
    const m = await broker();
    const { dir: base, cleanup } = tempDir();
    stops.push(cleanup);
    const dir = join(base, 'coordinator');
    let coordinator: RunningProcess | undefined;
    const startCoordinatorProcess = async (): Promise<void> => {
      const p = spawnFleet(['coordinator', 'start', '--data-dir', dir, '--broker', m.url, '--http-port', 'auto', '--log-level', 'warn']);
      coordinator = p;
      stops.push(() => p.stop('SIGKILL'));
      await p.waitForLine(/^fleet coordinator .* admin API/);
    };
    await startCoordinatorProcess();
    const api = adminApi(dir);

    // 20 devices say hello and wait for the wave's manifest on their bucket's topic.
    const ids = Array.from({ length: 20 }, (_, i) => `ext-kill-${i}`);
    const devices = await Promise.all(ids.map((id) => device(m.url, id)));
    const manifests = devices.map(
      (d) => new Promise<string>((resolve) => d.on('message', (_t, payload) => resolve((JSON.parse(payload.toString('utf8')) as { deploymentId: string }).deploymentId))),
    );
    await Promise.all(devices.map((d, i) => d.subscribeAsync(rolloutTopic('rpi4', bucketOf(ids[i]!)), { qos: 1 })));
    await Promise.all(devices.map((d, i) => d.publishAsync(deviceTopic(ids[i]!, 'hello'), hello(ids[i]!), { qos: 1 })));
    await waitFor(async () => (await api<{ devices: unknown[] }>('GET', '/v1/devices')).devices.length === 20, 'every hello registered');
    await api('POST', '/v1/firmware?version=1.1.0&hardware=rpi4', undefined, Buffer.alloc(4096, 7));
    const created = await api<{ id: string }>('POST', '/v1/deployments', {
      firmwareVersion: '1.1.0',
      target: { hardwareModels: ['rpi4'] },
      waves: [{ percent: 100, soakMs: 600_000, deadlineMs: 600_000 }],
    });
    const deploymentId = created.id;
    expect(await Promise.all(manifests)).toEqual(ids.map(() => deploymentId));

    // Each device reports 39 download steps and then its commit, each a QoS 1 status; every PUBACK
    // it gets is a status the system has promised not to lose.
    const STEPS = 40;
    const acked = new Set<string>();
    const status = (id: string, seq: number): string =>
      JSON.stringify({
        v: 1,
        kind: 'status',
        deviceId: id,
        deploymentId,
        state: seq === STEPS ? 'committed' : 'downloading',
        fromVersion: '1.0.0',
        toVersion: '1.1.0',
        ...(seq === STEPS ? {} : { progress: { bytes: seq * 100, total: 4096 } }),
        seq,
        at: Date.now(),
      });
    const reporting = Promise.all(
      devices.map(async (d, i) => {
        const id = ids[i]!;
        for (let seq = 1; seq <= STEPS; seq++) {
          await d.publishAsync(deviceTopic(id, 'status'), status(id, seq), { qos: 1 });
          acked.add(`${id}#${seq}`);
          await new Promise((r) => setTimeout(r, 10));
        }
      }),
    );
    await waitFor(() => acked.size >= 300, '300 statuses acknowledged', 20_000);
    await coordinator!.stop('SIGKILL');
    const ackedAtKill = acked.size;
    await reporting; // the broker acknowledges the rest and keeps them for the coordinator's session
    expect(acked.size).toBe(ids.length * STEPS);

    await startCoordinatorProcess();
    const stored = (): Set<string> => {
      const db = new Database(join(dir, 'fleet.db'), { readonly: true, fileMustExist: true });
      try {
        return new Set((db.prepare('SELECT device_id, seq FROM status_inbox').all() as { device_id: string; seq: number }[]).map((r) => `${r.device_id}#${r.seq}`));
      } finally {
        db.close();
      }
    };
    const missing = (): string[] => [...acked].filter((k) => !stored().has(k));
    // Bounded, then compared, so that a loss shows which statuses went missing.
    await waitFor(() => missing().length === 0, 'every acknowledged status stored', 20_000).catch(() => undefined);
    expect({ ackedAtKill, total: acked.size, missing: missing() }).toEqual({ ackedAtKill, total: ids.length * STEPS, missing: [] });
    await waitFor(
      async () => (await api<{ devices: { state: string }[] }>('GET', `/v1/deployments/${deploymentId}/devices`)).devices.filter((d) => d.state === 'committed').length === 20,
      'every device committed in the engine',
      20_000,
    );
  }, 120_000);
});
