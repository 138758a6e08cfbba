/**
 * A device with a persistent session reconnecting again and again while QoS 1 commands for it keep
 * being published: what each reconnect saw first, which connections the broker closed, and how often
 * each command arrived. Shared by the in-memory and the clustered broker's tests.
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
  /** How long a reconnect waits for the commands it expects. Default 10 s. */
  arrivalTimeoutMs?: number;
  /** Each reconnect's outcome and first packet from the broker, as it happens. */
  onReconnect(outcome: string, firstPacket: string): void;
}

export interface ReconnectReport {
  /** Commands published (payloads "1" … String(sent)). */
  sent: number;
  /** Commands that never arrived. */
  missing: string[];
  /** Extra copies received (QoS 1 is at least once: a command in flight when a connection ended comes again). */
  duplicates: number;
  /** Rounds whose connection the broker closed before the device ended it. */
  closedByBroker: number[];
}

/**
 * Runs the reconnects: each one waits for the latest command published so far and then ends, so
 * commands still queued or in flight come with a later connection; the last one stays until every
 * command has arrived. A connection the broker closes ends its round at once (recorded).
 */
export async function reconnectWhileCommandsFlow(p: ReconnectProbe): Promise<ReconnectReport> {
  const topic = deviceTopic(p.device.id, 'commands');
  const options = { clientId: p.device.id, username: p.device.id, password: p.device.secret, clean: false, reconnectPeriod: 0, connectTimeout: p.connectTimeoutMs };
  const first = await mqtt.connectAsync(p.firstUrl, options);
  await first.subscribeAsync(topic, { qos: 1 });
  await first.endAsync();
  let sent = 0;
  const received = new Map<string, number>();
  const closedByBroker: number[] = [];
  for (let i = 0; i < p.rounds; i++) {
    const flow = setInterval(() => void p.publish(topic, Buffer.from(String(++sent))), p.everyMs);
    const c = mqtt.connect(p.url, options);
    let ending = false;
    let closed = false;
    const firstPacket = new Promise<string>((resolve) => c.once('packetreceive', (packet) => resolve(packet.cmd)));
    c.on('message', (_t, payload) => {
      const n = payload.toString('utf8');
      received.set(n, (received.get(n) ?? 0) + 1);
    });
    c.on('error', () => undefined);
    c.on('close', () => {
      if (!closed && !ending) closedByBroker.push(i);
      closed = true;
    });
    const outcome = await new Promise<string>((resolve) => {
      c.once('connect', () => resolve('connected'));
      c.once('close', () => resolve('closed'));
    });
    clearInterval(flow);
    p.onReconnect(outcome, await firstPacket);
    const lastRound = i === p.rounds - 1;
    const last = String(sent);
    const expected = (): boolean => (lastRound ? received.size === sent : received.has(last));
    await waitFor(() => closed || expected(), lastRound ? `all ${sent} commands` : `command ${last}`, p.arrivalTimeoutMs ?? 10_000);
    ending = true;
    await c.endAsync();
  }
  const missing = Array.from({ length: sent }, (_, n) => String(n + 1)).filter((n) => !received.has(n));
  const duplicates = [...received.values()].reduce((sum, count) => sum + count - 1, 0);
  return { sent, missing, duplicates, closedByBroker };
}
