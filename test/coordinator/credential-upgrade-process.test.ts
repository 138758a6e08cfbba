/**
 * A store whose device secrets an earlier coordinator kept as scrypt, under `fleet coordinator start`
 * as a process (SQLite and PostgreSQL): the devices connect with their secrets, their rows move to
 * sha256 behind the logins, the sessions stay up (on PostgreSQL the upgrade tells no replica, its own
 * listener included, to close them), and after a restart the same secrets are accepted from the new
 * form and a wrong one is refused.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { fastHash, scryptHash } from '../../coordinator/broker/secret-hash.js';
import { openPostgresStore, openSqliteStore } from '../../coordinator/store/open-store.js';
import type { Sql } from '../../coordinator/store/sql.js';
import { adminApi } from '../support/admin-api.js';
import { STORE_KINDS, freshPostgresUrl } from '../support/postgres.js';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import { waitFor } from '../support/wait-for.js';

const TOKEN = 'credential-upgrade-test-token-8d3f1a6c9e';
const DEVICES = ['upg-1', 'upg-2', 'upg-3'];

const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
});

/** The CONNACK: 0 when accepted (the client is returned, connected), else its refusal code. */
function login(url: string, deviceId: string, secret: string): Promise<{ code: number; client?: MqttClient }> {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, { clientId: deviceId, username: deviceId, password: secret, reconnectPeriod: 0, clean: true, connectTimeout: 20_000 });
    c.once('connect', () => {
      stops.push(() => c.endAsync(true));
      resolve({ code: 0, client: c });
    });
    c.once('error', (err) => {
      c.end(true);
      resolve({ code: typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1 });
    });
  });
}

/** SIGTERM ends the coordinator with 0 (generous grace: the machine may be busy). */
async function stopped(p: RunningProcess): Promise<void> {
  const exit = await p.stop('SIGTERM', 60_000);
  expect(exit, p.output().slice(-2000)).toEqual({ code: 0, signal: null });
}

describe.each(STORE_KINDS)('device secrets an earlier coordinator stored as scrypt, %s store', (kind) => {
  it('are accepted, stored as sha256 behind the logins, and accepted again after a restart', { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-credupgrade-'));
    stops.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const dataDir = join(dir, 'coordinator');
    const store = kind === 'postgres' ? await freshPostgresUrl() : undefined;
    const openStore = (): Promise<Sql> => (store ? openPostgresStore(store) : Promise.resolve(openSqliteStore(join(dataDir, 'fleet.db'))));
    // Where this start listens (ports are picked at each start).
    let mqttUrl = '';
    const start = async (): Promise<RunningProcess> => {
      const p = spawnFleet(
        ['coordinator', 'start', '--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0', '--log-format', 'json', ...(store ? ['--store', store] : [])],
        { env: { FLEET_ADMIN_TOKEN: TOKEN } },
      );
      stops.push(() => p.stop('SIGKILL'));
      await p.waitForLine(/coordinator started/, 60_000);
      mqttUrl = (JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as { mqttUrl: string }).mqttUrl;
      return p;
    };

    // Provisioned as today, then stored as the earlier coordinator stored them (scrypt; cost 4 is
    // enough to prove the path, the production rule concerns user passwords now).
    let coordinator = await start();
    const api = adminApi(dataDir);
    type Provisioned = { devices: { deviceId: string; secret: string }[] };
    const provisioned = await api<Provisioned>('POST', '/v1/devices/provision', { deviceIds: [...DEVICES, 'marker'], hardwareModel: 'rpi4' });
    const secrets = new Map(provisioned.devices.map((d) => [d.deviceId, d.secret]));
    await stopped(coordinator);
    let sql = await openStore();
    for (const [id, secret] of secrets) await sql.run('UPDATE device_credentials SET secret_hash = ? WHERE device_id = ?', [await scryptHash(secret, 4), id]);
    await sql.close();

    coordinator = await start();
    const closed = new Set<string>();
    const clients = new Map<string, MqttClient>();
    let markerClosed: Promise<void> | undefined;
    for (const id of [...DEVICES, 'marker']) {
      const { code, client } = await login(mqttUrl, id, secrets.get(id)!);
      expect(code, `${id} connects with its secret`).toBe(0);
      const gone = new Promise<void>((resolve) => client!.once('close', () => resolve()));
      void gone.then(() => closed.add(id));
      if (id === 'marker') markerClosed = gone;
      clients.set(id, client!);
    }
    sql = await openStore();
    stops.push(() => sql.close());
    const hashOf = async (id: string): Promise<string | undefined> =>
      (await sql.get<{ secret_hash: string }>('SELECT secret_hash FROM device_credentials WHERE device_id = ?', [id]))?.secret_hash;
    await waitFor(async () => {
      for (const id of [...DEVICES, 'marker']) if ((await hashOf(id)) !== fastHash(secrets.get(id)!)) return false;
      return true;
    }, 'every row stored as sha256 of its secret', 60_000, 100).catch((err: unknown) => {
      console.error(coordinator.output().slice(-4000));
      throw err;
    });

    if (kind === 'postgres') {
      // Revoked behind the coordinator's back, as another replica would: its notification closes the
      // marker's session. Notifications arrive in commit order, so by then the upgrades' would have
      // closed the others' sessions too, had they been announced.
      await sql.run('UPDATE device_credentials SET revoked = 1 WHERE device_id = ?', ['marker']);
      await markerClosed;
    }
    for (const id of DEVICES) {
      expect(closed.has(id), `${id}'s session stays up`).toBe(false);
      expect(clients.get(id)!.connected).toBe(true);
    }
    // Read again: a restart may serve the admin API on another port.
    const counters = await adminApi(dataDir)<{ counters: Record<string, number> }>('GET', '/v1/metrics');
    expect(counters.counters['credentials.upgraded']).toBe(DEVICES.length + 1);

    // A restart: nothing remembered, every secret checked against its sha256.
    await Promise.all([...clients.values()].map((c) => c.endAsync(true)));
    await stopped(coordinator);
    coordinator = await start();
    for (const id of DEVICES) {
      const again = await login(mqttUrl, id, secrets.get(id)!);
      expect(again.code, `${id} connects after the restart`).toBe(0);
      await again.client!.endAsync(true);
    }
    expect((await login(mqttUrl, 'upg-1', secrets.get('upg-2')!)).code).toBe(4);
    expect((await login(mqttUrl, 'nobody-1', secrets.get('upg-2')!)).code).toBe(4);
    for (const id of DEVICES) expect(await hashOf(id)).toBe(fastHash(secrets.get(id)!));
    await stopped(coordinator);
  });
});
