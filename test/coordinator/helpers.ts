/**
 * Shared helpers for coordinator tests: temp dirs, silent logger, bounded waiting, a coordinator on
 * loopback, devices saying hello over MQTT as their agents would, and read-only views of a data
 * directory's databases.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient, type Packet } from 'mqtt';
import { pino, type Logger } from 'pino';
import { onTestFinished } from 'vitest';
import { createCoordinator, type Coordinator, type CoordinatorOptions } from '../../coordinator/index.js';
import { hardGatesAnalyzer } from '../../coordinator/gate/hard-gates.js';
import { closeDatabase, openDatabase, type Db } from '../../coordinator/store/db.js';
import type { HelloMessage, TelemetryMessage } from '../../protocol/messages.js';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic } from '../../protocol/topics.js';
import { waitFor } from '../support/wait-for.js';

export function tempDir(prefix = 'fleet-coord-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A `fleet.db` path in a fresh temporary directory, removed when the current test finishes. */
export function tempDbPath(): string {
  const t = tempDir();
  onTestFinished(t.cleanup);
  return join(t.dir, 'fleet.db');
}

export const silentLogger: Logger = pino({ level: 'silent' });

let seq = 0;
/** A unique id per call and per test process. */
export function uniqueId(prefix: string): string {
  seq++;
  return `${prefix}-${process.pid}-${seq}-${Math.floor(Math.random() * 1e6)}`;
}

export { waitFor };


/**
 * A development coordinator on 127.0.0.1 ephemeral ports in a fresh data dir (cheap password scrypt). Gates run
 * the hard gates only: these tests soak for fractions of a second, far too little exposure for the
 * statistical judge (which then rightly says Monitor).
 */
export async function startCoordinator(
  dataDir: string,
  options: Omit<CoordinatorOptions, 'config'> & { config?: CoordinatorOptions['config'] } = {},
): Promise<Coordinator> {
  const { config, ...rest } = options;
  return createCoordinator({
    logger: silentLogger,
    analyzers: [hardGatesAnalyzer],
    ...rest,
    config: {
      env: 'development',
      dataDir,
      mqtt: { port: 0, host: '127.0.0.1' },
      http: { port: 0, host: '127.0.0.1', maxConcurrentDownloads: 64 },
      allowAnonymousDevices: false,
      credentialCost: 4,
      telemetry: { flushIntervalMs: 20, maxBatch: 2000, rollupSlotMs: 60_000, rawRetentionMs: 48 * 3600_000, silentAfterMs: 5 * 60_000 },
      ...config,
    },
  });
}

/** Calls the admin API with the coordinator's token (or another). */
export async function api<T = unknown>(
  c: { httpUrl: string; adminToken: string },
  method: string,
  path: string,
  body?: unknown,
  token: string | null = c.adminToken,
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${c.httpUrl}${path}`, {
    method,
    headers: {
      ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

/**
 * A valid v1 telemetry payload, the `seq`-th a device publishes (optional fields left to the schema's
 * defaults, as a minimal agent would). `over` replaces fields, e.g. counters or the firmware version.
 */
export function telemetryPayload(deviceId: string, seq: number, over: Partial<TelemetryMessage> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: 1,
      kind: 'telemetry',
      deviceId,
      firmwareVersion: '1.0.0',
      slot: 'A',
      uptimeS: 10 * seq,
      bootCount: 1,
      metrics: { cpuPct: 10 + seq, memUsedMb: 100 },
      counters: { crashes: 0, agentRestarts: 0, errors: 0, reboots: 0 },
      seq,
      at: Date.now(),
      ...over,
    }),
  );
}

/** A v1 hello of a device on 1.0.0, slot A, model rpi4 (`over` replaces fields). */
export function helloMessage(deviceId: string, over: Partial<HelloMessage> = {}): HelloMessage {
  return { v: 1, kind: 'hello', deviceId, hardwareModel: 'rpi4', firmwareVersion: '1.0.0', activeSlot: 'A', agentVersion: 'test', bucket: bucketOf(deviceId), tags: [], securityFloor: 0, at: Date.now(), ...over };
}

/**
 * Each device connects to the coordinator's broker — with its secret, or without credentials where
 * the coordinator accepts anonymous devices (a ghost) — publishes its hello as an agent would, and
 * disconnects once the registry has it. What a test needs before a deployment: known devices.
 */
export async function sayHello(c: Coordinator, devices: readonly { deviceId: string; secret?: string; hello?: Partial<HelloMessage> }[]): Promise<void> {
  await Promise.all(
    devices.map(async (d) => {
      const client = await mqtt.connectAsync(c.mqttUrl, {
        clientId: d.deviceId,
        reconnectPeriod: 0,
        ...(d.secret !== undefined ? { username: d.deviceId, password: d.secret } : {}),
      });
      try {
        const hello = helloMessage(d.deviceId, d.hello);
        await client.publishAsync(deviceTopic(d.deviceId, 'hello'), JSON.stringify(hello), { qos: 1 });
        await waitFor(() => c.device(d.deviceId)?.firmwareVersion === hello.firmwareVersion, `the hello of ${d.deviceId}`);
      } finally {
        await client.endAsync();
      }
    }),
  );
}

/** Provisions devices of `hardwareModel` and has each say hello (`hello` fields apply to all). */
export async function knownDevices(c: Coordinator, ids: readonly string[], hardwareModel = 'rpi4', hello: Partial<HelloMessage> = {}): Promise<void> {
  const provisioned = await c.provisionDevices(ids, { hardwareModel });
  await sayHello(c, provisioned.map((p) => ({ deviceId: p.deviceId, secret: p.secret, hello: { hardwareModel, ...hello } })));
}

/**
 * One of a data directory's databases (`fleet.db` or `telemetry.db`), opened read-only beside the
 * running coordinator and closed when the test finishes.
 */
export function readDatabase(dataDir: string, name: 'fleet' | 'telemetry'): Db {
  const db = openDatabase(join(dataDir, `${name}.db`), { readonly: true });
  db.pragma('busy_timeout = 5000');
  onTestFinished(() => closeDatabase(db));
  return db;
}

/**
 * The SUBACK return code of one SUBSCRIBE (QoS 1), as it came off the wire: mqtt.js's callback does
 * not tell a refusal (0x80) from a grant.
 */
export function subackCode(client: MqttClient, topic: string): Promise<number> {
  return new Promise((resolve) => {
    const onPacket = (p: Packet): void => {
      if (p.cmd !== 'suback') return;
      client.off('packetreceive', onPacket);
      resolve(Number(p.granted[0]));
    };
    client.on('packetreceive', onPacket);
    client.subscribe(topic, { qos: 1 }, () => undefined);
  });
}
