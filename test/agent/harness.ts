/**
 * Test harness for agent integration tests: a real Aedes broker and a real HTTP artifact server on
 * 127.0.0.1 port 0, a fresh temp dir, a signing key and trust store, and helpers to publish signed
 * rollouts and commands and to wait for a device's status messages. `useFixture()` gives a test file
 * (or a describe block) a fresh fixture per test and stops its devices afterwards.
 */
import { afterEach, beforeEach } from 'vitest';
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import http from 'node:http';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { generateSigningKey, publicKeyPem, type SigningKey } from '../../firmware/keys.js';
import { buildCommand, buildManifest, signCommand, signManifest, type BuildManifestInput } from '../../firmware/manifest.js';
import { parseAgentConfig, type AgentConfig, type AgentConfigInput } from '../../agent/config.js';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic, rolloutTopic } from '../../protocol/topics.js';
import { encodeMessage } from '../../protocol/parse.js';
import type { StatusMessage } from '../../protocol/messages.js';
import type { Command, CommandAction, SignedEnvelope } from '../../protocol/signed.js';
import { FileSlotBackend } from '../../agent/slots/slot-backend-file.js';
import { SimulatedDevice, type SimulatedDeviceOptions } from '../../agent/simulated-device.js';
import { definedProps } from '../../firmware/defined-props.js';
import { waitFor } from '../support/wait-for.js';

export const silent = pino({ level: 'silent' });

export interface ArtifactServer {
  url(name: string): string;
  put(name: string, body: Buffer): void;
  /** Every request: path, Range header, status. */
  requests: { path: string; range: string | undefined; status: number }[];
  /** Cut the next response for `name` after this many bytes. */
  cutAfter: Map<string, number>;
  /** Send this many bytes of the next response for `name`, then stall (never finish). */
  stallAfter: Map<string, number>;
  /** Refuse the next this-many requests for `name` with 503 and `Retry-After: 0` (a busy server). */
  busyFor: Map<string, number>;
  close(): Promise<void>;
}

export async function startArtifactServer(): Promise<ArtifactServer> {
  const files = new Map<string, Buffer>();
  const requests: ArtifactServer['requests'] = [];
  const cutAfter = new Map<string, number>();
  const stallAfter = new Map<string, number>();
  const busyFor = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const name = (req.url ?? '/').slice(1);
    const body = files.get(name);
    const range = req.headers.range;
    const record = (status: number) => requests.push({ path: name, range, status });
    const busy = busyFor.get(name) ?? 0;
    if (busy > 0) {
      busyFor.set(name, busy - 1);
      record(503);
      res.writeHead(503, { 'retry-after': '0' }).end('busy');
      return;
    }
    if (!body) {
      record(404);
      res.writeHead(404).end();
      return;
    }
    let start = 0;
    if (range) {
      const m = /^bytes=(\d+)-$/.exec(range);
      start = m ? Number(m[1]) : 0;
      if (start >= body.length) {
        record(416);
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      record(206);
      res.writeHead(206, { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}`, 'content-length': body.length - start });
    } else {
      record(200);
      res.writeHead(200, { 'content-length': body.length });
    }
    const stall = stallAfter.get(name);
    if (stall !== undefined) {
      stallAfter.delete(name);
      res.write(body.subarray(start, start + stall));
      return;
    }
    const cut = cutAfter.get(name);
    if (cut !== undefined) {
      cutAfter.delete(name);
      res.write(body.subarray(start, start + cut), () => res.destroy());
      return;
    }
    res.end(body.subarray(start));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (name) => `http://127.0.0.1:${port}/${name}`,
    put: (name, body) => files.set(name, body),
    requests,
    cutAfter,
    stallAfter,
    busyFor,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface TestBroker {
  url: string;
  port: number;
  /** Topics each client subscribed to. */
  subscriptions: Map<string, string[]>;
  close(): Promise<void>;
}

export async function startBroker(port = 0): Promise<TestBroker> {
  const broker = await Aedes.createBroker();
  const subscriptions = new Map<string, string[]>();
  broker.on('subscribe', (subs, client) => {
    if (!client) return;
    subscriptions.set(client.id, [...(subscriptions.get(client.id) ?? []), ...subs.map((s) => s.topic)]);
  });
  const server: Server = createServer(broker.handle);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${bound}`,
    port: bound,
    subscriptions,
    close: async () => {
      // Stop accepting first: agents reconnect within milliseconds and would otherwise land on a
      // broker that is closing, keeping the server open forever.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/** An observer client: collects everything devices publish. */
export class Observer {
  readonly messages: { topic: string; payload: Buffer }[] = [];
  private constructor(readonly client: MqttClient) {}

  static async connect(url: string): Promise<Observer> {
    const client = await mqtt.connectAsync(url, { clientId: `obs-${randomUUID()}`, reconnectPeriod: 100 });
    const obs = new Observer(client);
    client.on('message', (topic, payload) => obs.messages.push({ topic, payload }));
    await client.subscribeAsync('fleet/v1/devices/+/+', { qos: 1 });
    return obs;
  }

  statuses(deviceId: string): StatusMessage[] {
    return this.messages
      .filter((m) => m.topic === deviceTopic(deviceId, 'status'))
      .map((m) => JSON.parse(m.payload.toString('utf8')) as StatusMessage);
  }

  of(deviceId: string, channel: 'hello' | 'telemetry' | 'presence'): Record<string, unknown>[] {
    return this.messages.filter((m) => m.topic === deviceTopic(deviceId, channel)).map((m) => JSON.parse(m.payload.toString('utf8')) as Record<string, unknown>);
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

export { waitFor };

export interface Fixture {
  dir: string;
  key: SigningKey;
  trustDir: string;
  broker: TestBroker;
  artifacts: ArtifactServer;
  observer: Observer;
  publisher: MqttClient;
  close(): Promise<void>;
}

export async function startFixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-agent-'));
  const key = generateSigningKey();
  const trustDir = join(dir, 'trust');
  await mkdir(trustDir, { recursive: true });
  await writeFile(join(trustDir, 'release.pub'), publicKeyPem(key));
  const broker = await startBroker();
  const artifacts = await startArtifactServer();
  const observer = await Observer.connect(broker.url);
  const publisher = await mqtt.connectAsync(broker.url, { clientId: `coord-${randomUUID()}` });
  return {
    dir,
    key,
    trustDir,
    broker,
    artifacts,
    observer,
    publisher,
    close: async () => {
      await publisher.endAsync(true);
      await observer.close();
      await artifacts.close();
      await broker.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The running test's fixture, as {@link useFixture} hands it out: one object for the whole file whose
 * fields read the fixture of the test that is running, so helpers may close over it at module level.
 */
export interface FixtureContext extends Fixture {
  /** Devices the test started; each is stopped after the test, in order, before the fixture closes. */
  readonly devices: SimulatedDevice[];
}

/**
 * Registers a `beforeEach` that starts a fresh fixture (broker, artifact server, temp dir, key) and an
 * `afterEach` that stops every device in `devices` and then closes it. Call it at the top of a test
 * file, or inside a `describe` to scope the fixture to that block. Reading a field outside a test or
 * hook throws: there is no fixture then.
 */
export function useFixture(): FixtureContext {
  let current: Fixture | undefined;
  const devices: SimulatedDevice[] = [];
  const now = (): Fixture => {
    if (!current) throw new Error('useFixture: no fixture outside a test (read it inside it, beforeEach or afterEach)');
    return current;
  };
  beforeEach(async () => {
    current = await startFixture();
  });
  afterEach(async () => {
    const f = current;
    current = undefined;
    try {
      for (const d of devices.splice(0)) await d.stop();
    } finally {
      await f?.close();
    }
  });
  return {
    get dir() {
      return now().dir;
    },
    get key() {
      return now().key;
    },
    get trustDir() {
      return now().trustDir;
    },
    get broker() {
      return now().broker;
    },
    get artifacts() {
      return now().artifacts;
    },
    get observer() {
      return now().observer;
    },
    get publisher() {
      return now().publisher;
    },
    devices,
    // useFixture closes it after each test; a test has no reason to call this.
    close: () => now().close(),
  };
}

let counter = 0;
export function uniqueId(prefix: string): string {
  return `${prefix}-${process.pid}-${++counter}-${randomUUID().slice(0, 8)}`;
}

export function agentConfig(f: Fixture, deviceId: string, overrides: Partial<AgentConfigInput> = {}): AgentConfig {
  const base = join(f.dir, deviceId);
  return parseAgentConfig({
    deviceId,
    hardwareModel: 'rpi4',
    firmwareVersion: '1.0.0',
    broker: { url: f.broker.url, reconnectMin: 50, reconnectMax: 500 },
    trustStoreDir: f.trustDir,
    dataDir: join(base, 'data'),
    slots: { kind: 'file', dir: join(base, 'slots') },
    telemetry: { interval: 3_600_000 },
    health: { brokerDeadline: 5_000, trialWindow: 20_000 },
    download: { retryBase: 20, retryMax: 200, maxAttempts: 4, idleTimeout: 5_000 },
    ...overrides,
  });
}

export function image(content: string, size = 64 * 1024): { body: Buffer; sha256: string } {
  const body = Buffer.alloc(size, content);
  return { body, sha256: createHash('sha256').update(body).digest('hex') };
}

/** Publishes a signed manifest retained on the device's wave topic, as the coordinator does. */
export async function publishRollout(
  f: Fixture,
  deviceId: string,
  deploymentId: string,
  manifest: Partial<BuildManifestInput> & { artifact: BuildManifestInput['artifact'] },
  key: SigningKey = f.key,
): Promise<void> {
  const m = buildManifest({ firmwareVersion: '1.1.0', hardware: ['rpi4'], issuedAt: Date.now(), deploymentId, ...manifest });
  const envelope = signManifest(m, [key]);
  const topic = rolloutTopic('rpi4', bucketOf(deviceId));
  await f.publisher.publishAsync(topic, encodeMessage({ v: 1, kind: 'rollout', deploymentId, wave: 0, manifest: envelope }), { qos: 1, retain: true });
}

export async function clearRollout(f: Fixture, deviceId: string): Promise<void> {
  await f.publisher.publishAsync(rolloutTopic('rpi4', bucketOf(deviceId)), Buffer.alloc(0), { qos: 1, retain: true });
}

/** Signs and sends a command (its seq: the signing time in ms); returns the envelope, for replays. */
export async function sendCommand(f: Fixture, deviceId: string, action: CommandAction, deploymentId?: string, commandId = uniqueId('cmd')): Promise<SignedEnvelope<Command>> {
  const c = buildCommand({ commandId, deviceId, action, issuedAt: Date.now(), ...definedProps({ deploymentId }) });
  const envelope = signCommand(c, [f.key]);
  await publishCommand(f, deviceId, envelope);
  return envelope;
}

/** Publishes an already signed command envelope (a replay, when it was sent before). */
export async function publishCommand(f: Fixture, deviceId: string, envelope: SignedEnvelope<Command>): Promise<void> {
  await f.publisher.publishAsync(deviceTopic(deviceId, 'commands'), encodeMessage({ v: 1, kind: 'command', command: envelope }), { qos: 1 });
}

/** A device on the file backend, booted from a factory image of version 1.0.0, its agent started. */
export async function startDevice(
  f: Fixture,
  deviceId: string,
  overrides: Partial<AgentConfigInput> = {},
  extra: Partial<Omit<SimulatedDeviceOptions, 'config' | 'slots'>> = {},
): Promise<{ dev: SimulatedDevice; slots: FileSlotBackend; config: AgentConfig }> {
  const config = agentConfig(f, deviceId, overrides);
  const factory = join(f.dir, `${deviceId}-factory.img`);
  await writeFile(factory, image('factory').body);
  const slots = await FileSlotBackend.create({ dir: join(f.dir, deviceId, 'slots'), factoryImage: factory });
  const dev = new SimulatedDevice({ config, slots, logger: silent, ...extra });
  await dev.start();
  await waitFor(() => dev.agent?.connected === true, 'agent connected');
  return { dev, slots, config };
}

/** Serves an image and returns the artifact reference for a manifest. */
export function serveImage(f: Fixture, name: string, content: string, size = 64 * 1024): { url: string; size: number; sha256: string } {
  const img = image(content, size);
  f.artifacts.put(name, img.body);
  return { url: f.artifacts.url(name), size: img.body.length, sha256: img.sha256 };
}
