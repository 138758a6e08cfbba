/**
 * Broker authentication and ACLs, the same tests against both brokers devices may connect to: the
 * embedded Aedes, and Debian's Mosquitto whose dynamic-security accounts the coordinator keeps
 * (acl-brokers.ts), each on 127.0.0.1 with real mqtt.js clients. A device may publish only its own
 * hello/status/telemetry/presence and subscribe only to its rollout topic, its command topic and the
 * flags topic; a forbidden subscription is refused with SUBACK 0x80 on both, not merely filtered.
 * Where the brokers differ in how they refuse a publish (Aedes closes the connection, Mosquitto drops
 * the message, or answers PUBACK 0x87 to an MQTT 5 client), the tests prove what matters on both:
 * nothing forged reaches the coordinator or another device.
 */
import { STORE_KINDS, openTestStore } from '../support/postgres.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { CredentialStore } from '../../coordinator/broker/credentials.js';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic, FLAGS_TOPIC, rolloutTopic } from '../../protocol/topics.js';
import { authorizeDevicePublish, authorizeDeviceSubscribe } from '../../coordinator/broker/acl.js';
import { BROKERS } from '../support/mosquitto-dynsec.js';
import { startAclBroker, type AclBroker } from './acl-brokers.js';
import { subackCode, uniqueId, waitFor } from './helpers.js';

let broker: AclBroker;
const clients: MqttClient[] = [];

async function connect(deviceId: string, password: string | undefined, clientId = deviceId, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(broker.url, {
    clientId,
    ...(password !== undefined ? { username: deviceId, password } : {}),
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...options,
  });
  clients.push(c);
  return c;
}

/** The return codes of the broker's SUBACK packets as they came off the wire, one topic per SUBSCRIBE. */
async function grantedQos(client: MqttClient, topics: string[]): Promise<number[]> {
  const codes: number[] = [];
  for (const t of topics) codes.push(await subackCode(client, t));
  return codes;
}

async function device(model: string | null = 'rpi4'): Promise<{ id: string; secret: string; client: MqttClient }> {
  const id = uniqueId('dev');
  const secret = await broker.provision(id, model);
  return { id, secret, client: await connect(id, secret) };
}

/**
 * Publishes where the device may not, then proves it went nowhere: either the broker closed the
 * connection (Aedes), or the device's own next message reached the coordinator without it (Mosquitto,
 * which passes on one connection's messages in order).
 */
async function refusedPublish(d: { id: string; client: MqttClient }, topic: string, retain = false): Promise<void> {
  const marker = JSON.stringify({ marker: uniqueId('m') });
  d.client.publish(topic, '{"forged":true}', { qos: 1, retain });
  d.client.publish(deviceTopic(d.id, 'status'), marker, { qos: 1 });
  await waitFor(() => !d.client.connected || broker.received.some((m) => m.payload === marker), `${topic} refused`);
  expect(broker.received.filter((m) => m.payload.includes('forged'))).toEqual([]);
}

const BAD_LOGIN = /Bad username or password|Not authorized/i;

describe.each(BROKERS)('on the %s broker', (kind) => {
  beforeEach(async () => {
    broker = await startAclBroker(kind);
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    await broker.stop();
  });

  describe('device authentication', () => {
    it('accepts a provisioned device and refuses a wrong secret, an unknown device and anonymous clients', async () => {
      const { id } = await device();
      await expect(connect(id, 'wrong-secret', `${id}`)).rejects.toThrow(BAD_LOGIN);
      await expect(connect(uniqueId('ghost'), 'whatever')).rejects.toThrow(BAD_LOGIN);
      await expect(connect(uniqueId('anon'), undefined)).rejects.toThrow(BAD_LOGIN);
      if (broker.counters) expect(broker.counters.get('mqtt.auth.refused')).toBe(3);
    });

    it('refuses a client id that is not the device id (no session takeover)', async () => {
      const { id, secret, client } = await device();
      await expect(connect(id, secret, uniqueId('other'))).rejects.toThrow(/Identifier rejected|Not authorized/i);
      expect(client.connected).toBe(true);
    });
  });

  describe('device ACLs', () => {
    it('delivers a device publishing its own hello, status, telemetry and presence', async () => {
      const { id, client } = await device();
      for (const channel of ['hello', 'status', 'telemetry', 'presence'] as const) await client.publishAsync(deviceTopic(id, channel), '{}', { qos: 1 });
      await waitFor(() => broker.received.length >= 4, 'own messages');
      expect(broker.received.map((m) => m.topic)).toEqual(['hello', 'status', 'telemetry', 'presence'].map((c) => deviceTopic(id, c as 'hello')));
    });

    it("refuses a device publishing another device's status", async () => {
      const a = await device();
      const b = await device();
      await refusedPublish(a, deviceTopic(b.id, 'status'));
      if (broker.counters) expect(broker.counters.get('mqtt.acl.publish.refused')).toBe(1);
      // b's own traffic still flows.
      await b.client.publishAsync(deviceTopic(b.id, 'status'), '{"own":true}', { qos: 1 });
      await waitFor(() => broker.received.find((m) => m.payload === '{"own":true}'), "b's own status");
    });

    it('refuses a device publishing a manifest, a command or flags, and retains nothing', async () => {
      const forger = await device();
      const bucket = bucketOf(forger.id);
      await refusedPublish(forger, rolloutTopic('rpi4', bucket), true);
      await refusedPublish(await device(), deviceTopic(forger.id, 'commands'));
      await refusedPublish(await device(), FLAGS_TOPIC, true);
      if (broker.counters) expect(broker.counters.get('mqtt.acl.publish.refused')).toBe(3);
      // A device that reads those topics gets nothing: nothing was passed on or retained. (The
      // coordinator's publish after the subscriptions arrives; a forged message would have come first.)
      const watcher = await device();
      const got: string[] = [];
      watcher.client.on('message', (topic, payload) => got.push(`${topic} ${payload.toString('utf8')}`));
      expect(await grantedQos(watcher.client, [rolloutTopic('rpi4', bucketOf(watcher.id)), FLAGS_TOPIC, deviceTopic(watcher.id, 'commands')])).toEqual([1, 1, 1]);
      await broker.publish(deviceTopic(watcher.id, 'commands'), '{"real":true}');
      await waitFor(() => got.length > 0, 'the real command');
      expect(got).toEqual([`${deviceTopic(watcher.id, 'commands')} {"real":true}`]);
    });

    it('grants the rollout, command and flags topics and refuses #, +, other devices and $SYS with SUBACK 0x80', async () => {
      const { id, client } = await device();
      const other = uniqueId('dev');
      expect(await grantedQos(client, [rolloutTopic('rpi4', bucketOf(id)), deviceTopic(id, 'commands'), FLAGS_TOPIC])).toEqual([1, 1, 1]);
      const refused = await grantedQos(client, [
        '#',
        'fleet/v1/devices/+/status',
        deviceTopic(other, 'commands'),
        deviceTopic(id, 'status'),
        rolloutTopic('other-model', bucketOf(id)),
        rolloutTopic('rpi4', (bucketOf(id) + 1) % 1024),
        `fleet/v1/rollout/+/${bucketOf(id)}`,
        'fleet/v1/rollout/#',
        '$SYS/#',
      ]);
      expect(refused).toEqual([128, 128, 128, 128, 128, 128, 128, 128, 128]);
      if (broker.counters) expect(broker.counters.get('mqtt.acl.subscribe.refused')).toBe(9);
      // The refused filters deliver nothing: the coordinator's command to the other device never arrives here.
      const got: string[] = [];
      client.on('message', (topic) => got.push(topic));
      await broker.publish(deviceTopic(other, 'commands'), '{}');
      await broker.publish(deviceTopic(id, 'commands'), '{}');
      await waitFor(() => got.length > 0, 'own command');
      expect(got).toEqual([deviceTopic(id, 'commands')]);
    });

    it('lets a device whose model is not known yet read its own bucket of any model, never a wildcard', async () => {
      const { id, client } = await device(null);
      const bucket = bucketOf(id);
      expect(await grantedQos(client, [rolloutTopic('rpi4', bucket), rolloutTopic('cm4', bucket)])).toEqual([1, 1]);
      expect(await grantedQos(client, [`fleet/v1/rollout/+/${bucket}`, rolloutTopic('cm4', (bucket + 1) % 1024), 'fleet/v1/rollout/#'])).toEqual([128, 128, 128]);
    });

    it('receives what the coordinator publishes on granted topics', async () => {
      const { id, client } = await device();
      await client.subscribeAsync(deviceTopic(id, 'commands'), { qos: 1 });
      const got = new Promise<string>((resolve) => client.once('message', (topic) => resolve(topic)));
      await broker.publish(deviceTopic(id, 'commands'), '{}');
      expect(await got).toBe(deviceTopic(id, 'commands'));
    });
  });
});

describe.skipIf(!BROKERS.includes('mosquitto'))('Mosquitto refusing an MQTT 5 publish', () => {
  beforeEach(async () => {
    broker = await startAclBroker('mosquitto');
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    await broker.stop();
  });

  it('answers PUBACK 0x87 (not authorized) and SUBACK 0x87, and keeps the connection', async () => {
    const id = uniqueId('dev');
    const secret = await broker.provision(id);
    const client = await connect(id, secret, id, { protocolVersion: 5 });
    await expect(client.publishAsync(FLAGS_TOPIC, '{}', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    expect(await grantedQos(client, ['#', FLAGS_TOPIC])).toEqual([0x87, 1]);
    await client.publishAsync(deviceTopic(id, 'status'), '{}', { qos: 1 });
    expect(client.connected).toBe(true);
  });
});

describe.each(STORE_KINDS)('credential store on %s', (kind) => {
  it('stores only a sha256 of the secret; rotation and revocation take effect at once', async () => {
    const sql = await openTestStore(kind);
    const credentials = await CredentialStore.load(sql);
    const id = uniqueId('dev');
    const { secret } = await credentials.provision(id);
    const row = await sql.get<{ secret_hash: string }>('SELECT secret_hash FROM device_credentials WHERE device_id = ?', [id]);
    expect(row!.secret_hash).toMatch(/^sha256\$[A-Za-z0-9+/]{43}=$/);
    expect(row!.secret_hash).not.toContain(secret);
    expect(await credentials.verify(id, secret)).toBe(true);
    expect(await credentials.verify(id, secret + 'x')).toBe(false);
    expect([credentials.has(id), credentials.isProvisioned(id)]).toEqual([true, true]);
    await expect(credentials.provision(id)).rejects.toThrow(/already has credentials/);
    const rotated = await credentials.provision(id, { rotate: true });
    expect(await credentials.verify(id, secret)).toBe(false);
    expect(await credentials.verify(id, rotated.secret)).toBe(true);
    expect(await credentials.revoke(id)).toBe(true);
    expect(await credentials.verify(id, rotated.secret)).toBe(false);
    expect([credentials.has(id), credentials.isProvisioned(id)]).toEqual([false, true]);
    expect(credentials.all()).toEqual([{ deviceId: id, revoked: true }]);
    expect(await credentials.revoke('never-provisioned')).toBe(false);
  });

  it('a second coordinator on the same store: logins read the store, the id index on reload', async () => {
    const sql = await openTestStore(kind);
    const here = await CredentialStore.load(sql);
    const there = await CredentialStore.load(sql);
    const id = uniqueId('dev');
    const { secret } = await there.provision(id);
    expect(await here.verify(id, secret)).toBe(true);
    await there.revoke(id);
    await here.reload();
    expect(await here.verify(id, secret)).toBe(false);
    expect([here.has(id), here.isProvisioned(id)]).toEqual([false, true]);
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

describe('acknowledgement on the embedded broker (Mosquitto: external-broker.test.ts)', () => {
  beforeEach(async () => {
    broker = await startAclBroker('embedded');
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    await broker.stop();
  });

  it('sends a QoS 1 PUBACK only after the ingest handler has acknowledged the message', async () => {
    // A slow store: the handler acknowledges only after another device's message has made a full
    // round trip through the broker — long after Aedes' own order would have sent the PUBACK.
    const events: string[] = [];
    const other = await device();
    const otherTopic = deviceTopic(other.id, 'status');
    let held: { ack(err?: Error): void } | undefined;
    broker.embedded!.onMessage((m) => {
      if (m.topic === otherTopic) {
        events.push('other-delivered');
        m.ack();
        if (held) {
          events.push('handler-ack');
          held.ack();
        }
        return;
      }
      events.push('handler-got');
      held = m;
      other.client.publish(otherTopic, '{}', { qos: 1 });
    });
    const { id, client } = await device();
    await client.publishAsync(deviceTopic(id, 'status'), '{}', { qos: 1 });
    events.push('puback');
    expect(events).toEqual(['handler-got', 'other-delivered', 'handler-ack', 'puback']);
  });

  it('closes the connection unacknowledged when the handler fails, and the device sends the message again', async () => {
    const seen: string[] = [];
    broker.embedded!.onMessage((m) => {
      seen.push(m.topic);
      m.ack(seen.length === 1 ? new Error('store unavailable') : undefined);
    });
    const id = uniqueId('dev');
    const secret = await broker.provision(id);
    const client = await mqtt.connectAsync(broker.url, { clientId: id, username: id, password: secret, clean: false, reconnectPeriod: 100, connectTimeout: 5000 });
    clients.push(client);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const sent = client.publishAsync(deviceTopic(id, 'status'), '{}', { qos: 1 });
    await closed;
    await sent;
    expect(seen).toEqual([deviceTopic(id, 'status'), deviceTopic(id, 'status')]);
  });
});
