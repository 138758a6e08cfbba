/**
 * Hostile: oversized and pre-authentication packets, sockets that never say CONNECT. Packets are
 * refused from their fixed header, before the body is buffered (memory stays flat while five sockets
 * try to send 200 MB CONNECTs), an authenticated device's oversized PUBLISH closes its connection and
 * is flagged on the device, and silent sockets are closed after the connect timeout. The size limits
 * hold on both brokers: Mosquitto enforces them from `max_packet_size` in the configuration
 * `fleet broker mosquitto-config` writes (the same 131,072 bytes), and the memory measured is then
 * the broker's.
 */
import { describe, expect, it } from 'vitest';
import { deviceTopic } from '../../protocol/topics.js';
import { startCoordinator, tempDir } from '../coordinator/helpers.js';
import { declaredHeader, openSocket, streamDeclaredPacket } from './raw-mqtt.js';
import { BROKERS, connackCode, startCoordinatorProcess, waitFor } from './hostile-harness.js';

const MB = 1_000_000;

describe.each(BROKERS)('hostile: packet sizes (%s broker)', (broker) => {
  it('cuts off five unauthenticated 200 MB CONNECT declarations at the header: memory stays flat', { timeout: 120_000 }, async () => {
    const c = await startCoordinatorProcess([], { broker });
    const rssBefore = c.brokerRssMb();
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => streamDeclaredPacket(c.port, 1, 200 * MB, 10_000, `127.0.0.${20 + i}`)));
    for (const r of results) {
      expect(r.closedByBroker).toBe(true);
      // What reached the socket before the close: kernel buffers, never the declared 200 MB.
      expect(r.written).toBeLessThan(50 * MB);
    }
    // Without the limit this grew by ~580 MB (the bodies were buffered); allow for GC noise only.
    expect(c.brokerRssMb() - rssBefore).toBeLessThan(100);
    if (broker === 'embedded') {
      await waitFor(async () => ((await c.counters())['mqtt.packets.oversize'] ?? 0) >= 5, 'oversize counted');
      await waitFor(() => c.logs().some((l) => l['msg'] === 'oversized MQTT packet refused; connection closed' && l['address'] === '127.0.0.20' && l['declared'] === 200 * MB), 'logged with the address');
    }
    // The coordinator is alive and a device still connects.
    const secrets = await c.provision(['pi-p1']);
    expect(await connackCode(c.mqttUrl, { clientId: 'pi-p1', username: 'pi-p1', password: secrets.get('pi-p1')! })).toBe(0);
  });

  it("closes an authenticated device's 64 MB PUBLISH from its header (the embedded broker flags the device)", { timeout: 120_000 }, async () => {
    const c = await startCoordinatorProcess([], { broker });
    const secrets = await c.provision(['pi-p2', 'pi-p3']);
    const dev = await c.device('pi-p2', secrets.get('pi-p2')!);
    const other = await c.device('pi-p3', secrets.get('pi-p3')!);
    const rssBefore = c.brokerRssMb();
    const closed = new Promise<void>((resolve) => dev.stream.once('close', () => resolve()));
    const topic = Buffer.from(deviceTopic('pi-p2', 'telemetry'));
    // PUBLISH QoS 0: fixed header declaring 64 MB, then the topic, then a body that never completes.
    const head = Buffer.concat([declaredHeader(3, 64 * MB), Buffer.from([topic.length >> 8, topic.length & 0xff]), topic]);
    dev.stream.write(head);
    for (let i = 0; i < 64; i++) dev.stream.write(Buffer.alloc(64 * 1024));
    let wasClosed = false;
    void closed.then(() => (wasClosed = true));
    await waitFor(() => wasClosed, 'the connection closed by the broker');
    expect(c.brokerRssMb() - rssBefore).toBeLessThan(100);
    if (broker === 'embedded') {
      // Mosquitto logs it itself ("disconnected due to oversize packet"); the coordinator never sees it.
      const anomaly = await waitFor(
        async () => (await c.api<{ anomalies: { kind: string; detail: string }[] }>('GET', '/v1/devices/pi-p2')).body.anomalies.find((a) => a.kind === 'oversized-packet'),
        'oversized-packet anomaly on the device',
      );
      expect(anomaly.detail).toMatch(/publish of 64000000 bytes \(limit 131072\)/);
      await waitFor(() => c.logs().some((l) => l['deviceId'] === 'pi-p2' && l['msg'] === 'oversized MQTT packet refused; connection closed'), 'logged with the device id');
    } else {
      await waitFor(() => /pi-p2 .*oversize/i.test(c.mosquitto!.broker.output()), 'Mosquitto logged the oversize packet');
    }
    // Nobody else's connection was touched; the device may come back.
    expect(other.connected).toBe(true);
    expect(await connackCode(c.mqttUrl, { clientId: 'pi-p2', username: 'pi-p2', password: secrets.get('pi-p2')! })).toBe(0);
  });
});

describe('hostile: silent sockets (embedded broker)', () => {
  it('closes sockets that never complete a CONNECT after the connect timeout', { timeout: 60_000 }, async () => {
    const { dir, cleanup } = tempDir();
    const c = await startCoordinator(dir, { config: { mqtt: { port: 0, host: '127.0.0.1', connectTimeoutMs: 500 } } });
    try {
      const port = Number(new URL(c.mqttUrl).port);
      const silent = await openSocket(port);
      const partial = await openSocket(port);
      // A CONNECT declaring 100 bytes of which 10 ever arrive.
      partial.write(Buffer.concat([declaredHeader(1, 100), Buffer.alloc(10)]));
      const closedWithin = (s: typeof silent): Promise<boolean> =>
        new Promise((resolve) => {
          const t = setTimeout(() => resolve(false), 20_000);
          s.on('error', () => undefined);
          s.once('close', () => {
            clearTimeout(t);
            resolve(true);
          });
        });
      expect(await Promise.all([closedWithin(silent), closedWithin(partial)])).toEqual([true, true]);
    } finally {
      await c.stop();
      cleanup();
    }
  });
});
