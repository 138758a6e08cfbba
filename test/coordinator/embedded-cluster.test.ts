/**
 * The embedded cluster's broker layer: embedded brokers (the coordinator's own, with its device
 * authentication, ACLs and in-process ingest) clustered through one real redis-server, real mqtt.js
 * devices over TCP on 127.0.0.1. What one node publishes reaches devices on the others, retained
 * manifests and a persistent session's queued QoS 1 messages follow a device to another node, ACLs
 * refuse the same on every node, each node ingests its own devices only, and a Redis crash leaves
 * devices connected and fan-out recovering. The nodes share one credential store, as replicas share
 * one database.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { CredentialStore } from '../../coordinator/broker/credentials.js';
import { SqliteSql } from '../../coordinator/store/sqlite-sql.js';
import { EmbeddedBroker } from '../../coordinator/broker/embedded-broker.js';
import { Counters } from '../../coordinator/metrics.js';
import { closeDatabase, openDatabase, type Db } from '../../coordinator/store/db.js';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic, FLAGS_TOPIC, rolloutTopic } from '../../protocol/topics.js';
import { hasRedis, RedisServer } from '../support/redis.js';
import { silentLogger, subackCode, uniqueId, waitFor } from './helpers.js';
import { reconnectWhileCommandsFlow } from './reconnect-probe.js';

interface Node {
  broker: EmbeddedBroker;
  counters: Counters;
  /** Device messages this node ingested. */
  received: { topic: string; from: string | undefined }[];
  retainedLost: number;
}

let redis: RedisServer;
let db: Db;
let credentials: CredentialStore;
const models = new Map<string, string>();
const nodes: Node[] = [];
const clients: MqttClient[] = [];

async function startNode(name: string): Promise<Node> {
  const counters = new Counters();
  const broker = new EmbeddedBroker({
    port: 0,
    host: '127.0.0.1',
    credentials,
    allowAnonymous: false,
    hardwareModelOf: (id) => models.get(id),
    logger: silentLogger,
    counters,
    cluster: { redisUrl: redis.url, nodeName: name },
  });
  const node: Node = { broker, counters, received: [], retainedLost: 0 };
  broker.onMessage((m) => {
    node.received.push({ topic: m.topic, from: m.clientDeviceId });
    m.ack();
  });
  broker.onRetainedLost(() => node.retainedLost++);
  await broker.start();
  nodes.push(node);
  return node;
}

async function provision(): Promise<{ id: string; secret: string }> {
  const id = uniqueId('dev');
  models.set(id, 'rpi4');
  return { id, secret: (await credentials.provision(id)).secret };
}

async function connect(node: Node, d: { id: string; secret: string }, options: IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(node.broker.url, { clientId: d.id, username: d.id, password: d.secret, reconnectPeriod: 0, connectTimeout: 10_000, ...options });
  clients.push(c);
  return c;
}

function messages(c: MqttClient): string[] {
  const got: string[] = [];
  c.on('message', (topic, payload) => got.push(`${topic} ${payload.toString('utf8')}`));
  return got;
}

describe.skipIf(!hasRedis)('embedded brokers clustered through Redis', () => {
  let a: Node;
  let b: Node;

  beforeAll(async () => {
    redis = await RedisServer.start();
    db = openDatabase(':memory:');
    credentials = await CredentialStore.load(new SqliteSql(db));
    a = await startNode('a');
    b = await startNode('b');
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });

  afterAll(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    for (const n of nodes.splice(0)) {
      await n.broker.stop();
      await n.broker.stop(); // safe twice
    }
    if (db) closeDatabase(db);
    await redis?.close();
  });

  it('delivers what one node publishes to a device on another, once', async () => {
    const d = await provision();
    const device = await connect(b, d);
    const got = messages(device);
    await device.subscribeAsync(deviceTopic(d.id, 'commands'), { qos: 1 });
    await a.broker.publish(deviceTopic(d.id, 'commands'), Buffer.from('{"n":1}'), { qos: 1, retain: false });
    await waitFor(() => got.length > 0, 'the command published on node a');
    // One more through node b itself: it arrives after the first, and the first only once.
    await b.broker.publish(deviceTopic(d.id, 'commands'), Buffer.from('{"n":2}'), { qos: 1, retain: false });
    await waitFor(() => got.length >= 2, 'the command published on node b');
    expect(got).toEqual([`${deviceTopic(d.id, 'commands')} {"n":1}`, `${deviceTopic(d.id, 'commands')} {"n":2}`]);
  });

  it('delivers live publishes to every device of a node whose persistent sessions subscribe several topics at once', async () => {
    // As agents do: a persistent session, its rollout, commands and flags topics in one SUBSCRIBE.
    const devices = await Promise.all(Array.from({ length: 6 }, () => provision()));
    const got = new Map<string, string[]>();
    await Promise.all(
      devices.map(async (d) => {
        const c = await connect(b, d, { clean: false });
        got.set(d.id, messages(c));
        await c.subscribeAsync([rolloutTopic('rpi4', bucketOf(d.id)), deviceTopic(d.id, 'commands'), FLAGS_TOPIC], { qos: 1 });
      }),
    );
    for (const d of devices) await a.broker.publish(deviceTopic(d.id, 'commands'), Buffer.from(`{"to":"${d.id}"}`), { qos: 1, retain: false });
    for (const d of devices) await a.broker.publish(rolloutTopic('rpi4', bucketOf(d.id)), Buffer.from(`{"manifest":"${d.id}"}`), { qos: 1, retain: false });
    for (const d of devices) {
      await waitFor(() => got.get(d.id)!.length >= 2, `both messages for ${d.id}`, 10_000);
      expect(got.get(d.id)).toEqual([`${deviceTopic(d.id, 'commands')} {"to":"${d.id}"}`, `${rolloutTopic('rpi4', bucketOf(d.id))} {"manifest":"${d.id}"}`]);
    }
  });

  it('gives a device subscribing on another node later the retained manifest', async () => {
    const d = await provision();
    const topic = rolloutTopic('rpi4', bucketOf(d.id));
    await a.broker.publish(topic, Buffer.from(`{"manifest":"${d.id}"}`), { qos: 1, retain: true });
    const device = await connect(b, d);
    const got = messages(device);
    expect(await subackCode(device, topic)).toBe(1);
    await waitFor(() => got.length > 0, 'the retained manifest on node b');
    expect(got).toEqual([`${topic} {"manifest":"${d.id}"}`]);
    // Cleared on one node (an empty retained payload), gone for a device on the other.
    await b.broker.publish(topic, Buffer.alloc(0), { qos: 1, retain: true });
    const again = await connect(a, d);
    const after = messages(again);
    expect(await subackCode(again, topic)).toBe(1);
    await a.broker.publish(deviceTopic(d.id, 'commands'), Buffer.from('{"marker":true}'), { qos: 1, retain: false });
    await again.subscribeAsync(deviceTopic(d.id, 'commands'), { qos: 1 });
    await a.broker.publish(deviceTopic(d.id, 'commands'), Buffer.from('{"marker":2}'), { qos: 1, retain: false });
    await waitFor(() => after.length > 0, 'the marker');
    expect(after).toEqual([`${deviceTopic(d.id, 'commands')} {"marker":2}`]);
  });

  it("delivers a persistent session's QoS 1 messages queued while offline when it reconnects to another node", async () => {
    const d = await provision();
    const first = await connect(a, d, { clean: false });
    await first.subscribeAsync(deviceTopic(d.id, 'commands'), { qos: 1 });
    await first.endAsync();
    await waitFor(() => !a.broker.connectedDevices().has(d.id), 'the device gone from node a');
    for (const n of [1, 2, 3]) await a.broker.publish(deviceTopic(d.id, 'commands'), Buffer.from(`{"queued":${n}}`), { qos: 1, retain: false });
    // Reconnects on node b without subscribing again: the session (and its queue) is the cluster's.
    const got: string[] = [];
    const second = mqtt.connect(b.broker.url, { clientId: d.id, username: d.id, password: d.secret, clean: false, reconnectPeriod: 0 });
    clients.push(second);
    second.on('message', (topic, payload) => got.push(payload.toString('utf8')));
    await waitFor(() => got.length >= 3, 'the queued commands on node b');
    expect(got).toEqual(['{"queued":1}', '{"queued":2}', '{"queued":3}']);
  });

  it("answers a persistent session's CONNECT before anything else while messages for it flow, and loses none", async () => {
    // mqtt.js reads nothing after a QoS 1 message that arrives before its CONNACK until it is connected:
    // the device then sat out its connect timeout (30 s) instead of coming back.
    const d = await provision();
    // Commands published on node a, through Redis, while the device reconnects on node b; every one
    // reaches the device (live, or from its session's queue), and node b closes none of its connections.
    const report = await reconnectWhileCommandsFlow({
      device: d,
      firstUrl: a.broker.url,
      url: b.broker.url,
      publish: (topic, payload) => a.broker.publish(topic, payload, { qos: 1, retain: false }),
      rounds: 10,
      everyMs: 2,
      connectTimeoutMs: 5_000,
      onReconnect: (outcome, firstPacket) => expect([outcome, firstPacket]).toEqual(['connected', 'connack']),
    });
    expect({ missing: report.missing, closedByBroker: report.closedByBroker }).toEqual({ missing: [], closedByBroker: [] });
  }, 60_000);

  it('refuses the same subscriptions and publishes on every node', async () => {
    const d = await provision();
    const other = await provision();
    for (const node of [a, b]) {
      const c = await connect(node, d);
      expect(await subackCode(c, rolloutTopic('rpi4', bucketOf(d.id)))).toBe(1);
      expect(await subackCode(c, FLAGS_TOPIC)).toBe(1);
      for (const forbidden of ['#', deviceTopic(other.id, 'commands'), rolloutTopic('rpi4', (bucketOf(d.id) + 1) % 1024), '$SYS/#']) {
        expect(await subackCode(c, forbidden), `${forbidden} on node ${nodes.indexOf(node)}`).toBe(0x80);
      }
      // Another device's status: the broker closes the connection, nothing is ingested.
      c.publish(deviceTopic(other.id, 'status'), '{"forged":true}', { qos: 1 });
      await waitFor(() => !c.connected, 'the forging connection closed');
      expect(node.counters.get('mqtt.acl.publish.refused')).toBeGreaterThanOrEqual(1);
    }
    expect([...a.received, ...b.received].filter((m) => m.topic === deviceTopic(other.id, 'status'))).toEqual([]);
    // And a wrong secret is refused on both.
    for (const node of [a, b]) await expect(connect(node, { id: d.id, secret: 'wrong' })).rejects.toThrow(/Bad username or password|Not authorized/i);
  });

  it("ingests a device's messages on its own node only", async () => {
    const d = await provision();
    const c = await connect(b, d);
    await c.publishAsync(deviceTopic(d.id, 'status'), '{}', { qos: 1 });
    expect(b.received).toContainEqual({ topic: deviceTopic(d.id, 'status'), from: d.id });
    // Node a never saw it: the PUBACK above came after b's ingest; a's fan-out copy (if any) is not ingest.
    await a.broker.publish(deviceTopic(d.id, 'commands'), Buffer.from('{}'), { qos: 1, retain: false });
    expect(a.received.filter((m) => m.from === d.id)).toEqual([]);
  });

  it('keeps local devices through a Redis crash and recovers fan-out and retained messages after it', async () => {
    const d = await provision();
    const onB = await connect(b, d);
    const got = messages(onB);
    await onB.subscribeAsync(deviceTopic(d.id, 'commands'), { qos: 1 });
    let closed = 0;
    onB.on('close', () => closed++);
    await redis.kill();
    // Ingest on the device's node goes on without Redis: the status is acknowledged after b stored it.
    await onB.publishAsync(deviceTopic(d.id, 'status'), '{"during":"outage"}', { qos: 1 });
    await waitFor(() => b.received.some((m) => m.topic === deviceTopic(d.id, 'status')), 'ingest during the outage');
    await waitFor(() => b.counters.get('cluster.redis.errors') > 0 && a.counters.get('cluster.redis.errors') > 0, 'both nodes saw the outage');
    await redis.restart();
    // Redis came back empty: one node notices and asks for the retained messages again.
    await waitFor(() => a.retainedLost + b.retainedLost === 1, 'the reset noticed');
    // Fan-out recovers (the first publishes may still wait for the reconnect; the device gets them all).
    let n = 0;
    await waitFor(async () => {
      await a.broker.publish(deviceTopic(d.id, 'commands'), Buffer.from(`{"after":${++n}}`), { qos: 1, retain: false });
      return got.length > 0;
    }, 'a command through the restarted Redis', 30_000);
    expect(onB.connected).toBe(true);
    expect(closed).toBe(0);
    expect(b.broker.connectedDevices().has(d.id)).toBe(true);
    // Retained messages published again reach a device subscribing on the other node.
    const topic = rolloutTopic('rpi4', bucketOf(d.id));
    await b.broker.publish(topic, Buffer.from('{"restored":true}'), { qos: 1, retain: true });
    const late = await connect(a, d);
    const lateGot = messages(late);
    expect(await subackCode(late, topic)).toBe(1);
    await waitFor(() => lateGot.length > 0, 'the retained manifest after the restart');
    expect(lateGot[0]).toBe(`${topic} {"restored":true}`);
  }, 60_000);
});
