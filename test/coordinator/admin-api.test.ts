/** The admin API against a real coordinator: auth, errors as JSON, devices, firmware, deployments. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { publicKeyFromPem } from '../../firmware/keys.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { api, knownDevices, sayHello, startCoordinator, tempDir, uniqueId } from './helpers.js';

let c: Coordinator;
let cleanup: () => void;
let dir: string;

beforeEach(async () => {
  ({ dir, cleanup } = tempDir());
  // Anonymous devices (ghosts) allowed, as in development: they must never count.
  c = await startCoordinator(dir, { config: { allowAnonymousDevices: true } });
});

afterEach(async () => {
  await c.stop();
  await c.stop(); // safe twice
  cleanup();
});

async function upload(version: string, hardware = 'rpi4', bytes = Buffer.alloc(4096, version)): Promise<Response> {
  return fetch(`${c.httpUrl}/v1/firmware?version=${version}&hardware=${hardware}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${c.adminToken}`, 'content-type': 'application/octet-stream' },
    body: bytes,
  });
}

describe('admin API', () => {
  it('serves health without a token and refuses everything else without the right token', async () => {
    expect((await api(c, 'GET', '/v1/health', undefined, null)).status).toBe(200);
    const none = await api<{ error: { code: string; message: string } }>(c, 'GET', '/v1/devices', undefined, null);
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('unauthorized');
    expect(none.body.error.message).toMatch(/FLEET_TOKEN/);
    expect((await api(c, 'GET', '/v1/devices', undefined, 'wrong-token')).status).toBe(401);
    expect((await api(c, 'GET', '/v1/devices')).status).toBe(200);
  });

  it('answers unknown routes with 404 and bad bodies with 400, as JSON errors', async () => {
    const missing = await api<{ error: { code: string } }>(c, 'GET', '/v1/nope');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not-found');
    const bad = await api<{ error: { code: string; message: string } }>(c, 'POST', '/v1/devices/provision', { deviceIds: ['bad id/#'] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid-input');
    expect(bad.body.error.message).toMatch(/deviceIds/);
    const notJson = await fetch(`${c.httpUrl}/v1/deployments`, { method: 'POST', headers: { authorization: `Bearer ${c.adminToken}` }, body: '{' });
    expect(notJson.status).toBe(400);
  });

  it('provisions devices (secret once, 409 on repeat without rotate) and lists and shows them', async () => {
    const id = uniqueId('dev');
    const res = await api<{ devices: { deviceId: string; secret: string }[] }>(c, 'POST', '/v1/devices/provision', { deviceIds: [id], hardwareModel: 'rpi4', tags: ['lab'] });
    expect(res.status).toBe(201);
    expect(res.body.devices[0]!.secret.length).toBeGreaterThan(20);
    expect((await api(c, 'POST', '/v1/devices/provision', { deviceIds: [id] })).status).toBe(409);
    expect((await api(c, 'POST', '/v1/devices/provision', { deviceIds: [id], rotate: true })).status).toBe(201);
    const list = await api<{ total: number; devices: { deviceId: string; hardwareModel: string; tags: string[] }[] }>(c, 'GET', '/v1/devices?model=rpi4');
    expect(list.body.total).toBe(1);
    expect(list.body.devices[0]).toMatchObject({ deviceId: id, hardwareModel: 'rpi4', tags: ['lab'] });
    const show = await api<{ hasCredentials: boolean }>(c, 'GET', `/v1/devices/${id}`);
    expect(show.body.hasCredentials).toBe(true);
    expect((await api(c, 'GET', `/v1/devices/${uniqueId('ghost')}`)).status).toBe(404);
  });

  it('uploads firmware (content-addressed, signed), refuses a duplicate version, lists it', async () => {
    const res = await upload('1.1.0');
    expect(res.status).toBe(201);
    const body = (await res.json()) as { sha256: string; size: number; url: string; keyIds: string[] };
    expect(body.size).toBe(4096);
    expect(body.keyIds).toEqual([publicKeyFromPem(c.publicKeyPem).keyid]);
    expect(body.url).toBe(`${c.httpUrl}/artifacts/${body.sha256}`);
    expect((await upload('1.1.0')).status).toBe(409);
    const list = await api<{ firmware: { firmwareVersion: string }[] }>(c, 'GET', '/v1/firmware');
    expect(list.body.firmware.map((f) => f.firmwareVersion)).toEqual(['1.1.0']);
    const bad = await fetch(`${c.httpUrl}/v1/firmware?version=not-semver&hardware=rpi4`, { method: 'POST', headers: { authorization: `Bearer ${c.adminToken}` }, body: 'x' });
    expect(bad.status).toBe(400);
  });

  it('creates a deployment, refuses a second one for the same model, and applies operator actions', async () => {
    expect((await upload('2.0.0')).status).toBe(201);
    const unknown = await api<{ error: { message: string } }>(c, 'POST', '/v1/deployments', { firmwareVersion: '9.9.9', target: { hardwareModels: ['rpi4'] } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toMatch(/fleet firmware upload/);
    // No known device of the model: refused rather than completed at once through empty waves.
    const empty = await api<{ error: { code: string; message: string } }>(c, 'POST', '/v1/deployments', { firmwareVersion: '2.0.0', target: { hardwareModels: ['rpi4'] } });
    expect(empty.status).toBe(409);
    expect(empty.body.error.code).toBe('no-eligible-devices');
    expect(empty.body.error.message).toMatch(/says hello/);
    // A ghost (never provisioned: connected without credentials) never counts.
    await sayHello(c, [{ deviceId: 'api-ghost-1' }]);
    expect(c.device('api-ghost-1')?.ghost).toBe(true);
    expect((await api(c, 'POST', '/v1/deployments', { firmwareVersion: '2.0.0', target: { hardwareModels: ['rpi4'] } })).status).toBe(409);
    // A device is known once it is provisioned and has said hello.
    await knownDevices(c, ['api-dev-1']);
    // Waves that stop short of 100 % would "complete" with most of the target never updated.
    const partial = await api<{ error: { code: string; message: string } }>(c, 'POST', '/v1/deployments', {
      firmwareVersion: '2.0.0',
      target: { hardwareModels: ['rpi4'] },
      waves: [{ percent: 1 }, { percent: 5 }, { percent: 25 }],
    });
    expect(partial.status).toBe(400);
    expect(partial.body.error.message).toMatch(/the last wave must reach 100 %, not 25 %/);
    const created = await api<{ id: string; phase: string; waves: { percent: number }[]; warnings?: string[] }>(c, 'POST', '/v1/deployments', {
      firmwareVersion: '2.0.0',
      target: { hardwareModels: ['rpi4'] },
      waves: [{ percent: 10, soakMs: 1000 }, { percent: 100, soakMs: 1000, requiresApproval: true }],
    });
    expect(created.status).toBe(201);
    expect(created.body.waves.map((w) => w.percent)).toEqual([10, 100]);
    // One known device cannot give the first wave the 20 devices it needs reporting by default.
    expect(created.body.warnings).toEqual([expect.stringMatching(/^wave 1 \(10 %\) covers (none|1) of the 1 known devices? in the target/)]);
    const again = await api(c, 'POST', '/v1/deployments', { firmwareVersion: '2.0.0', target: { hardwareModels: ['rpi4'] } });
    expect(again.status).toBe(409);
    const id = created.body.id;
    const paused = await api<{ paused: boolean }>(c, 'POST', `/v1/deployments/${id}/actions`, { type: 'pause', reason: 'test' });
    expect(paused.status).toBe(200);
    expect(paused.body.paused).toBe(true);
    expect((await api(c, 'POST', `/v1/deployments/${id}/actions`, { type: 'pause' })).status).toBe(409);
    expect((await api<{ paused: boolean }>(c, 'POST', `/v1/deployments/${id}/actions`, { type: 'resume' })).body.paused).toBe(false);
    expect((await api(c, 'POST', `/v1/deployments/${id}/actions`, { type: 'explode' })).status).toBe(400);
    const list = await api<{ deployments: { id: string }[] }>(c, 'GET', '/v1/deployments');
    expect(list.body.deployments.map((d) => d.id)).toEqual([id]);
    const aborted = await api<{ phase: string }>(c, 'POST', `/v1/deployments/${id}/actions`, { type: 'abort', reason: 'test' });
    expect(['aborted', 'rolling-back', 'rolled-back']).toContain(aborted.body.phase);
    const audit = await api<{ entries: { action: string }[] }>(c, 'GET', '/v1/audit?limit=50');
    expect(audit.body.entries.map((e) => e.action)).toEqual(expect.arrayContaining(['firmware.uploaded', 'deployment.created']));
    expect((await api(c, 'GET', '/v1/deployments/nope')).status).toBe(404);
  });

  it('mounts the flag routes and publishes the device flags retained', async () => {
    const flags = await api<{ flags: { name: string }[] }>(c, 'GET', '/v1/flags');
    expect(flags.status).toBe(200);
    expect(flags.body.flags.map((f) => f.name)).toEqual(expect.arrayContaining(['canary.stat', 'canary.ai']));
    const msg = await api<{ kind: string }>(c, 'GET', '/v1/flags-message');
    expect(msg.body.kind).toBe('flags');
  });

  it('writes the admin file in development and keeps the token across a restart', async () => {
    const file = JSON.parse(readFileSync(join(dir, 'admin.json'), 'utf8')) as { url: string; token: string };
    expect(file).toMatchObject({ url: c.httpUrl, token: c.adminToken });
    const token = c.adminToken;
    const url = c.httpUrl;
    await c.stop();
    c = await startCoordinator(dir, { config: { http: { port: 'auto', host: '127.0.0.1' } } });
    expect(c.adminToken).toBe(token);
    expect(c.httpUrl).toBe(url); // `auto` reuses the previous run's port: manifests point at it
  });
});
