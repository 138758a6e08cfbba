/**
 * Benchmark child process: N device connections (mqtt.js: CONNECT, then a QoS 1 hello) that then offer
 * telemetry at a given rate, in their own process so that the broker side's rate is what is measured.
 * Messages are valid v1 telemetry (~300 bytes), the same the agents send, each a QoS 0 PUBLISH on the
 * device's own connection.
 *
 * The telemetry packets are encoded here and written straight to each connection's socket: through
 * mqtt.js's publish() this process spent ~17 µs per message and could not offer more than ~58,000
 * msg/s, so a bare broker's figure was the load generator's limit, not the broker's. The broker sees
 * the same bytes either way (one PUBLISH per write).
 *
 * IPC: {cmd:'connect', url, n, prefix, credentials?} → {type:'connected', ms};
 *      {cmd:'blast', rate, seconds} → {type:'blasted', sent, ms, startedAt, endedAt (epoch ms), cpuUs};
 *      {cmd:'stop'} exits.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { bucketOf } from '@fleet/protocol/bucket';
import { deviceTopic } from '@fleet/protocol/topics';
import { boundedEach } from './measure.js';
import { cpuMicros } from './count-watch.js';
import { qos0Publish } from './publish-packet.js';

let clients: MqttClient[] = [];
let ids: string[] = [];
const seqs: number[] = [];

let topics: Buffer[] = [];

/** Device i's next telemetry message (JSON of a valid v1 message; ids are plain ASCII by the id rule). */
function telemetry(i: number): string {
  const seq = (seqs[i] = (seqs[i] ?? 0) + 1);
  return `{"v":1,"kind":"telemetry","deviceId":"${ids[i]!}","firmwareVersion":"1.0.0","slot":"A","uptimeS":${100 + seq},"bootCount":1,` +
    `"metrics":{"cpuPct":${20 + (seq % 7)},"memUsedMb":310.5,"memTotalMb":4096,"temperatureC":51.2,"powerW":3.41,"bootTimeS":24},` +
    `"counters":{"crashes":0,"agentRestarts":0,"errors":${seq % 3},"reboots":0},"custom":{},"logs":[],"seq":${seq},"at":${Date.now()}}`;
}

async function connect(url: string, n: number, prefix: string, secrets: Record<string, string> | undefined): Promise<void> {
  ids = Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);
  topics = ids.map((id) => Buffer.from(deviceTopic(id, 'telemetry')));
  clients = new Array<MqttClient>(n);
  await boundedEach(n, 100, (i) =>
    new Promise<void>((resolve, reject) => {
      const id = ids[i]!;
      const secret = secrets?.[id];
      const c = mqtt.connect(url, { clientId: id, reconnectPeriod: 0, keepalive: 600, ...(secret ? { username: id, password: secret } : {}) });
      clients[i] = c;
      c.once('connect', () => {
        const hello = {
          v: 1, kind: 'hello', deviceId: id, hardwareModel: 'bench', firmwareVersion: '1.0.0', activeSlot: 'A', agentVersion: 'bench',
          bucket: bucketOf(id), tags: [], securityFloor: 0, at: Date.now(),
        };
        c.publish(deviceTopic(id, 'hello'), JSON.stringify(hello), { qos: 1 }, (err) => (err ? reject(err) : resolve()));
      });
      c.once('error', reject);
    }),
  );
}

async function blast(rate: number, seconds: number): Promise<{ sent: number; ms: number; startedAt: number; endedAt: number; cpuUs: number }> {
  const cpu0 = cpuMicros();
  const startedAt = Date.now();
  const tickMs = 10;
  const perTick = rate * (tickMs / 1000);
  let sent = 0;
  let owed = 0;
  let next = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    const tickStart = performance.now();
    owed += perTick;
    while (owed >= 1) {
      const i = next++ % clients.length;
      clients[i]!.stream.write(qos0Publish(topics[i]!, telemetry(i)));
      sent++;
      owed--;
    }
    const wait = tickMs - (performance.now() - tickStart);
    await new Promise((r) => setTimeout(r, Math.max(0, wait)));
  }
  return { sent, ms: performance.now() - t0, startedAt, endedAt: Date.now(), cpuUs: cpuMicros() - cpu0 };
}

process.on('message', (msg: { cmd: string; url?: string; n?: number; prefix?: string; rate?: number; seconds?: number; secrets?: Record<string, string> }) => {
  void (async () => {
    if (msg.cmd === 'connect') {
      const t0 = performance.now();
      await connect(msg.url!, msg.n!, msg.prefix!, msg.secrets);
      process.send?.({ type: 'connected', ms: performance.now() - t0 });
    } else if (msg.cmd === 'blast') {
      process.send?.({ type: 'blasted', ...(await blast(msg.rate!, msg.seconds!)) });
    } else if (msg.cmd === 'stop') {
      await Promise.all(clients.map((c) => new Promise<void>((r) => c.end(true, {}, () => r()))));
      process.exit(0);
    }
  })().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
});
process.send?.({ type: 'ready' });
