/**
 * Presence across a coordinator's restart, per topology (docs/replication.md, Presence), with real
 * processes: `fleet coordinator start` replicas on one PostgreSQL (failover-harness.ts), devices as
 * MQTT clients that connect as agents do (credentials, a last will of presence offline, a hello) and
 * then say nothing more, so only the coordinators' own rule can keep them online.
 *
 * - Replicas on one Mosquitto: restarting one replica leaves every device online in both registries
 *   (its connections are the broker's, not the replica's), and a last will still takes one offline.
 * - Replicas with embedded brokers clustered through Redis: a node killed and started again reports
 *   the devices its previous run held offline at once, and leaves the other node's devices online.
 * - One coordinator on Mosquitto: its restart leaves its devices online; the broker's first uptime
 *   after the start marks offline those stored online but not heard from since the broker started
 *   (the broker was killed while no coordinator ran).
 * - One coordinator with its embedded broker: a restart still marks its devices offline (their
 *   connections ended with it) until they connect and say hello again.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { deviceTopic } from '../../protocol/topics.js';
import { adminApi, type AdminApi } from '../support/admin-api.js';
import { hasDynsec, startDynsecMosquitto } from '../support/mosquitto-dynsec.js';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import { hasRedis, RedisServer } from '../support/redis.js';
import { waitFor } from '../support/wait-for.js';
import { helloPayload } from '../hostile/hostile-harness.js';
import { FailoverHarness, type Replica } from './failover-harness.js';

const TOKEN = 'replica-presence-token-4e8b1d7a2c';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Connects as an agent does (persistent session, last will of presence offline) and says hello. */
async function connectDevice(url: string, id: string, secret: string): Promise<MqttClient> {
  const will = { topic: deviceTopic(id, 'presence'), payload: Buffer.from(JSON.stringify({ v: 1, kind: 'presence', deviceId: id, state: 'offline' })), qos: 1 as const, retain: false };
  const c = await mqtt.connectAsync(url, { clientId: id, username: id, password: secret, clean: false, reconnectPeriod: 0, connectTimeout: 10_000, will });
  c.on('error', () => undefined);
  cleanups.push(() => c.endAsync(true));
  await c.publishAsync(deviceTopic(id, 'hello'), helloPayload(id, 'rpi4'), { qos: 1 });
  return c;
}

/** Which of `ids` the replica's registry shows online (`GET /v1/devices`). */
async function onlineOn(h: FailoverHarness, r: Replica, ids: readonly string[]): Promise<string[]> {
  const { devices } = await h.api<{ devices: { deviceId: string; online: boolean }[] }>(r.url, '/v1/devices?online=true&limit=1000');
  return devices.map((d) => d.deviceId).filter((id) => ids.includes(id));
}

/** Kills (or stops) a replica and starts it again on its data directory. */
async function restart(h: FailoverHarness, name: string, signal: NodeJS.Signals): Promise<Replica> {
  const old = h.replicas.get(name)!;
  const exit = await old.process.stop(signal);
  if (signal === 'SIGTERM') expect(exit.code, old.process.output().slice(-2000)).toBe(0);
  h.replicas.delete(name);
  return h.startReplica(name);
}

/**
 * Resolves once `on` has read a device provisioned through `through` after its restart: every device
 * change `through` stored before (at its start) was announced earlier, so `on` has read those too.
 */
async function changesSeen(h: FailoverHarness, through: Replica, on: Replica, id: string): Promise<void> {
  const p = spawnFleet(['devices', 'provision', id, '--model', 'rpi4', '--out', join(h.dir, `${id}.json`), '--url', through.url, '--token', TOKEN]);
  expect((await p.exited).code, p.output()).toBe(0);
  await waitFor(() => h.api(on.url, `/v1/devices/${id}`).then(() => true, () => false), `${on.name} read ${id}`, 30_000);
}

function harness(name: string, brokerArgs: () => string[], env?: (replica: string) => Record<string, string>): FailoverHarness {
  const h = new FailoverHarness({ name, token: TOKEN, devices: 4, idPrefix: `${name}-`, seed: 1, brokerArgs, simulatorBrokers: () => '', ...(env ? { env } : {}) });
  cleanups.push(() => h.close());
  return h;
}

const secretsOf = (h: FailoverHarness): Record<string, string> => JSON.parse(readFileSync(join(h.dir, 'secrets.json'), 'utf8')) as Record<string, string>;

describe.skipIf(!hasDynsec)('presence across a replica restart: replicas on Mosquitto', () => {
  it("keeps every device online when a replica restarts; a last will still takes one offline", { timeout: 180_000 }, async () => {
    const broker = await startDynsecMosquitto();
    cleanups.push(() => broker.close());
    const h = harness('pres-mq', () => ['--broker', broker.url, '--broker-credentials', broker.accountFile]);
    await h.start('replica-a', 'replica-b');
    const secrets = secretsOf(h);
    const ids = Object.keys(secrets).sort();
    const clients = new Map<string, MqttClient>();
    for (const id of ids) clients.set(id, await connectDevice(broker.url, id, secrets[id]!));
    for (const r of h.replicas.values()) await waitFor(async () => (await onlineOn(h, r, ids)).length === ids.length, `every device online on ${r.name}`, 30_000);

    const b = await restart(h, 'replica-b', 'SIGTERM');
    const a = h.replicas.get('replica-a')!;
    await changesSeen(h, b, a, 'pres-mq-marker');
    expect({ a: await onlineOn(h, a, ids), b: await onlineOn(h, b, ids) }).toEqual({ a: ids, b: ids });

    // Presence still comes from the broker: a dropped connection's will reaches both replicas.
    clients.get(ids[0]!)!.stream.destroy();
    for (const r of [a, b]) await waitFor(async () => (await onlineOn(h, r, ids)).length === ids.length - 1, `${ids[0]} offline on ${r.name}`, 30_000);
    expect(await onlineOn(h, b, ids)).toEqual(ids.slice(1));
  });
});

describe.skipIf(!hasRedis)('presence across a node restart: the embedded cluster', () => {
  it("reports the killed node's devices offline at its start and leaves the other node's online", { timeout: 180_000 }, async () => {
    const redis = await RedisServer.start();
    cleanups.push(() => redis.close());
    const h = harness('pres-ec', () => ['--cluster-redis', redis.url, '--mqtt-port', '0'], (name) => ({ FLEET_CLUSTER_NODE: name }));
    await h.start('node-a', 'node-b');
    const secrets = secretsOf(h);
    const ids = Object.keys(secrets).sort();
    const [onA, onB] = [ids.slice(0, 2), ids.slice(2)];
    for (const id of onA) await connectDevice(h.replicas.get('node-a')!.mqttUrl!, id, secrets[id]!);
    for (const id of onB) await connectDevice(h.replicas.get('node-b')!.mqttUrl!, id, secrets[id]!);
    for (const r of h.replicas.values()) await waitFor(async () => (await onlineOn(h, r, ids)).length === ids.length, `every device online on ${r.name}`, 30_000);

    // node-b crashes; its devices do not reconnect (they would, to node-a, as agents do).
    const b = await restart(h, 'node-b', 'SIGKILL');
    const line = JSON.parse(await b.process.waitForLine(/previous run/, 5_000)) as { devices: number };
    expect(line.devices).toBe(onB.length);
    const a = h.replicas.get('node-a')!;
    await changesSeen(h, b, a, 'pres-ec-marker');
    for (const r of [a, b]) await waitFor(async () => (await onlineOn(h, r, ids)).join() === onA.join(), `only node-a's devices online on ${r.name}`, 30_000);
  });
});

describe.skipIf(!hasDynsec)('presence across a restart: one coordinator on Mosquitto', () => {
  it("keeps its devices online over its restart, and checks them against the broker's uptime", { timeout: 180_000 }, async () => {
    const broker = await startDynsecMosquitto();
    cleanups.push(() => broker.close());
    const dir = mkdtempSync(join(tmpdir(), 'fleet-presence-mq-'));
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const start = async (): Promise<{ p: RunningProcess; checked: { offline: number } }> => {
      const p = spawnFleet(['coordinator', 'start', '--data-dir', dir, '--broker', broker.url, '--broker-credentials', broker.accountFile, '--http-port', '0', '--log-format', 'json'], { env: { FLEET_ADMIN_TOKEN: TOKEN } });
      cleanups.push(() => p.stop('SIGKILL'));
      await p.waitForLine(/coordinator started/, 60_000);
      return { p, checked: JSON.parse(await p.waitForLine(/stored presence checked/, 30_000)) as { offline: number } };
    };
    let { p } = await start();
    const api: AdminApi = (...args) => adminApi(dir)(...args);
    const ids = ['pres-mq1-0', 'pres-mq1-1'];
    const { devices } = await api<{ devices: { deviceId: string; secret: string }[] }>('POST', '/v1/devices/provision', { deviceIds: ids, hardwareModel: 'rpi4' });
    const secrets = new Map(devices.map((d) => [d.deviceId, d.secret]));
    for (const id of ids) await connectDevice(broker.url, id, secrets.get(id)!);
    const online = async (): Promise<string[]> => (await api<{ devices: { deviceId: string }[] }>('GET', '/v1/devices?online=true')).devices.map((d) => d.deviceId);
    await waitFor(async () => (await online()).length === ids.length, 'both online from their hellos');

    // The coordinator restarts; the devices stay connected to the broker, which has run all along.
    expect((await p.stop('SIGTERM')).code).toBe(0);
    let checked: { offline: number };
    ({ p, checked } = await start());
    expect({ checked: checked.offline, online: await online() }).toEqual({ checked: 0, online: ids });

    // The broker is killed while the coordinator is down (no wills) and the devices do not come back:
    // what the store says of their presence predates the broker's start.
    expect((await p.stop('SIGTERM')).code).toBe(0);
    await broker.broker.kill();
    await broker.broker.restart();
    ({ checked } = await start());
    expect({ checked: checked.offline, online: await online() }).toEqual({ checked: 2, online: [] });
  });
});

describe('presence across a restart: one coordinator with its embedded broker', () => {
  it('marks its devices offline at a restart until they connect again', { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-presence-single-'));
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const start = (): RunningProcess => {
      const p = spawnFleet(['coordinator', 'start', '--data-dir', dir, '--http-port', '0', '--mqtt-port', '0', '--log-format', 'json'], { env: { FLEET_ADMIN_TOKEN: TOKEN } });
      cleanups.push(() => p.stop('SIGKILL'));
      return p;
    };
    let p = start();
    await p.waitForLine(/coordinator started/, 60_000);
    // admin.json names this run's admin URL: read again after the restart.
    const api: AdminApi = (...args) => adminApi(dir)(...args);
    const id = 'pres-single-0';
    const { devices } = await api<{ devices: { deviceId: string; secret: string }[] }>('POST', '/v1/devices/provision', { deviceIds: [id], hardwareModel: 'rpi4' });
    const secret = devices[0]!.secret;
    const mqttUrl = (): string => (JSON.parse(readFileSync(join(dir, 'admin.json'), 'utf8')) as { mqttUrl: string }).mqttUrl;
    const online = async (): Promise<boolean> => (await api<{ online: boolean }>('GET', `/v1/devices/${id}`)).online;
    await connectDevice(mqttUrl(), id, secret);
    await waitFor(online, 'online from its hello');

    expect((await p.stop('SIGTERM')).code).toBe(0);
    p = start();
    await p.waitForLine(/coordinator started/, 60_000);
    expect(await online()).toBe(false);
    await connectDevice(mqttUrl(), id, secret);
    await waitFor(online, 'online again from its hello');
  });
});
