/**
 * Support for the agent daemon tests: `fleet agent start` as a child process with its pino log
 * parsed, an artifact server that holds the image back until released (an update kept in flight),
 * signed rollouts, a watcher of what a device publishes, and a plain Aedes broker in this process
 * that closes and starts again on its port while remembering everything devices published.
 */
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes, type AuthenticateError } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, beforeEach } from 'vitest';
import { generateSigningKey, publicKeyPem, type SigningKey } from '../../firmware/keys.js';
import { buildManifest, signManifest } from '../../firmware/manifest.js';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic, rolloutTopic } from '../../protocol/topics.js';
import { encodeMessage } from '../../protocol/parse.js';
import type { StatusMessage, TelemetryMessage } from '../../protocol/messages.js';
import type { AgentState } from '../../agent/agent-state.js';
import { spawnFleet, type Exit, type RunningProcess } from '../support/processes.js';
import { waitFor } from './harness.js';
import { definedProps } from '../../firmware/defined-props.js';

export { waitFor };


/** An image server whose responses can be held back: the update stays in its download until release(). */
export interface HeldArtifacts {
  url(name: string): string;
  put(name: string, body: Buffer): { url: string; size: number; sha256: string };
  /** Requests from now on wait until release(). */
  hold(): void;
  release(): void;
  /** Requests seen so far (held ones included). */
  readonly requests: number;
  /**
   * Closes the idle keep-alive connections: afterwards an agent waiting for its broker holds no
   * socket at all, which is when a daemon without a ref'd handle of its own falls out of its loop.
   */
  closeIdle(): void;
  close(): Promise<void>;
}

export async function startHeldArtifacts(): Promise<HeldArtifacts> {
  const files = new Map<string, Buffer>();
  let gate: Promise<void> | null = null;
  let open: () => void = () => undefined;
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    void (gate ?? Promise.resolve()).then(() => {
      const body = files.get((req.url ?? '/').slice(1));
      if (!body) return void res.writeHead(404).end();
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = m ? Number(m[1]) : 0;
      if (start >= body.length) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      if (m) res.writeHead(206, { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}`, 'content-length': body.length - start });
      else res.writeHead(200, { 'content-length': body.length });
      res.end(body.subarray(start));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = (name: string): string => `http://127.0.0.1:${port}/${name}`;
  return {
    url,
    put(name, body) {
      files.set(name, body);
      return { url: url(name), size: body.length, sha256: createHash('sha256').update(body).digest('hex') };
    },
    hold() {
      gate ??= new Promise<void>((resolve) => (open = resolve));
    },
    release() {
      open();
      gate = null;
    },
    get requests() {
      return requests;
    },
    closeIdle() {
      server.closeIdleConnections();
    },
    close: async () => {
      open();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A temp dir, a release key and the devices' trust store. */
export interface World {
  dir: string;
  key: SigningKey;
  trustDir: string;
  close(): Promise<void>;
}

export async function startWorld(): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-daemon-'));
  const key = generateSigningKey();
  const trustDir = join(dir, 'trust');
  await mkdir(trustDir, { recursive: true });
  await writeFile(join(trustDir, 'release.pub'), publicKeyPem(key));
  return { dir, key, trustDir, close: () => rm(dir, { recursive: true, force: true }) };
}

/** What a test pushes to be undone after it: a daemon to kill, a broker to close. */
export type Cleanups = Array<() => Promise<unknown>>;

/**
 * Registers the hooks of a daemon test file: a fresh World before each test (handed to `onWorld`),
 * and after it the cleanups pushed meanwhile, last first (a failure ignored: the process may be gone
 * already), then the world's removal. Returns the list the tests push to.
 */
export function worldPerTest(onWorld: (world: World) => void): Cleanups {
  const cleanups: Cleanups = [];
  let world: World | undefined;
  beforeEach(async () => {
    world = await startWorld();
    onWorld(world);
  });
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    await world?.close();
  });
  return cleanups;
}

let counter = 0;
export function uniqueDeviceId(prefix = 'pi'): string {
  return `${prefix}-${process.pid}-${++counter}-${randomUUID().slice(0, 6)}`;
}

export interface AgentFiles {
  config: string;
  dataDir: string;
  passwordFile: string;
}

/**
 * Writes a device's agent.json (file slots, quick reconnects and retries, generous trial deadlines
 * for a busy machine) and, with a password, its password file. `overrides` replace top-level fields.
 */
export async function writeAgentConfig(
  dir: string,
  deviceId: string,
  broker: { url: string | string[]; username?: string; password?: string; reconnectMin?: string; reconnectMax?: string },
  trustDir: string,
  overrides: Record<string, unknown> = {},
): Promise<AgentFiles> {
  const base = join(dir, deviceId);
  await mkdir(base, { recursive: true });
  const passwordFile = join(base, 'broker-password');
  if (broker.password !== undefined) await writeFile(passwordFile, broker.password, { mode: 0o600 });
  const config = join(base, 'agent.json');
  await writeFile(
    config,
    JSON.stringify({
      deviceId,
      hardwareModel: 'rpi4',
      firmwareVersion: '1.0.0',
      broker: {
        url: broker.url,
        reconnectMin: broker.reconnectMin ?? '100ms',
        reconnectMax: broker.reconnectMax ?? '1s',
        connectTimeout: '5s',
        ...definedProps({ username: broker.username }),
        ...(broker.password !== undefined ? { passwordFile } : {}),
      },
      trustStoreDir: trustDir,
      dataDir: 'data',
      slots: { kind: 'file', dir: 'slots' },
      telemetry: { interval: '1h' },
      // The trial waits for the broker: long enough for every outage these tests make.
      health: { brokerDeadline: '40s', trialWindow: '50s' },
      download: { retryBase: '100ms', retryMax: '1s', idleTimeout: '10s' },
      ...overrides,
    }),
  );
  return { config, dataDir: join(base, 'data'), passwordFile };
}

/** One parsed pino line. */
export type LogLine = Record<string, unknown> & { msg: string };

/** `fleet agent start` in its own process. */
export class AgentDaemon {
  private constructor(
    readonly process: RunningProcess,
    readonly files: AgentFiles,
  ) {}

  static start(files: AgentFiles): AgentDaemon {
    return new AgentDaemon(spawnFleet(['agent', 'start', '-c', files.config]), files);
  }

  get alive(): boolean {
    return this.process.exit === undefined;
  }

  logs(): LogLine[] {
    const out: LogLine[] = [];
    for (const line of this.process.lines) {
      if (!line.startsWith('{')) continue;
      try {
        const parsed = JSON.parse(line) as LogLine;
        if (typeof parsed.msg === 'string') out.push(parsed);
      } catch {
        // not a log line
      }
    }
    return out;
  }

  /** Log lines whose message contains `text`. */
  logged(text: string): LogLine[] {
    return this.logs().filter((l) => l.msg.includes(text));
  }

  /** Update states the agent reported, in order (from its log: delivered or still queued). */
  reported(): string[] {
    return this.logged('update status').map((l) => String(l['state']));
  }

  /** Waits for `count` log lines containing `text`; fails at once if the agent exits. */
  async waitForLog(text: string, count = 1, timeoutMs = 30_000): Promise<LogLine[]> {
    await waitFor(() => !this.alive || this.logged(text).length >= count, `${count}× "${text}" from the agent`, timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}; agent output:\n${this.process.output().slice(-6000)}`);
    });
    if (!this.alive) throw new Error(`the agent exited (${JSON.stringify(this.process.exit)}) while waiting for "${text}":\n${this.process.output().slice(-6000)}`);
    return this.logged(text);
  }

  /**
   * Waits until the agent logs `text` at least `afterMs` after its line containing `since` (pino
   * times): the agent was still running, and still trying, that long after it.
   */
  async waitForLogAfter(text: string, since: string, afterMs: number, timeoutMs = 30_000): Promise<void> {
    const from = this.logged(since)[0]?.['time'];
    if (typeof from !== 'number') throw new Error(`the agent has not logged "${since}"`);
    await waitFor(() => !this.alive || this.logged(text).some((l) => (l['time'] as number) >= from + afterMs), `"${text}" ${afterMs} ms after "${since}"`, timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}; agent output:\n${this.process.output().slice(-6000)}`);
    });
    if (!this.alive) throw new Error(`the agent exited (${JSON.stringify(this.process.exit)}) while waiting for "${text}":\n${this.process.output().slice(-6000)}`);
  }

  async waitForState(state: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(() => !this.alive || this.reported().includes(state), `the agent to report ${state}`, timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}; reported ${JSON.stringify(this.reported())}; agent output:\n${this.process.output().slice(-6000)}`);
    });
    if (!this.alive) throw new Error(`the agent exited (${JSON.stringify(this.process.exit)}) before reporting ${state}:\n${this.process.output().slice(-6000)}`);
  }

  /** SIGTERM (or `signal`), and the exit. */
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    return this.process.stop(signal, 20_000);
  }

  async state(): Promise<AgentState> {
    return JSON.parse(await readFile(join(this.files.dataDir, 'state.json'), 'utf8')) as AgentState;
  }
}

/** The retained rollout message a coordinator would publish on the device's wave topic. */
export function signedRollout(key: SigningKey, deviceId: string, deploymentId: string, artifact: { url: string; size: number; sha256: string }): { topic: string; payload: Buffer } {
  const manifest = buildManifest({ firmwareVersion: '1.1.0', hardware: ['rpi4'], issuedAt: Date.now(), deploymentId, artifact });
  return {
    topic: rolloutTopic('rpi4', bucketOf(deviceId)),
    payload: encodeMessage({ v: 1, kind: 'rollout', deploymentId, wave: 0, manifest: signManifest(manifest, [key]) }),
  };
}

/** What one device published, as a broker-side record or a watcher saw it. */
export interface Published {
  topic: string;
  payload: Buffer;
}

export function statusesOf(deviceId: string, published: readonly Published[]): StatusMessage[] {
  const bySeq = new Map<number, StatusMessage>();
  for (const p of published) {
    if (p.topic !== deviceTopic(deviceId, 'status')) continue;
    const m = JSON.parse(p.payload.toString('utf8')) as StatusMessage;
    bySeq.set(m.seq, m); // QoS 1 is at least once: a resent status is one status
  }
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

export function telemetryOf(deviceId: string, published: readonly Published[]): TelemetryMessage[] {
  return published.filter((p) => p.topic === deviceTopic(deviceId, 'telemetry')).map((p) => JSON.parse(p.payload.toString('utf8')) as TelemetryMessage);
}

/** A client watching one device's topics with a persistent session (it keeps what arrives while it is away). */
export class Watcher {
  readonly published: Published[] = [];
  private constructor(readonly client: MqttClient) {}

  static async connect(url: string, deviceId: string, auth: { username?: string; password?: string } = {}): Promise<Watcher> {
    const client = await mqtt.connectAsync(url, { clientId: `watch-${randomUUID().slice(0, 8)}`, clean: false, reconnectPeriod: 200, ...auth });
    const w = new Watcher(client);
    client.on('message', (topic, payload) => w.published.push({ topic, payload }));
    client.on('error', () => undefined);
    await client.subscribeAsync(`fleet/v1/devices/${deviceId}/+`, { qos: 1 });
    return w;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/**
 * A plain Aedes on 127.0.0.1 that can close and come back on the same port. It records every message
 * a client publishes (across restarts) and can refuse logins (`refuse`).
 */
export class PlainAedes {
  readonly published: (Published & { clientId: string | undefined })[] = [];
  /** While set, every CONNECT is refused as not authorized. */
  refuse = false;
  private running: { server: Server; broker: Aedes; sockets: Set<Socket> } | null = null;

  private constructor(readonly port: number) {}

  static async start(port = 0): Promise<PlainAedes> {
    const b = new PlainAedes(port);
    return b.listen();
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  private async listen(): Promise<PlainAedes> {
    const broker = await Aedes.createBroker({
      authenticate: (_client, _user, _pass, done) => {
        if (!this.refuse) return done(null, true);
        const err = new Error('not authorized') as AuthenticateError;
        err.returnCode = 5;
        done(err, false);
      },
    });
    broker.on('publish', (packet, client) => {
      if (client) this.published.push({ topic: packet.topic, payload: Buffer.from(packet.payload), clientId: client.id });
    });
    const server = createServer(broker.handle);
    const sockets = new Set<Socket>();
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    (this as { port: number }).port = (server.address() as AddressInfo).port;
    this.running = { server, broker, sockets };
    return this;
  }

  /** Publishes as the coordinator would (retained, QoS 1). */
  publishRetained(topic: string, payload: Buffer): Promise<void> {
    const r = this.running;
    if (!r) throw new Error('broker not running');
    return new Promise((resolve, reject) => r.broker.publish({ cmd: 'publish', topic, payload, qos: 1, retain: true, dup: false }, (err) => (err ? reject(err) : resolve())));
  }

  /** Stops accepting and drops every connection (retained messages and sessions go with it). */
  async close(): Promise<void> {
    const r = this.running;
    this.running = null;
    if (!r) return;
    const closed = new Promise<void>((resolve) => r.server.close(() => resolve()));
    await new Promise<void>((resolve) => r.broker.close(() => resolve()));
    for (const s of r.sockets) s.destroy();
    await closed;
  }

  /** Starts again on the same port. */
  async restart(): Promise<void> {
    await this.close();
    await this.listen();
  }

  statuses(deviceId: string): StatusMessage[] {
    return statusesOf(deviceId, this.published);
  }

  telemetry(deviceId: string): TelemetryMessage[] {
    return telemetryOf(deviceId, this.published);
  }

  /** Hellos the device sent: one per connection the broker accepted. */
  hellos(deviceId: string): number {
    return this.published.filter((p) => p.topic === deviceTopic(deviceId, 'hello')).length;
  }
}

/**
 * A broker that accepts every connection (CONNACK) and then never answers again: no SUBACK, no
 * PUBACK, no PINGRESP — what a client sees of a broker that hangs.
 */
export async function startSilentBroker(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', (chunk: Buffer) => {
      if (chunk[0] === 0x10) socket.write(Buffer.from([0x20, 0x02, 0x00, 0x00])); // CONNACK, accepted
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
