/**
 * The hostile suite's coordinator: `fleet coordinator start` as a real process on loopback (its own
 * data dir, a free MQTT port, pino JSON logs captured line by line), with helpers for its admin API,
 * its metrics, the operator CLI against it, its log lines, its memory, and device clients that
 * connect as provisioned devices. With `broker: 'mosquitto'` devices connect to Debian's Mosquitto
 * configured as `fleet broker mosquitto-config` configures it, whose accounts the coordinator manages
 * (`--broker … --broker-credentials …`): the suites run against both brokers. Stopped when the test
 * finishes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { onTestFinished } from 'vitest';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic } from '../../protocol/topics.js';
import { freePort, spawnFleet, type RunningProcess } from '../support/processes.js';
import { waitFor } from '../support/wait-for.js';

export { waitFor };
import { startDynsecMosquitto, type BrokerKind, type DynsecMosquitto } from '../support/mosquitto-dynsec.js';

export { BROKERS, type BrokerKind } from '../support/mosquitto-dynsec.js';

export interface CoordinatorProcess {
  proc: RunningProcess;
  broker: BrokerKind;
  /** The Mosquitto devices connect to (`broker: 'mosquitto'`). */
  mosquitto: DynsecMosquitto | undefined;
  /** The MQTT port devices connect to. */
  port: number;
  mqttUrl: string;
  dataDir: string;
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  counters(): Promise<Record<string, number>>;
  /** Runs the operator CLI against this coordinator (its data dir); resolves with its exit and output. */
  cli(args: readonly string[]): Promise<{ code: number | null; output: string }>;
  /** Parsed pino lines logged so far. */
  logs(): Record<string, unknown>[];
  /** Resident memory of the coordinator process, MB (Linux). */
  rssMb(): number;
  /** Resident memory of the process that holds device connections (the coordinator, or Mosquitto), MB. */
  brokerRssMb(): number;
  provision(ids: readonly string[], model?: string): Promise<Map<string, string>>;
  /** Connects as a provisioned device (closed when the test finishes). */
  device(id: string, secret: string, options?: mqtt.IClientOptions): Promise<MqttClient>;
  stop(): Promise<void>;
}

export async function startCoordinatorProcess(args: readonly string[] = [], options: { broker?: BrokerKind } = {}): Promise<CoordinatorProcess> {
  const broker = options.broker ?? 'embedded';
  const dataDir = mkdtempSync(join(tmpdir(), 'fleet-hostile-'));
  const mosquitto = broker === 'mosquitto' ? await startDynsecMosquitto() : undefined;
  const port = mosquitto?.broker.port ?? (await freePort());
  const brokerArgs = mosquitto ? ['--broker', mosquitto.url, '--broker-credentials', mosquitto.accountFile] : ['--mqtt-port', String(port)];
  const proc = spawnFleet(['coordinator', 'start', '--data-dir', dataDir, ...brokerArgs, '--http-port', '0', '--log-level', 'info', ...args]);
  const clients: MqttClient[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
    await proc.stop();
    await mosquitto?.close();
    rmSync(dataDir, { recursive: true, force: true });
  };
  onTestFinished(stop);
  await proc.waitForLine(/fleet coordinator \(development\)/, 60_000);
  const admin = JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as { url: string; token: string };
  const api = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const raw = body instanceof Buffer;
    const res = await fetch(`${admin.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${admin.token}`,
        ...(body !== undefined ? { 'content-type': raw ? 'application/octet-stream' : 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: raw ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  const mqttUrl = `mqtt://127.0.0.1:${port}`;
  const rssOf = (pid: number): number => {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  };
  return {
    proc,
    broker,
    mosquitto,
    port,
    mqttUrl,
    dataDir,
    api,
    counters: async () => (await api<{ counters: Record<string, number> }>('GET', '/v1/metrics')).body.counters,
    async cli(cliArgs) {
      const p = spawnFleet([...cliArgs, '--data-dir', dataDir]);
      const exit = await p.exited;
      return { code: exit.code, output: p.output() };
    },
    logs: () =>
      proc.lines.flatMap((l) => {
        if (!l.startsWith('{')) return [];
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    rssMb: () => rssOf(proc.pid),
    brokerRssMb: () => rssOf(mosquitto?.broker.pid ?? proc.pid),
    async provision(ids, model = 'rpi4') {
      const res = await api<{ devices: { deviceId: string; secret: string }[] }>('POST', '/v1/devices/provision', { deviceIds: ids, hardwareModel: model });
      if (res.status !== 201) throw new Error(`provisioning failed: ${JSON.stringify(res.body)}`);
      return new Map(res.body.devices.map((d) => [d.deviceId, d.secret]));
    },
    async device(id, secret, options = {}) {
      const c = await mqtt.connectAsync(mqttUrl, { clientId: id, username: id, password: secret, reconnectPeriod: 0, connectTimeout: 30_000, ...options });
      clients.push(c);
      return c;
    },
    stop,
  };
}

/** A v1 hello as an agent sends it. */
export function helloPayload(deviceId: string, hardwareModel: string, firmwareVersion = '1.0.0', tags: string[] = []): string {
  return JSON.stringify({
    v: 1, kind: 'hello', deviceId, hardwareModel, firmwareVersion, activeSlot: 'A', agentVersion: '0.1.0', bucket: bucketOf(deviceId), tags, securityFloor: 0, at: Date.now(),
  });
}

/** Publishes a hello and waits until the registry shows the device with `firmwareVersion`. */
export async function sayHello(c: CoordinatorProcess, client: MqttClient, deviceId: string, hardwareModel: string, firmwareVersion = '1.0.0'): Promise<void> {
  await client.publishAsync(deviceTopic(deviceId, 'hello'), helloPayload(deviceId, hardwareModel, firmwareVersion), { qos: 1 });
  await waitFor(async () => (await c.api<{ firmwareVersion: string | null }>('GET', `/v1/devices/${deviceId}`)).body?.firmwareVersion === firmwareVersion, `hello of ${deviceId}`);
}

/** The SUBACK code mqtt.js reports for one topic (128: refused). */
export function subscribeCode(client: MqttClient, topic: string): Promise<number> {
  return new Promise((resolve) => {
    client.subscribe(topic, { qos: 1 }, (err, granted) => resolve(err ? 128 : (granted?.[0]?.qos ?? 128)));
  });
}

/** Connects with mqtt.js and resolves with the CONNACK return code (0 connected; the client is then ended). */
export async function connackCode(url: string, options: mqtt.IClientOptions): Promise<number> {
  try {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 30_000, ...options });
    await c.endAsync(true);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}
