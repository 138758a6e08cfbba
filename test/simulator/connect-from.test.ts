/**
 * A simulated device's MQTT socket bound to a loopback source address (one address has ~28,000
 * ephemeral ports toward one broker), and, given several broker nodes, the next node at every
 * connect — as mqtt.connect's own stream builder does. Plain TCP listeners on 127.0.0.1 record who
 * connected from where.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { MqttClient } from 'mqtt';
import { connectFrom } from '../../simulator/device-host.js';

const servers: Server[] = [];
const sockets: Socket[] = [];
let client: MqttClient | null = null;

async function listener(name: string, seen: { node: string; from: string | undefined }[]): Promise<number> {
  const server = createServer((socket) => {
    sockets.push(socket);
    seen.push({ node: name, from: socket.remoteAddress });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

afterEach(async () => {
  client?.end(true);
  client = null;
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

describe('connectFrom', () => {
  it('binds the socket to the given source address and moves to the next node at each connect', async () => {
    const seen: { node: string; from: string | undefined }[] = [];
    const a = await listener('a', seen);
    const b = await listener('b', seen);
    client = connectFrom(
      { protocol: 'mqtt', host: '127.0.0.1', port: a, servers: [{ host: '127.0.0.1', port: a }, { host: '127.0.0.1', port: b }], reconnectPeriod: 0, connectTimeout: 60_000 },
      '127.0.0.2',
    );
    await vi.waitFor(() => expect(seen).toHaveLength(1), { timeout: 10_000 });
    sockets[0]!.destroy();
    await vi.waitFor(() => expect(client!.connected || client!.reconnecting).toBe(false), { timeout: 10_000 });
    client.reconnect();
    await vi.waitFor(() => expect(seen).toHaveLength(2), { timeout: 10_000 });
    expect(seen).toEqual([
      { node: 'a', from: '127.0.0.2' },
      { node: 'b', from: '127.0.0.2' },
    ]);
  });

  it('leaves the system to choose without a source address', async () => {
    const seen: { node: string; from: string | undefined }[] = [];
    const a = await listener('a', seen);
    client = connectFrom({ protocol: 'mqtt', host: '127.0.0.1', port: a, reconnectPeriod: 0 }, undefined);
    await vi.waitFor(() => expect(seen).toEqual([{ node: 'a', from: '127.0.0.1' }]), { timeout: 10_000 });
  });
});
