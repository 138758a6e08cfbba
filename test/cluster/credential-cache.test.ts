/**
 * The broker's cache of verified device secrets across replicas: two `fleet coordinator start`
 * processes on one PostgreSQL, each with its own embedded broker. A device logs in on B (B now answers
 * its reconnects without a store read); its secret rotated through A, B closes its
 * session and refuses the old secret at once, and takes the new one; revoked through A, B refuses it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { adminApi } from '../support/admin-api.js';
import { freshPostgresUrl } from '../support/postgres.js';
import { spawnFleet, type RunningProcess } from '../support/processes.js';

const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
});

const TOKEN = 'credential-cache-test-token-5c1e8a7b2d9f';

function start(dir: string, name: string, store: string): RunningProcess {
  const p = spawnFleet(
    ['coordinator', 'start', '--data-dir', join(dir, name), '--store', store, '--mqtt-port', '0', '--http-port', '0', '--artifacts-dir', join(dir, 'artifacts'), '--replica-id', name, '--log-format', 'json'],
    { env: { FLEET_ADMIN_TOKEN: TOKEN, FLEET_LEADER_RETRY_MS: '200', FLEET_CREDENTIAL_COST: '4' } },
  );
  stops.push(() => p.stop('SIGKILL'));
  return p;
}

/** The CONNACK: 0 when accepted (the client is returned, connected), else its refusal code. */
function login(url: string, deviceId: string, secret: string): Promise<{ code: number; client?: MqttClient }> {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, { clientId: deviceId, username: deviceId, password: secret, reconnectPeriod: 0, clean: true, connectTimeout: 10_000 });
    c.once('connect', () => resolve({ code: 0, client: c }));
    c.once('error', (err) => {
      c.end(true);
      resolve({ code: typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1 });
    });
  });
}

/** `p`, or a failure naming `what` after `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

async function mqttUrlOf(dataDir: string): Promise<string> {
  return (JSON.parse(await readFile(join(dataDir, 'admin.json'), 'utf8')) as { mqttUrl: string }).mqttUrl;
}

describe('verified-secret cache across replicas', () => {
  it('drops a secret rotated or revoked on another replica at once', { timeout: 120_000 }, async () => {
    const store = await freshPostgresUrl({ keep: true });
    const dir = mkdtempSync(join(tmpdir(), 'fleet-credcache-'));
    stops.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const a = start(dir, 'a', store);
    await a.waitForLine(/coordinator started/, 60_000);
    const b = start(dir, 'b', store);
    await b.waitForLine(/coordinator started/, 60_000);
    const apiA = adminApi(join(dir, 'a'));
    const urlB = await mqttUrlOf(join(dir, 'b'));

    type Provisioned = { devices: { deviceId: string; secret: string }[] };
    const first = (await apiA<Provisioned>('POST', '/v1/devices/provision', { deviceIds: ['cache-1'], hardwareModel: 'rpi4' })).devices[0]!.secret;
    // B learns the secret (and caches it); a reconnect is answered from the cache.
    const on = await login(urlB, 'cache-1', first);
    expect(on.code).toBe(0);
    on.client!.end(true);
    const again = await login(urlB, 'cache-1', first);
    expect(again.code).toBe(0);
    const closed = new Promise<void>((resolve) => again.client!.once('close', () => resolve()));

    // Rotated through A: B closes the session that logged in with the old secret, and refuses it.
    const second = (await apiA<Provisioned>('POST', '/v1/devices/provision', { deviceIds: ['cache-1'], rotate: true })).devices[0]!.secret;
    await within(closed, 15_000, 'B closes the session of the rotated secret');
    again.client!.end(true);
    expect((await login(urlB, 'cache-1', first)).code).toBe(4);
    const fresh = await login(urlB, 'cache-1', second);
    expect(fresh.code).toBe(0);
    // Now cached on B as well; revoked through A: the session closed, the secret refused on B.
    const revokedClosed = new Promise<void>((resolve) => fresh.client!.once('close', () => resolve()));
    await apiA('DELETE', '/v1/devices/cache-1/credentials');
    await within(revokedClosed, 15_000, 'B closes the session of the revoked secret');
    fresh.client!.end(true);
    expect((await login(urlB, 'cache-1', second)).code).toBe(4);
  });
});
