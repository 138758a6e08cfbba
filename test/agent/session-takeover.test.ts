/**
 * What the session makes of a broker that closes a fresh connection and takes it straight back (another
 * client with the device's id took the session over): a warning, and the backoff keeps growing. Under
 * load the broker's close can arrive as a reset (our bytes still unread) rather than a FIN; both must
 * read the same. A minimal broker on a raw socket makes each close exactly what the test says.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MqttSession } from '../../agent/mqtt-session.js';
import { systemClock } from '../../protocol/clock.js';
import { waitFor } from './harness.js';

/** Accepts every CONNECT; closes the first `drops` connections right after the CONNACK, as told. */
async function takeoverBroker(drops: number, close: 'fin' | 'reset'): Promise<{ server: Server; port: number; connects: () => number }> {
  let connects = 0;
  const server = createServer((socket: Socket) => {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    parser.on('packet', (packet) => {
      if (packet.cmd === 'connect') {
        const n = ++connects;
        socket.write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }));
        if (n <= drops) setTimeout(() => (close === 'reset' ? socket.resetAndDestroy() : socket.end()), 20);
      } else if (packet.cmd === 'subscribe') {
        socket.write(mqttPacket.generate({ cmd: 'suback', messageId: packet.messageId ?? 0, granted: packet.subscriptions.map(() => 1) }));
      } else if (packet.cmd === 'pingreq') {
        socket.write(mqttPacket.generate({ cmd: 'pingresp' }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, connects: () => connects };
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('a session taken over by another client', () => {
  for (const close of ['fin', 'reset'] as const) {
    it(`warns and keeps backing off when the broker drops it with a ${close}`, async () => {
      const broker = await takeoverBroker(2, close);
      cleanups.push(() => new Promise((resolve) => broker.server.close(resolve)));
      const lines: Record<string, unknown>[] = [];
      const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
      const session = new MqttSession({
        clientId: 'dev-takeover',
        clientOptions: { host: '127.0.0.1', port: broker.port },
        will: { topic: 'fleet/v1/devices/dev-takeover/presence', payload: Buffer.from('{}'), retain: false },
        subscriptions: [],
        reconnectMinMs: 50,
        reconnectMaxMs: 30_000,
        queueLimit: 10,
        clock: systemClock,
        random: () => 0.5,
        logger,
        onConnect: () => undefined,
        onMessage: () => undefined,
      });
      cleanups.push(() => session.stop());
      session.start();
      await waitFor(() => broker.connects() === 3 && session.connected, 'the third connection to hold', 20_000);
      const warned = lines.filter((l) => String(l['msg']).includes('another client may have taken over'));
      expect(warned.map((l) => [l['level'], l['attempt']])).toEqual([[40, 1], [40, 2]]);
    });
  }
});
