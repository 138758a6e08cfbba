/**
 * Fan-out through embedded brokers clustered on Redis against one embedded broker, in the same run:
 * the coordinator publishes one QoS 1 command to each of N devices (half of them on the other node
 * when clustered) and we time until every device has its command; then devices connecting and subscribing to their three exact
 * topics with 1,024 retained manifests present (the retained lookup on SUBSCRIBE: the memory
 * persistence's topic index against the Redis persistence's HGET). Starts its own redis-server.
 * Run: `npm run build && node coordinator/dist/bench/cluster-fanout.js [--devices 1000] [--rounds 3]`.
 */
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { deviceTopic, FLAGS_TOPIC, rolloutTopic } from '@fleet/protocol/topics';
import { bucketOf } from '@fleet/protocol/bucket';
import { CredentialStore } from '../broker/credentials.js';
import { SqliteSql } from '../store/sqlite-sql.js';
import { EmbeddedBroker } from '../broker/embedded-broker.js';
import { Counters } from '../metrics.js';
import { openDatabase } from '../store/db.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const DEVICES = arg('devices', 1000);
const ROUNDS = arg('rounds', 3);

const logger = pino({ level: 'silent' });
const db = openDatabase(':memory:');
const credentials = await CredentialStore.load(new SqliteSql(db));
const ids = Array.from({ length: DEVICES }, (_, i) => `bench-${i}`);
const secrets = new Map<string, string>();

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function node(redisUrl: string | undefined): Promise<EmbeddedBroker> {
  const b = new EmbeddedBroker({
    port: 0, host: '127.0.0.1', credentials, allowAnonymous: false, hardwareModelOf: () => 'rpi4', logger, counters: new Counters(),
    ...(redisUrl ? { cluster: { redisUrl } } : {}),
  });
  await b.start();
  return b;
}

async function connectAll(urls: readonly string[], subscribe: (id: string) => string[]): Promise<MqttClient[]> {
  return Promise.all(
    ids.map(async (id, i) => {
      const c = await mqtt.connectAsync(urls[i % urls.length]!, { clientId: id, username: id, password: secrets.get(id)!, reconnectPeriod: 0, keepalive: 600 });
      await c.subscribeAsync(subscribe(id), { qos: 1 });
      return c;
    }),
  );
}

/** One command to every device through `publisher`; ms until every device has it. */
async function fanOut(publisher: EmbeddedBroker, clients: MqttClient[]): Promise<number> {
  let left = clients.length;
  const done = new Promise<void>((resolve) => {
    for (const c of clients) c.once('message', () => --left === 0 && resolve());
  });
  const start = performance.now();
  await Promise.all(ids.map((id) => publisher.publish(deviceTopic(id, 'commands'), Buffer.from('{"kind":"command"}'), { qos: 1, retain: false })));
  await done;
  return performance.now() - start;
}

/** ms for every device to connect and subscribe to its rollout, command and flags topics, 1,024 manifests retained. */
async function connectWithRetained(publisher: EmbeddedBroker, urls: readonly string[]): Promise<number> {
  const manifest = Buffer.alloc(1024, 'm');
  await Promise.all(Array.from({ length: 1024 }, (_, b) => publisher.publish(rolloutTopic('rpi4', b), manifest, { qos: 1, retain: true })));
  await publisher.publish(FLAGS_TOPIC, Buffer.from('{}'), { qos: 1, retain: true });
  const start = performance.now();
  const clients = await connectAll(urls, (id) => [rolloutTopic('rpi4', bucketOf(id)), deviceTopic(id, 'commands'), FLAGS_TOPIC]);
  const ms = performance.now() - start;
  await Promise.all(clients.map((c) => c.endAsync(true)));
  return ms;
}

interface Result { fanOutMs: number; connectMs: number }

async function measure(redisUrl: string | undefined, nodes: number): Promise<Result> {
  const brokers = await Promise.all(Array.from({ length: nodes }, () => node(redisUrl)));
  const urls = brokers.map((b) => b.url);
  try {
    const clients = await connectAll(urls, (id) => [deviceTopic(id, 'commands')]);
    const fanOutMs = await fanOut(brokers[0]!, clients);
    await Promise.all(clients.map((c) => c.endAsync(true)));
    const connectMs = await connectWithRetained(brokers[0]!, urls);
    return { fanOutMs, connectMs };
  } finally {
    for (const b of brokers) await b.stop();
  }
}

const port = await freePort();
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 500));
const redisUrl = `redis://127.0.0.1:${port}`;
try {
  for (const id of ids) secrets.set(id, (await credentials.provision(id)).secret);
  const best: Record<string, Result> = {};
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved, so the machine's noise weighs on every side; the best round of each counts.
    for (const [name, url, n] of [['one node', undefined, 1], ['one node on Redis', redisUrl, 1], ['two nodes on Redis', redisUrl, 2]] as const) {
      const r = await measure(url, n);
      const prev = best[name];
      best[name] = prev ? { fanOutMs: Math.min(prev.fanOutMs, r.fanOutMs), connectMs: Math.min(prev.connectMs, r.connectMs) } : r;
    }
  }
  const base = best['one node']!;
  console.log(`${DEVICES} devices, best of ${ROUNDS} rounds`);
  console.log('setup                 fan-out ms (msg/s)      ratio  connect+subscribe ms  ratio');
  for (const [name, r] of Object.entries(best)) {
    console.log(
      `${name.padEnd(21)} ${r.fanOutMs.toFixed(0).padStart(6)} (${Math.round((DEVICES / r.fanOutMs) * 1000).toString().padStart(6)})  ${(r.fanOutMs / base.fanOutMs).toFixed(2).padStart(10)}  ${r.connectMs.toFixed(0).padStart(20)}  ${(r.connectMs / base.connectMs).toFixed(2).padStart(5)}`,
    );
  }
} finally {
  redis.kill('SIGTERM');
}
