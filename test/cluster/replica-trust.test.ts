/**
 * What one replica learns, the others act on: two `fleet coordinator start` processes on one
 * PostgreSQL and one Mosquitto with dynamic security, sharing an artifacts directory.
 *
 * - A device's secret revoked or rotated through one replica stops opening downloads on the other,
 *   although that one had already accepted the secret (and remembered it); the new secret opens them
 *   on both.
 * - One damaged image is one audit entry, not one per replica that found it; its repair likewise.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApi, type AdminApi } from '../support/admin-api.js';
import { hasDynsec, startDynsecMosquitto, type DynsecMosquitto } from '../support/mosquitto-dynsec.js';
import { freshPostgresUrl } from '../support/postgres.js';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import { waitFor } from '../support/wait-for.js';

const TOKEN = 'replica-trust-test-token-2b7e4d9a1c';

interface Replica {
  process: RunningProcess;
  url: string;
  api: AdminApi;
}

let dir = '';
let broker: DynsecMosquitto | undefined;
let a: Replica;
let b: Replica;
const image = randomBytes(64 * 1024);
let sha = '';

async function startReplica(name: string, store: string): Promise<Replica> {
  const p = spawnFleet(
    [
      'coordinator', 'start', '--data-dir', join(dir, name), '--replica-id', name,
      '--store', store, '--broker', broker!.url, '--broker-credentials', broker!.accountFile,
      '--artifacts-dir', join(dir, 'artifacts'), '--http-port', '0', '--log-format', 'json', '--log-level', 'info',
    ],
    { env: { FLEET_ADMIN_TOKEN: TOKEN, FLEET_LEADER_RETRY_MS: '200' } },
  );
  const line = await p.waitForLine(/coordinator started/, 60_000);
  return { process: p, url: (JSON.parse(line) as { httpUrl: string }).httpUrl, api: adminApi(join(dir, name)) };
}

/** The CLI against one replica; fails the test unless it exits 0. */
async function fleet(on: Replica, args: string[]): Promise<void> {
  const p = spawnFleet([...args, '--url', on.url, '--token', TOKEN]);
  expect((await p.exited).code, p.output()).toBe(0);
}

/** `fleet devices provision` through a replica; the secrets from the file it writes. */
async function provision(on: Replica, ids: string[], rotate = false): Promise<Record<string, string>> {
  const out = join(dir, `secrets-${randomBytes(4).toString('hex')}.json`);
  await fleet(on, ['devices', 'provision', ...ids, '--model', 'rpi4', '--out', out, ...(rotate ? ['--rotate'] : [])]);
  return JSON.parse(readFileSync(out, 'utf8')) as Record<string, string>;
}

/** A download of the image from a replica with a device's credentials: the status. */
async function download(from: Replica, deviceId: string, secret: string): Promise<number> {
  const res = await fetch(`${from.url}/artifacts/${sha}`, {
    headers: { authorization: `Basic ${Buffer.from(`${deviceId}:${secret}`).toString('base64')}` },
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer();
  return res.status;
}

async function audit(on: Replica, action: string): Promise<number> {
  const { entries } = await on.api<{ entries: { action: string }[] }>('GET', `/v1/audit?subject=${sha}&limit=100`);
  return entries.filter((e) => e.action === action).length;
}

describe.skipIf(!hasDynsec)('replicated coordinators: trust shared between replicas', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleet-replica-trust-'));
    broker = await startDynsecMosquitto();
    const store = await freshPostgresUrl({ keep: true });
    a = await startReplica('replica-a', store);
    await a.process.waitForLine(/elected leader/, 30_000);
    b = await startReplica('replica-b', store);
    const uploaded = await a.api<{ sha256: string }>('POST', '/v1/firmware?version=1.0.0&hardware=rpi4', undefined, image);
    sha = uploaded.sha256;
  }, 120_000);

  afterAll(async () => {
    await a?.process.stop('SIGKILL');
    await b?.process.stop('SIGKILL');
    await broker?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a secret revoked through another replica, though it had accepted it before', { timeout: 120_000 }, async () => {
    const secrets = await provision(a, ['trust-revoked']);
    const secret = secrets['trust-revoked']!;
    // Another replica learns the device from the store; once it accepted the secret it remembers it.
    await waitFor(async () => (await download(b, 'trust-revoked', secret)) === 200, 'replica-b to serve the new device');
    expect(await download(b, 'trust-revoked', secret)).toBe(200);

    await fleet(a, ['devices', 'revoke', 'trust-revoked', '--reason', 'replica trust test']);
    expect(await download(a, 'trust-revoked', secret)).toBe(401);
    await waitFor(async () => (await download(b, 'trust-revoked', secret)) === 401, 'replica-b to refuse the revoked secret', 15_000, 100);
    // Refused for good, not by a moment's chance.
    expect(await download(b, 'trust-revoked', secret)).toBe(401);
  });

  it('refuses a rotated secret on the replica that had accepted it, and accepts the new one on both', { timeout: 120_000 }, async () => {
    const old = (await provision(a, ['trust-rotated']))['trust-rotated']!;
    await waitFor(async () => (await download(b, 'trust-rotated', old)) === 200, 'replica-b to serve the new device');

    const rotated = (await provision(a, ['trust-rotated'], true))['trust-rotated']!;
    expect(rotated).not.toBe(old);
    expect(await download(a, 'trust-rotated', old)).toBe(401);
    await waitFor(async () => (await download(b, 'trust-rotated', old)) === 401, 'replica-b to refuse the rotated-out secret', 15_000, 100);
    expect(await download(a, 'trust-rotated', rotated)).toBe(200);
    expect(await download(b, 'trust-rotated', rotated)).toBe(200);

    // Rotated through the other replica: the same, the other way round.
    const third = (await provision(b, ['trust-rotated'], true))['trust-rotated']!;
    expect(await download(b, 'trust-rotated', rotated)).toBe(401);
    await waitFor(async () => (await download(a, 'trust-rotated', rotated)) === 401, 'replica-a to refuse the rotated-out secret', 15_000, 100);
    expect(await download(a, 'trust-rotated', third)).toBe(200);
    expect(await download(b, 'trust-rotated', third)).toBe(200);
  });

  it('records one damaged image once, whichever replicas find it, and its repair once', { timeout: 120_000 }, async () => {
    const secret = (await provision(a, ['trust-integrity']))['trust-integrity']!;
    await waitFor(async () => (await download(b, 'trust-integrity', secret)) === 200, 'replica-b to serve the image');
    expect(await download(a, 'trust-integrity', secret)).toBe(200);

    // One byte flipped in place in the shared directory: both replicas find it on their next use.
    const damaged = Buffer.from(image);
    damaged[1000] = damaged[1000]! ^ 0xff;
    writeFileSync(join(dir, 'artifacts', sha), damaged);
    expect(await download(a, 'trust-integrity', secret)).toBe(500);
    expect(await download(b, 'trust-integrity', secret)).toBe(500);
    for (const r of [a, b]) await r.process.waitForLine(/"status":"damaged".*integrity finding/, 15_000);
    expect(await audit(a, 'artifact.damaged')).toBe(1);

    // The same bytes uploaded again through the other replica make it whole; both serve it again.
    await b.api('POST', '/v1/firmware?version=1.0.0&hardware=rpi4', undefined, image);
    expect(await download(b, 'trust-integrity', secret)).toBe(200);
    expect(await download(a, 'trust-integrity', secret)).toBe(200);
    for (const r of [a, b]) await r.process.waitForLine(/"status":"verified".*integrity finding/, 15_000);
    expect(await audit(b, 'artifact.repaired')).toBe(1);
    expect(await audit(b, 'artifact.damaged')).toBe(1);
  });
});
