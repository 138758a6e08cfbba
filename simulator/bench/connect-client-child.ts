/**
 * Benchmark child process: connects N clients of one kind to a broker and reports time and memory,
 * in a fresh process so that no earlier measurement's heap or freed sockets skew the figures.
 *
 * Kinds: `bare` (mqtt.js CONNECT only), `handshake` (mqtt.js doing a device's MQTT work on connect:
 * will, persistent session, one SUBSCRIBE of three topics and a QoS 1 hello), `simulated` (the
 * simulator's devices: the real agent, in-memory slots, behaviour model).
 *
 * argv: kind url n width runId. IPC: {type:'ready'} then {type:'result', ...ConnectResult}; waits for
 * {cmd:'stop'} to disconnect and exit.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { bucketOf } from '@fleet/protocol/bucket';
import { deviceSubscriptions, deviceTopic } from '@fleet/protocol/topics';
import { boundedEach, settledMemory } from './measure.js';
import { connectBare, closeAll, timed, type ConnectResult } from './bare-clients.js';
import { connectSimulated } from './sim-devices.js';

const [kind = 'bare', url = '', nText = '1000', widthText = '200', runId = 'c'] = process.argv.slice(2);
const n = Number(nText);
const width = Number(widthText);

async function handshake(): Promise<{ result: ConnectResult; stop: () => Promise<void> }> {
  const before = await settledMemory();
  const clients = new Array<MqttClient>(n);
  const { ms, cpuMs } = await timed(() => boundedEach(n, width, (i) =>
    new Promise<void>((resolve, reject) => {
      const id = `${runId}-${String(i).padStart(5, '0')}`;
      const c = mqtt.connect(url, {
        clientId: id, clean: false, reconnectPeriod: 0, keepalive: 60, protocolVersion: 4,
        will: { topic: deviceTopic(id, 'presence'), payload: Buffer.from('{"v":1,"kind":"presence","state":"offline"}'), qos: 1, retain: false },
      });
      clients[i] = c;
      c.once('connect', () => {
        c.subscribe(deviceSubscriptions(id, 'rpi4', bucketOf(id)), { qos: 1 });
        c.publish(deviceTopic(id, 'hello'), JSON.stringify({ v: 1, kind: 'hello', deviceId: id, hardwareModel: 'rpi4', firmwareVersion: '1.0.0' }), { qos: 1 });
        resolve();
      });
      c.once('error', reject);
    }),
  ));
  const after = await settledMemory();
  return {
    result: { n, ms, cpuMs, bytesPerConnection: (after.rss - before.rss) / n, heapPerConnection: (after.heapUsed - before.heapUsed) / n },
    stop: () => closeAll(clients),
  };
}

async function run(): Promise<{ result: ConnectResult; stop: () => Promise<void> }> {
  if (kind === 'bare') {
    const { result, clients } = await connectBare(url, n, width, runId);
    return { result, stop: () => closeAll(clients) };
  }
  if (kind === 'handshake') return handshake();
  return connectSimulated(url, n, width, runId);
}

process.send?.({ type: 'ready' });
const { result, stop } = await run();
process.send?.({ type: 'result', ...result });
process.on('message', (msg: { cmd: string }) => {
  if (msg.cmd === 'stop') void stop().finally(() => process.exit(0));
});
