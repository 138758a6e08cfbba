/**
 * Broker authentication and ACLs against the real embedded Aedes on 127.0.0.1 port 0 with real
 * mqtt.js clients: a device may publish only its own hello/status/telemetry/presence and subscribe only
 * to its rollout topic, its command topic and the flags topic.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { openDatabase, closeDatabase, type Db } from '../../coordinator/store/db.js';
import { CredentialStore } from '../../coordinator/broker/credentials.js';
import { EmbeddedBroker } from '../../coordinator/broker/embedded-broker.js';
import { Counters } from '../../coordinator/metrics.js';
import type { InboundMessage } from '../../coordinator/broker/transport.js';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic, FLAGS_TOPIC, rolloutTopic } from '../../protocol/topics.js';
import { authorizeDevicePublish, authorizeDeviceSubscribe } from '../../coordinator/broker/acl.js';
import { silentLogger, uniqueId, waitFor } from './helpers.js';

let db: Db;
let broker: EmbeddedBroker;
let counters: Counters;
let credentials: CredentialStore;
let received: InboundMessage[];
const clients: MqttClient[] = [];
const models = new Map<string, string>();

beforeEach(async () => {
  db = openDatabase(':memory:');
  counters = new Counters();
  credentials = new CredentialStore(db, 4);
  received = [];
  broker = new EmbeddedBroker({
    port: 0,
    host: '127.0.0.1',
    credentials,
    allowAnonymous: false,
    hardwareModelOf: (id) => models.get(id),
    logger: silentLogger,
    counters,
  });
  broker.onMessage((m) => {
    received.push(m);
    m.ack();
  });
  await broker.start();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await broker.stop();
  await broker.stop(); // safe twice
  closeDatabase(db);
});

async function connect(deviceId: string, password: string | undefined, clientId = deviceId): Promise<MqttClient> {
  const c = await mqtt.connectAsync(broker.url, {
    clientId,
    ...(password !== undefined ? { username: deviceId, password } : {}),
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  clients.push(c);
  return c;
}

/** The SUBACK return codes, one per topic (mqtt.js rejects the promise API on any 128). */
function grantedQos(client: MqttClient, topics: string[]): Promise<number[]> {
  return Promise.all(
    topics.map(
      (t) =>
        new Promise<number>((resolve) => {
          client.subscribe(t, { qos: 1 }, (err, granted) => resolve(err ? 128 : (granted?.[0]?.qos ?? 128)));
        }),
    ),
  );
}

async function device(): Promise<{ id: string; client: MqttClient }> {
  const id = uniqueId('dev');
  const { secret } = await credentials.provision(id);
  models.set(id, 'rpi4');
  return { id, client: await connect(id, secret) };
}

describe('device authentication', () => {
  it('accepts a provisioned device and refuses a wrong secret, an unknown device and anonymous clients', async () => {
    const { id } = await device();
    await expect(connect(id, 'wrong-secret', `${id}`)).rejects.toThrow(/Bad username or password|Not authorized/i);
    await expect(connect(uniqueId('ghost'), 'whatever')).rejects.toThrow(/Bad username or password|Not authorized/i);
    await expect(connect(uniqueId('anon'), undefined)).rejects.toThrow(/Bad username or password|Not authorized/i);
    expect(counters.get('mqtt.auth.refused')).toBe(3);
  });

  it('refuses a client id that is not the device id (no session takeover)', async () => {
    const id = uniqueId('dev');
    const { secret } = await credentials.provision(id);
    await expect(connect(id, secret, uniqueId('other'))).rejects.toThrow(/Identifier rejected|Not authorized/i);
  });

  it('stores only a scrypt hash of the secret', async () => {
    const id = uniqueId('dev');
    const { secret } = await credentials.provision(id);
    const row = db.prepare('SELECT secret_hash FROM device_credentials WHERE device_id = ?').get(id) as { secret_hash: string };
    expect(row.secret_hash.startsWith('scrypt$')).toBe(true);
    expect(row.secret_hash).not.toContain(secret);
    expect(await credentials.verify(id, secret)).toBe(true);
    expect(await credentials.verify(id, secret + 'x')).toBe(false);
    credentials.revoke(id);
    expect(await credentials.verify(id, secret)).toBe(false);
  });
});

describe('device ACLs', () => {
  it('delivers a device publishing its own status', async () => {
    const { id, client } = await device();
    await client.publishAsync(deviceTopic(id, 'status'), '{}', { qos: 1 });
    await waitFor(() => received.find((m) => m.topic === deviceTopic(id, 'status')), 'own status');
    expect(received[0]!.clientDeviceId).toBe(id);
  });

  it("refuses a device publishing another device's status", async () => {
    const a = await device();
    const b = await device();
    a.client.publish(deviceTopic(b.id, 'status'), '{}', { qos: 0 });
    await waitFor(() => counters.get('mqtt.acl.publish.refused') >= 1, 'refusal counted');
    // b's own traffic still flows; a's forged one never arrived.
    await b.client.publishAsync(deviceTopic(b.id, 'status'), '{"own":true}', { qos: 1 });
    await waitFor(() => received.find((m) => m.topic === deviceTopic(b.id, 'status')), "b's own status");
    expect(received.filter((m) => m.topic === deviceTopic(b.id, 'status')).map((m) => m.clientDeviceId)).toEqual([b.id]);
  });

  it('refuses a device publishing a manifest, a command or flags', async () => {
    const { id, client } = await device();
    client.publish(rolloutTopic('rpi4', bucketOf(id)), '{"kind":"rollout"}', { qos: 0, retain: true });
    await waitFor(() => counters.get('mqtt.acl.publish.refused') >= 1, 'manifest refusal');
    const again = await device();
    again.client.publish(deviceTopic(again.id, 'commands'), '{}', { qos: 0 });
    await waitFor(() => counters.get('mqtt.acl.publish.refused') >= 2, 'command refusal');
    const third = await device();
    third.client.publish(FLAGS_TOPIC, '{}', { qos: 0 });
    await waitFor(() => counters.get('mqtt.acl.publish.refused') >= 3, 'flags refusal');
    expect(received).toHaveLength(0);
    // Nothing reached a subscriber of the rollout topic either: nothing was retained.
    const watcher = await device();
    expect(await grantedQos(watcher.client, [rolloutTopic('rpi4', bucketOf(watcher.id))])).toEqual([1]);
  });

  it('grants the rollout, command and flags topics and refuses #, + and other devices', async () => {
    const { id, client } = await device();
    const other = uniqueId('dev');
    expect(await grantedQos(client, [rolloutTopic('rpi4', bucketOf(id)), deviceTopic(id, 'commands'), FLAGS_TOPIC])).toEqual([1, 1, 1]);
    const refused = await grantedQos(client, 
      ['#', 'fleet/v1/devices/+/status', deviceTopic(other, 'commands'), deviceTopic(id, 'status'), rolloutTopic('other-model', bucketOf(id)), rolloutTopic('rpi4', (bucketOf(id) + 1) % 1024), '$SYS/#'],
    );
    expect(refused).toEqual([128, 128, 128, 128, 128, 128, 128]);
    expect(counters.get('mqtt.acl.subscribe.refused')).toBe(7);
  });

  it('receives what the coordinator publishes in-process on granted topics only', async () => {
    const { id, client } = await device();
    await client.subscribeAsync(deviceTopic(id, 'commands'), { qos: 1 });
    const got = new Promise<string>((resolve) => client.once('message', (topic) => resolve(topic)));
    await broker.publish(deviceTopic(id, 'commands'), Buffer.from('{}'), { qos: 1, retain: false });
    expect(await got).toBe(deviceTopic(id, 'commands'));
  });
});

describe('acl rules (pure)', () => {
  const me = { deviceId: 'dev-1', hardwareModel: 'rpi4' };
  it.each([
    ['fleet/v1/devices/dev-1/hello', true],
    ['fleet/v1/devices/dev-1/status', true],
    ['fleet/v1/devices/dev-1/telemetry', true],
    ['fleet/v1/devices/dev-1/presence', true],
    ['fleet/v1/devices/dev-1/commands', false],
    ['fleet/v1/devices/dev-2/status', false],
    ['fleet/v1/flags', false],
    [`fleet/v1/rollout/rpi4/${bucketOf('dev-1')}`, false],
    ['fleet/v1/devices/dev-1/status/extra', false],
    ['other/topic', false],
  ])('publish %s → %s', (topic, ok) => {
    expect(authorizeDevicePublish(me, topic).ok).toBe(ok);
  });

  it('lets a device whose model is not known yet read its own bucket only', () => {
    const unknown = { deviceId: 'dev-1', hardwareModel: undefined };
    expect(authorizeDeviceSubscribe(unknown, `fleet/v1/rollout/any/${bucketOf('dev-1')}`).ok).toBe(true);
    expect(authorizeDeviceSubscribe(unknown, `fleet/v1/rollout/any/${(bucketOf('dev-1') + 1) % 1024}`).ok).toBe(false);
  });
});

describe('acknowledgement', () => {
  it('sends a QoS 1 PUBACK only after the ingest handler has acknowledged the message', async () => {
    let release: (() => void) | undefined;
    const handled = new Promise<void>((resolve) => {
      broker.onMessage((m) => {
        release = () => m.ack();
        resolve();
      });
    });
    const { id, client } = await device();
    let acked = false;
    const puback = new Promise<void>((resolve, reject) =>
      client.publish(deviceTopic(id, 'status'), '{}', { qos: 1 }, (err) => {
        acked = true;
        if (err) reject(err);
        else resolve();
      }),
    );
    await handled;
    // Held by the handler: no PUBACK may arrive (Aedes' own order would have sent it already).
    await new Promise((r) => setTimeout(r, 300));
    expect(acked).toBe(false);
    release!();
    await puback;
  });

  it('closes the connection unacknowledged when the handler fails, and the device sends the message again', async () => {
    const seen: string[] = [];
    broker.onMessage((m) => {
      seen.push(m.topic);
      m.ack(seen.length === 1 ? new Error('store unavailable') : undefined);
    });
    const id = uniqueId('dev');
    const { secret } = await credentials.provision(id);
    const client = await mqtt.connectAsync(broker.url, { clientId: id, username: id, password: secret, clean: false, reconnectPeriod: 100, connectTimeout: 5000 });
    clients.push(client);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const sent = client.publishAsync(deviceTopic(id, 'status'), '{}', { qos: 1 });
    await closed;
    await sent;
    expect(seen).toEqual([deviceTopic(id, 'status'), deviceTopic(id, 'status')]);
  });
});
