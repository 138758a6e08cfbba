/**
 * The MQTT session against a real Aedes: subscriptions limited to the device's three topics, the last
 * will on a power cut, reconnect after a broker restart, and the bounded offline queue.
 */
import { describe, expect, it } from 'vitest';
import { reconnectDelay, refusedDelay } from '../../agent/mqtt-session.js';
import { brokerAddress } from '../../agent/agent-defaults.js';
import { deviceSubscriptions } from '../../protocol/topics.js';
import { bucketOf } from '../../protocol/bucket.js';
import { startBroker, startDevice, uniqueId, useFixture, waitFor } from './harness.js';

describe('reconnect backoff', () => {
  it('grows exponentially up to the cap, with full jitter', () => {
    expect(reconnectDelay(0, 1000, 60_000, 1)).toBe(1000);
    expect(reconnectDelay(3, 1000, 60_000, 1)).toBe(8000);
    expect(reconnectDelay(20, 1000, 60_000, 1)).toBe(60_000);
    expect(reconnectDelay(20, 1000, 60_000, 0.25)).toBe(15_000);
    // Never below half the minimum, so a fleet does not hammer a broker that just came back.
    expect(reconnectDelay(5, 1000, 60_000, 0)).toBe(500);
  });

  it('retries a refused login at the long end of the backoff, still jittered', () => {
    expect(refusedDelay(60_000, 0)).toBe(30_000);
    expect(refusedDelay(60_000, 0.5)).toBe(45_000);
    expect(refusedDelay(60_000, 1)).toBe(60_000);
  });
});

describe('broker address', () => {
  it('parses the broker URL once into the options mqtt.js would derive from it', () => {
    expect(brokerAddress('mqtt://127.0.0.1:1883')).toEqual({ protocol: 'mqtt', hostname: '127.0.0.1', host: '127.0.0.1', port: 1883 });
    // No port: mqtt.js picks the protocol's default.
    expect(brokerAddress('mqtts://broker.example')).toEqual({ protocol: 'mqtts', hostname: 'broker.example', host: 'broker.example' });
    // The path (with its query) matters only to WebSockets.
    expect(brokerAddress('wss://gw.example:8443/mqtt?x=1')).toMatchObject({ protocol: 'wss', port: 8443, path: '/mqtt?x=1' });
    expect(brokerAddress('mqtt://gw.example/ignored')).not.toHaveProperty('path');
    expect(brokerAddress('mqtt://[::1]:1883')).toMatchObject({ hostname: '::1', host: '::1' });
    expect(brokerAddress('mqtt://dev%2D1:p%40ss@gw.example')).toMatchObject({ username: 'dev-1', password: 'p@ss' });
  });
});

describe('mqtt session', () => {
  const f = useFixture();

  it('subscribes to exactly its wave topic, its command topic and the flags', async () => {
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id);
    f.devices.push(dev);
    await waitFor(() => (f.broker.subscriptions.get(id)?.length ?? 0) >= 3, 'subscriptions');
    expect([...new Set(f.broker.subscriptions.get(id))].sort()).toEqual(deviceSubscriptions(id, 'rpi4', bucketOf(id)).sort());
  });

  it('announces itself online with a hello, and the last will marks it offline on a power cut', async () => {
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id);
    f.devices.push(dev);
    await waitFor(() => f.observer.of(id, 'hello').length === 1, 'hello');
    // Unretained presence: the hello is the online announcement, no second packet says it again.
    expect(f.observer.of(id, 'presence')).toEqual([]);
    await dev.agent!.kill();
    await waitFor(() => f.observer.of(id, 'presence').at(-1)?.['state'] === 'offline', 'offline presence from the will');
  });

  it('with retained presence, replaces the will\'s retained offline with a retained online on every connect', async () => {
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id, { broker: { url: f.broker.url, reconnectMin: 50, reconnectMax: 500, retainPresence: true } });
    f.devices.push(dev);
    await waitFor(() => f.observer.of(id, 'hello').length === 1, 'hello');
    await waitFor(() => f.observer.of(id, 'presence').at(-1)?.['state'] === 'online', 'online presence');
    await dev.agent!.kill();
    await waitFor(() => f.observer.of(id, 'presence').at(-1)?.['state'] === 'offline', 'offline presence from the will');
  });

  it('reconnects after a broker restart and sends what was queued while offline, bounded', async () => {
    const broker = await startBroker();
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id, { broker: { url: broker.url, reconnectMin: 20, reconnectMax: 100 }, offlineQueueLimit: 3 });
    f.devices.push(dev);
    const port = broker.port;
    await broker.close();
    await waitFor(() => dev.agent!.connected === false, 'disconnected');
    for (let i = 0; i < 5; i++) await dev.agent!.sendTelemetry();
    const again = await startBroker(port);
    try {
      const { Observer } = await import('./harness.js');
      const obs = await Observer.connect(again.url);
      try {
        await waitFor(() => dev.agent!.connected, 'reconnected', 10_000);
        await waitFor(() => obs.of(id, 'telemetry').length === 3, 'queued telemetry delivered');
        const seqs = obs.of(id, 'telemetry').map((m) => m['seq'] as number);
        // The oldest two were dropped; the newest three arrive in order.
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        await waitFor(() => obs.of(id, 'hello').length >= 1, 'hello after reconnect');
      } finally {
        await obs.close();
      }
    } finally {
      await dev.stop();
      await again.close();
    }
  });
});

describe('inbound messages', () => {
  const f = useFixture();

  it('counts and ignores malformed payloads without crashing, then still works', async () => {
    const { rolloutTopic, deviceTopic, FLAGS_TOPIC } = await import('../../protocol/topics.js');
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id);
    f.devices.push(dev);
    await f.publisher.publishAsync(deviceTopic(id, 'commands'), Buffer.from('not json'), { qos: 1 });
    await f.publisher.publishAsync(rolloutTopic('rpi4', bucketOf(id)), Buffer.from(JSON.stringify({ v: 9, kind: 'rollout' })), { qos: 1 });
    await f.publisher.publishAsync(FLAGS_TOPIC, Buffer.from(JSON.stringify({ v: 1, kind: 'flags', version: 'x' })), { qos: 1 });
    await waitFor(() => dev.agent!.counts.badMessages === 3, 'three bad messages counted');
    expect(dev.agent!.state.job).toBeNull();
    // A good flags snapshot afterwards is taken, and older snapshots are ignored.
    const snapshot = (version: number, enabled: boolean) =>
      Buffer.from(JSON.stringify({ v: 1, kind: 'flags', version, flags: { 'new-ui': { enabled, rollout: 100, variants: [] } }, at: 1 }));
    await f.publisher.publishAsync(FLAGS_TOPIC, snapshot(2, true), { qos: 1, retain: true });
    await waitFor(() => dev.agent!.flag('new-ui').enabled, 'flag on');
    // An older snapshot is ignored; a bad message after it (delivered in order) marks it processed.
    await f.publisher.publishAsync(FLAGS_TOPIC, snapshot(1, false), { qos: 1 });
    await f.publisher.publishAsync(FLAGS_TOPIC, Buffer.from('{}'), { qos: 1 });
    await waitFor(() => dev.agent!.counts.badMessages === 4, 'marker processed');
    expect(dev.agent!.flag('new-ui').enabled).toBe(true);
    expect(dev.agent!.flags?.version).toBe(2);
    await f.publisher.publishAsync(FLAGS_TOPIC, snapshot(3, false), { qos: 1 });
    await waitFor(() => !dev.agent!.flag('new-ui').enabled, 'flag off at version 3');
    await f.publisher.publishAsync(FLAGS_TOPIC, Buffer.alloc(0), { qos: 1, retain: true });
  });
});
