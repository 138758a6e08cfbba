/**
 * Hostile MQTT clients written at the socket level (mqtt-packet), for what a well-behaved client
 * library will not do: declare a huge packet and stream it before CONNECT, connect from another
 * loopback source address (127.0.0.2…), hammer the login with wrong passwords, flood a topic.
 */
import { connect as netConnect, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { definedProps } from '../../firmware/defined-props.js';

export interface RawConnect {
  port: number;
  host?: string;
  /** Source address, e.g. 127.0.0.2 (Linux answers for all of 127.0.0.0/8). */
  localAddress?: string;
  clientId: string;
  username?: string;
  password?: string;
  timeoutMs?: number;
}

/** What the broker answered a CONNECT with: a CONNACK return code, or the socket closed without one. */
export type ConnectOutcome = { returnCode: number } | { closed: true } | { timedOut: true };

/** Opens a TCP connection (resolves once connected). */
export function openSocket(port: number, localAddress?: string, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host, ...(localAddress ? { localAddress } : {}) });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

export function connectPacket(o: Pick<RawConnect, 'clientId' | 'username' | 'password'>): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: o.clientId,
    keepalive: 60,
    ...definedProps({ username: o.username }),
    ...(o.password !== undefined ? { password: Buffer.from(o.password) } : {}),
  });
}

export function publishPacket(topic: string, payload: Buffer | string, qos: 0 | 1 = 0, messageId = 1): Buffer {
  return mqttPacket.generate({ cmd: 'publish', topic, payload, qos, retain: false, dup: false, ...(qos ? { messageId } : {}) });
}

/** Sends one CONNECT and waits for the CONNACK (or the close); the socket is then ended. */
export async function rawConnect(o: RawConnect): Promise<ConnectOutcome> {
  const socket = await openSocket(o.port, o.localAddress, o.host);
  try {
    return await new Promise<ConnectOutcome>((resolve) => {
      const parser = mqttPacket.parser();
      const timer = setTimeout(() => resolve({ timedOut: true }), o.timeoutMs ?? 30_000);
      parser.on('packet', (p) => {
        if (p.cmd === 'connack') {
          clearTimeout(timer);
          resolve({ returnCode: p.returnCode ?? 0 });
        }
      });
      socket.on('data', (d: Buffer) => parser.parse(d));
      socket.once('close', () => {
        clearTimeout(timer);
        resolve({ closed: true });
      });
      socket.on('error', () => undefined);
      socket.write(connectPacket(o));
    });
  } finally {
    socket.destroy();
  }
}

/**
 * An MQTT fixed header declaring a packet of `length` bytes (remaining length, up to 268 MB), of type
 * `cmd` (1 CONNECT, 3 PUBLISH): what a client sends before it streams the body.
 */
export function declaredHeader(cmd: number, length: number): Buffer {
  const bytes = [cmd << 4];
  let n = length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

/**
 * Declares a `length`-byte packet and streams zeros until `ms` pass or the broker closes the socket.
 * Resolves with the bytes written and whether the broker closed the connection.
 */
export async function streamDeclaredPacket(port: number, cmd: number, length: number, ms: number, localAddress?: string): Promise<{ written: number; closedByBroker: boolean }> {
  const socket = await openSocket(port, localAddress);
  const chunk = Buffer.alloc(64 * 1024);
  let written = 0;
  let closed = false;
  socket.on('error', () => undefined);
  socket.once('close', () => (closed = true));
  const deadline = Date.now() + ms;
  await new Promise<void>((resolve) => socket.write(declaredHeader(cmd, length), () => resolve()));
  while (!closed && Date.now() < deadline && written < length) {
    const ok = socket.write(chunk);
    written += chunk.length;
    if (!ok) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        const t = setTimeout(done, Math.max(0, deadline - Date.now()));
        socket.once('drain', done);
        socket.once('close', done);
      });
    }
  }
  const closedByBroker = closed;
  socket.destroy();
  return { written, closedByBroker };
}
