/**
 * Last wills in the embedded cluster (docs/embedded-cluster.md, Failures): a will reports a device
 * offline only if the device is connected nowhere now. A node killed with SIGKILL (its own process)
 * leaves its devices' wills in Redis; a surviving node publishes them once the node is missed. Those of
 * devices that came back on another node are dropped unpublished, the others are ingested as the
 * device's own publish. A connection closed because the device connected to another node reports
 * neither its will nor a disconnect; a connection that just ends still reports both. A node that
 * starts says it is alive at once, not a heartbeat later (until then its devices' wills looked dead).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { Redis } from 'ioredis';
import { CredentialStore } from '../../coordinator/broker/credentials.js';
import { EmbeddedBroker } from '../../coordinator/broker/embedded-broker.js';
import { Counters } from '../../coordinator/metrics.js';
import { SqliteSql } from '../../coordinator/store/sqlite-sql.js';
import { closeDatabase, openDatabase, type Db } from '../../coordinator/store/db.js';
import { deviceTopic } from '../../protocol/topics.js';
import { repoRoot, spawnProcess, tsLoader, type RunningProcess } from '../support/processes.js';
import { hasRedis, RedisServer } from '../support/redis.js';
import { silentLogger, uniqueId, waitFor } from './helpers.js';

/** Short heartbeats: a node is missed after 0.6 s, wills are checked every 0.8 s. */
const HEARTBEAT_MS = 200;

interface Node {
  broker: EmbeddedBroker;
  counters: Counters;
  /** Device messages this node ingested. */
  received: { topic: string; from: string | undefined }[];
  /** Devices this node reported gone. */
  disconnects: string[];
}

interface Device {
  id: string;
  secret: string;
}

let redis: RedisServer;
let raw: Redis;
let dir: string;
let db: Db;
let credentials: CredentialStore;
const nodes: Node[] = [];
const clients: MqttClient[] = [];
const children: RunningProcess[] = [];

async function startNode(name: string, heartbeatMs = HEARTBEAT_MS): Promise<Node> {
  const counters = new Counters();
  const broker = new EmbeddedBroker({
    port: 0,
    host: '127.0.0.1',
    credentials,
    allowAnonymous: false,
    hardwareModelOf: () => 'rpi4',
    logger: silentLogger,
    counters,
    cluster: { redisUrl: redis.url, nodeName: name, heartbeatMs },
  });
  const node: Node = { broker, counters, received: [], disconnects: [] };
  broker.onMessage((m) => {
    node.received.push({ topic: m.topic, from: m.clientDeviceId });
    m.ack();
  });
  broker.onConnection({ onDisconnect: (id) => node.disconnects.push(id) });
  await broker.start();
  nodes.push(node);
  return node;
}

/** A node in its own process, to be killed. */
async function startChild(name: string): Promise<{ url: string; process: RunningProcess }> {
  const p = spawnProcess(process.execPath, ['--import', tsLoader, join(repoRoot, 'test/coordinator/cluster-node-child.ts'), redis.url, join(dir, 'credentials.db'), name, String(HEARTBEAT_MS)]);
  children.push(p);
  const line = await p.waitForLine(/^\{"url"/, 30_000);
  return { url: (JSON.parse(line) as { url: string }).url, process: p };
}

async function provision(): Promise<Device> {
  const id = uniqueId('will');
  return { id, secret: (await credentials.provision(id)).secret };
}

const presence = (id: string): string => deviceTopic(id, 'presence');

/** As an agent connects: a persistent session whose last will says the device went offline. */
async function connect(url: string, d: Device, options: IClientOptions = {}): Promise<MqttClient> {
  const will = { topic: presence(d.id), payload: Buffer.from(JSON.stringify({ v: 1, kind: 'presence', deviceId: d.id, state: 'offline' })), qos: 1 as const, retain: false };
  const c = await mqtt.connectAsync(url, { clientId: d.id, username: d.id, password: d.secret, clean: false, reconnectPeriod: 0, connectTimeout: 10_000, will, ...options });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

/** The presence messages the nodes ingested, by device. */
function presenceIngested(...of: Node[]): string[] {
  return of.flatMap((n) => n.received.filter((m) => m.topic.endsWith('/presence')).map((m) => m.from ?? '?'));
}

/** The broker ids holding a will for the device in Redis (aedes-persistence-redis: `will:<broker>:<client>`). */
async function willsOf(id: string): Promise<string[]> {
  return (await raw.lrange('will', 0, -1)).filter((k) => k.endsWith(`:${id}`)).map((k) => k.split(':')[1]!);
}

describe.skipIf(!hasRedis)('last wills in the embedded cluster', () => {
  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url);
    dir = mkdtempSync(join(tmpdir(), 'fleet-cluster-wills-'));
    db = openDatabase(join(dir, 'credentials.db'));
    credentials = await CredentialStore.load(new SqliteSql(db));
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    for (const p of children.splice(0)) await p.stop('SIGKILL');
    for (const n of nodes.splice(0)) await n.broker.stop();
  });

  afterAll(async () => {
    raw?.disconnect();
    if (db) closeDatabase(db);
    await redis?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("drops a dead node's wills of devices connected elsewhere and ingests the others", { timeout: 60_000 }, async () => {
    const [back, elsewhere, gone] = [await provision(), await provision(), await provision()];
    const b = await startNode('b');
    const c = await startNode('c');
    const x = await startChild('x');
    for (const d of [back, elsewhere, gone]) await connect(x.url, d);
    await x.process.stop('SIGKILL');
    // Two devices come back (as agents do, on the next node in their list); one does not.
    await connect(b.broker.url, back);
    await connect(c.broker.url, elsewhere);
    // Once x is missed, b or c publishes its wills: the device that did not come back is offline.
    await waitFor(() => presenceIngested(b, c).includes(gone.id), 'the will of the device that did not come back', 30_000);
    // Every will of x has been through a full check on both nodes since.
    const checked = [b, c].map((n) => n.counters.get('cluster.wills.checks'));
    await waitFor(() => [b, c].every((n, i) => n.counters.get('cluster.wills.checks') >= checked[i]! + 2), 'two more will checks on each node', 30_000);
    expect(presenceIngested(b, c).filter((id) => id !== gone.id)).toEqual([]);
    expect(b.counters.get('cluster.wills.stale') + c.counters.get('cluster.wills.stale')).toBeGreaterThanOrEqual(2);
    // No will of x is left to publish later: the two devices keep only their new node's.
    expect(await willsOf(gone.id)).toEqual([]);
    expect(await willsOf(back.id)).toEqual([await raw.hget('fleet:cluster:connections', back.id)]);
    expect(await willsOf(elsewhere.id)).toEqual([await raw.hget('fleet:cluster:connections', elsewhere.id)]);
    expect(b.broker.connectedDevices().has(back.id) && c.broker.connectedDevices().has(elsewhere.id)).toBe(true);
  });

  it('reports neither will nor disconnect for a connection taken over on another node, both when it just ends', { timeout: 30_000 }, async () => {
    const d = await provision();
    const b = await startNode('b');
    const c = await startNode('c');
    const first = await connect(b.broker.url, d);
    // The same device connects to c while its connection to b is still open: b closes that one.
    const second = await connect(c.broker.url, d);
    await waitFor(() => b.counters.get('cluster.disconnects.moved') === 1, 'b saw the device move to c');
    await waitFor(() => !first.connected, 'the old connection closed');
    expect(b.counters.get('cluster.wills.stale')).toBe(1);
    expect({ presence: presenceIngested(b, c), disconnects: [...b.disconnects, ...c.disconnects] }).toEqual({ presence: [], disconnects: [] });
    expect(c.broker.connectedDevices().has(d.id)).toBe(true);
    // The connection to c ends without a DISCONNECT (a power cut): c reports both.
    second.stream.destroy();
    await waitFor(() => c.disconnects.includes(d.id), 'c reports the device gone');
    await waitFor(() => presenceIngested(c).includes(d.id), 'c ingests its will');
    expect({ presence: presenceIngested(b, c), disconnects: [...b.disconnects, ...c.disconnects] }).toEqual({ presence: [d.id], disconnects: [d.id] });
    expect(await raw.hexists('fleet:cluster:connections', d.id)).toBe(0);
  });

  it('says a node is alive as it starts, not a heartbeat later', { timeout: 30_000 }, async () => {
    const sub = new Redis(redis.url);
    try {
      const heard: string[] = [];
      sub.on('pmessage', (_pattern, channel: string) => heard.push(channel));
      await sub.psubscribe('$SYS/*/heartbeat');
      // Its regular heartbeat is a minute away; other nodes hear from it at once.
      await startNode('fresh', 60_000);
      await waitFor(() => heard.some((ch) => ch.startsWith('$SYS/fresh-')), 'the new node announced', 5_000);
    } finally {
      sub.disconnect();
    }
  });
});
