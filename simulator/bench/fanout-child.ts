/**
 * Benchmark child process: N device-like mqtt.js clients, each subscribed (QoS 1) to its own bucket's
 * rollout topic exactly as an agent is, recording when the wave's manifest reaches it.
 *
 * IPC: {cmd:'connect', url, n, prefix, model, secrets?} → {type:'connected'}; {cmd:'wait', timeoutMs} →
 * {type:'received', count, lastAt (epoch ms of the last first-arrival)}; {cmd:'stop'}.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { bucketOf } from '@fleet/protocol/bucket';
import { deviceTopic, rolloutTopic } from '@fleet/protocol/topics';
import { boundedEach } from './measure.js';

let clients: MqttClient[] = [];
let got = 0;
let lastAt = 0;
let waiters: Array<() => void> = [];

async function connect(url: string, n: number, prefix: string, model: string, secrets: Record<string, string> | undefined): Promise<void> {
  clients = new Array<MqttClient>(n);
  await boundedEach(n, 100, (i) =>
    new Promise<void>((resolve, reject) => {
      const id = `${prefix}-${String(i).padStart(5, '0')}`;
      const secret = secrets?.[id];
      const c = mqtt.connect(url, { clientId: id, reconnectPeriod: 0, keepalive: 600, ...(secret ? { username: id, password: secret } : {}) });
      clients[i] = c;
      let seen = false;
      c.on('message', (_topic, payload) => {
        if (seen || payload.length === 0) return;
        seen = true;
        got++;
        lastAt = Date.now();
        if (got === n) for (const w of waiters.splice(0)) w();
      });
      c.once('connect', () => {
        const hello = { v: 1, kind: 'hello', deviceId: id, hardwareModel: model, firmwareVersion: '1.0.0', activeSlot: 'A', agentVersion: 'bench', bucket: bucketOf(id), tags: [], securityFloor: 0, at: Date.now() };
        c.publish(deviceTopic(id, 'hello'), JSON.stringify(hello), { qos: 1 });
        c.subscribe(rolloutTopic(model, bucketOf(id)), { qos: 1 }, (err) => (err ? reject(err) : resolve()));
      });
      c.once('error', reject);
    }),
  );
}

process.on('message', (msg: { cmd: string; url?: string; n?: number; prefix?: string; model?: string; timeoutMs?: number; secrets?: Record<string, string> }) => {
  void (async () => {
    if (msg.cmd === 'connect') {
      await connect(msg.url!, msg.n!, msg.prefix!, msg.model!, msg.secrets);
      process.send?.({ type: 'connected' });
    } else if (msg.cmd === 'wait') {
      if (got < clients.length) {
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, msg.timeoutMs ?? 60_000);
        });
      }
      process.send?.({ type: 'received', count: got, lastAt });
    } else if (msg.cmd === 'stop') {
      waiters = [];
      await Promise.all(clients.map((c) => new Promise<void>((r) => c.end(true, {}, () => r()))));
      process.exit(0);
    }
  })().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
});
process.send?.({ type: 'ready' });
