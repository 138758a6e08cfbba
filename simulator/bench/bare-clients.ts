/**
 * The baseline for "devices per simulator process": plain mqtt.js clients, one connection each, no
 * agent, connected with the same concurrency bound as the simulator uses. I/O shell.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { boundedEach, settledMemory } from './measure.js';

export interface ConnectResult {
  n: number;
  ms: number;
  /** Client-side memory per connection (RSS delta after GC), bytes. */
  bytesPerConnection: number;
  heapPerConnection: number;
  /** Client process CPU (user + system) spent while connecting, ms. */
  cpuMs: number;
}

/** Runs `connect` and measures its wall time and this process's CPU time. */
export async function timed(connect: () => Promise<void>): Promise<{ ms: number; cpuMs: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await connect();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/** Attempts per bare client: on a machine loaded by other work a CONNACK can take past mqtt.js's 30 s. */
const BARE_ATTEMPTS = 5;

/** One bare client, tried again (at once: its slot in the bound is the pacing) after a failed attempt. */
function connectOne(url: string, clientId: string, keep: (c: MqttClient) => void, attempt = 1): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const c = mqtt.connect(url, { clientId, reconnectPeriod: 0, keepalive: 600, clean: true });
    keep(c);
    // A second error (a late timeout, the broker stopping) must not end the process.
    c.on('error', () => undefined);
    c.once('connect', () => resolve());
    c.once('error', (err) => {
      c.end(true);
      if (attempt >= BARE_ATTEMPTS) reject(err);
      else connectOne(url, clientId, keep, attempt + 1).then(resolve, reject);
    });
  });
}

/** Connects `n` bare clients to `url`, measures, and returns them for the caller to close. */
export async function connectBare(url: string, n: number, width: number, prefix: string): Promise<{ result: ConnectResult; clients: MqttClient[] }> {
  const before = await settledMemory();
  const clients: MqttClient[] = new Array<MqttClient>(n);
  const { ms, cpuMs } = await timed(() =>
    boundedEach(n, width, (i) => connectOne(url, `${prefix}-${i}`, (c) => (clients[i] = c))),
  );
  const after = await settledMemory();
  return {
    result: { n, ms, cpuMs, bytesPerConnection: (after.rss - before.rss) / n, heapPerConnection: (after.heapUsed - before.heapUsed) / n },
    clients,
  };
}

export async function closeAll(clients: readonly MqttClient[]): Promise<void> {
  await Promise.all(clients.map((c) => new Promise<void>((resolve) => c.end(true, {}, () => resolve()))));
}
