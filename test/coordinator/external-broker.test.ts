/**
 * `--broker mqtt://…`: the coordinator as a client of an existing broker (here a bare Aedes on
 * 127.0.0.1 standing in for Mosquitto/EMQX) does the same work: ingest, registry, retained manifests.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Readable } from 'node:stream';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic, rolloutTopic } from '../../protocol/topics.js';
import { startCoordinator, tempDir, uniqueId, waitFor } from './helpers.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

describe('external broker', () => {
  it('ingests device messages and publishes retained manifests through another broker', async () => {
    const aedes = await Aedes.createBroker();
    const server: Server = createServer(aedes.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    stops.push(async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const c = await startCoordinator(dir, { config: { mqtt: { port: 0, host: '127.0.0.1', brokerUrl: url } } });
    stops.push(() => c.stop());
    expect(c.mqttUrl).toBe(url);

    const id = uniqueId('ext');
    const device = await mqtt.connectAsync(url, { clientId: id, reconnectPeriod: 0 });
    stops.push(() => device.endAsync(true));
    const hello = { v: 1, kind: 'hello', deviceId: id, hardwareModel: 'rpi4', firmwareVersion: '1.0.0', activeSlot: 'A', agentVersion: '0.1.0', bucket: bucketOf(id), at: Date.now() };
    await device.publishAsync(deviceTopic(id, 'hello'), JSON.stringify(hello), { qos: 1 });
    await waitFor(() => c.registry.get(id)?.firmwareVersion === '1.0.0', 'hello through the external broker');

    await c.uploadFirmware({ image: Readable.from([Buffer.alloc(2000, 9)]), version: '1.1.0', hardware: ['rpi4'] });
    const got = new Promise<string>((resolve) => device.on('message', (_t, payload) => resolve(payload.toString('utf8'))));
    await device.subscribeAsync(rolloutTopic('rpi4', bucketOf(id)), { qos: 1 });
    await c.createDeployment({ firmwareVersion: '1.1.0', target: { hardwareModels: ['rpi4'] }, waves: [{ percent: 100, soakMs: 60_000 }] });
    const manifest = JSON.parse(await got) as { kind: string; deploymentId: string };
    expect(manifest.kind).toBe('rollout');
  });
});
