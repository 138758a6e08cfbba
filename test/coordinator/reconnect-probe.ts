/**
 * A device with a persistent session reconnecting again and again while QoS 1 commands for it keep
 * being published: what each reconnect saw first, and which commands arrived. Shared by the in-memory
 * and the clustered broker's tests.
 */
import mqtt from 'mqtt';
import { deviceTopic } from '../../protocol/topics.js';
import { waitFor } from './helpers.js';

export interface ReconnectProbe {
  device: { id: string; secret: string };
  /** Subscribes the session here first. */
  firstUrl: string;
  /** Where the device reconnects. */
  url: string;
  publish(topic: string, payload: Buffer): unknown;
  rounds: number;
  everyMs: number;
  connectTimeoutMs: number;
  /** Each reconnect's outcome and first packet from the broker, as it happens. */
  onReconnect(outcome: string, firstPacket: string): void;
}

/** Runs the reconnects; each one waits for the latest command published so far. */
export async function reconnectWhileCommandsFlow(p: ReconnectProbe): Promise<{ sent: number; got: Set<string> }> {
  const topic = deviceTopic(p.device.id, 'commands');
  const options = { clientId: p.device.id, username: p.device.id, password: p.device.secret, clean: false, reconnectPeriod: 0, connectTimeout: p.connectTimeoutMs };
  const first = await mqtt.connectAsync(p.firstUrl, options);
  await first.subscribeAsync(topic, { qos: 1 });
  await first.endAsync();
  let sent = 0;
  const got = new Set<string>();
  for (let i = 0; i < p.rounds; i++) {
    const flow = setInterval(() => void p.publish(topic, Buffer.from(String(++sent))), p.everyMs);
    const c = mqtt.connect(p.url, options);
    const firstPacket = new Promise<string>((resolve) => c.once('packetreceive', (packet) => resolve(packet.cmd)));
    c.on('message', (_t, payload) => got.add(payload.toString('utf8')));
    c.on('error', () => undefined);
    const outcome = await new Promise<string>((resolve) => {
      c.once('connect', () => resolve('connected'));
      c.once('close', () => resolve('closed'));
    });
    clearInterval(flow);
    p.onReconnect(outcome, await firstPacket);
    const last = String(sent);
    await waitFor(() => got.has(last), `command ${last}`, 10_000);
    await c.endAsync();
  }
  return { sent, got };
}
