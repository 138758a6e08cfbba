/**
 * Named users against a real coordinator over HTTP: what each role may do, the web login (session
 * cookie, CSRF, logout, throttling, Secure over HTTPS), and an audit log that names the person, their
 * role, their address and their reason.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { api, knownDevices, startCoordinator, tempDir } from './helpers.js';

let c: Coordinator;
let cleanup: () => void;
let dir: string;

beforeEach(async () => {
  ({ dir, cleanup } = tempDir());
  c = await startCoordinator(join(dir, 'data'));
});

afterEach(async () => {
  await c.stop();
  cleanup();
});

type ErrorBody = { error: { code: string; message: string } };

/** Adds a user with the built-in admin's token; returns their API token. */
async function addUser(name: string, role: string, password?: string): Promise<string> {
  const res = await api<{ token: string; user: { name: string } }>(c, 'POST', '/v1/users', { name, role, ...(password ? { password } : {}), reason: `test ${name}` });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.token;
}

/** A device the registry knows (provisioned, said hello) and firmware 2.0.0 to deploy to it. */
async function deployable(): Promise<void> {
  const up = await fetch(`${c.httpUrl}/v1/firmware?version=2.0.0&hardware=rpi4`, {
    method: 'POST',
    headers: { authorization: `Bearer ${c.adminToken}`, 'content-type': 'application/octet-stream' },
    body: Buffer.alloc(4096, 2),
  });
  expect(up.status).toBe(201);
  await knownDevices(c, ['roles-dev-1'], 'rpi4', { firmwareVersion: '1.0.0' });
}

const as = (token: string) => ({ httpUrl: c.httpUrl, adminToken: token });

describe('roles', () => {
  it('a viewer reads but cannot act, an operator steers rollouts but cannot manage users, an admin can', async () => {
    const vera = await addUser('vera', 'viewer');
    const otto = await addUser('otto', 'operator');
    const ada = await addUser('ada', 'admin');
    await deployable();
    const request = { firmwareVersion: '2.0.0', target: { hardwareModels: ['rpi4'] }, waves: [{ percent: 10, soakMs: 60_000 }, { percent: 100, requiresApproval: true }] };

    // Viewer: every GET, nothing else.
    for (const path of ['/v1/devices', '/v1/deployments', '/v1/firmware', '/v1/flags', '/v1/audit', '/v1/users', '/v1/info']) {
      expect((await api(as(vera), 'GET', path)).status, path).toBe(200);
    }
    const denied = await api<ErrorBody>(as(vera), 'POST', '/v1/deployments', request);
    expect(denied.status).toBe(403);
    expect(denied.body.error).toEqual({ code: 'forbidden', message: 'POST /v1/deployments needs the operator role; you are vera (viewer)' });
    expect((await api(as(vera), 'POST', '/v1/devices/provision', { deviceIds: ['x-1'] })).status).toBe(403);

    // Operator: deployments and their actions; not users, devices, flags or firmware.
    const created = await api<{ id: string }>(as(otto), 'POST', '/v1/deployments', request);
    expect(created.status).toBe(201);
    const id = created.body.id;
    const viewerPause = await api<ErrorBody>(as(vera), 'POST', `/v1/deployments/${id}/actions`, { type: 'pause' });
    expect(viewerPause.status).toBe(403);
    expect(viewerPause.body.error.message).toBe(`POST /v1/deployments/:id/actions needs the operator role; you are vera (viewer)`);
    expect((await api(as(otto), 'POST', `/v1/deployments/${id}/actions`, { type: 'approve', reason: 'change ticket 42' })).status).toBe(200);
    const usersDenied = await api<ErrorBody>(as(otto), 'POST', '/v1/users', { name: 'mallory', role: 'admin' });
    expect(usersDenied.status).toBe(403);
    expect(usersDenied.body.error.message).toBe('POST /v1/users needs the admin role; you are otto (operator)');
    expect((await api(as(otto), 'PUT', '/v1/flags/canary.ai', { enabled: true })).status).toBe(403);
    expect((await api(as(otto), 'POST', '/v1/devices/provision', { deviceIds: ['x-2'] })).status).toBe(403);
    expect((await api(as(otto), 'DELETE', '/v1/devices/roles-dev-1/credentials')).status).toBe(403);

    // Admin: everything.
    expect((await api(as(ada), 'POST', '/v1/devices/provision', { deviceIds: ['x-3'] })).status).toBe(201);
    expect((await api(as(ada), 'PUT', '/v1/flags/canary.ai', { enabled: false, reason: 'quiet' })).status).toBe(200);
    expect((await api(as(ada), 'POST', '/v1/users', { name: 'walt', role: 'viewer' })).status).toBe(201);

    // The abort names the person, in the deployment and in the audit log, with role, address and reason.
    const aborted = await api<{ abortedBy: string; abortReason: string; waves: { approvedBy?: string }[] }>(as(otto), 'POST', `/v1/deployments/${id}/actions`, {
      type: 'abort',
      reason: 'bad canary metrics',
    });
    expect(aborted.status).toBe(200);
    expect(aborted.body).toMatchObject({ abortedBy: 'operator:otto', abortReason: 'bad canary metrics' });
    expect(aborted.body.waves[1]!.approvedBy).toBe('operator:otto');
    const audit = await api<{ entries: { actor: string; user: string | null; role: string | null; source: string | null; action: string; subject: string; reason: string | null }[] }>(
      as(vera),
      'GET',
      `/v1/audit?subject=${id}`,
    );
    const byAction = new Map(audit.body.entries.map((e) => [e.action, e]));
    expect(byAction.get('deployment.aborted')).toMatchObject({ actor: 'operator:otto', user: 'otto', role: 'operator', source: '127.0.0.1', reason: 'bad canary metrics' });
    expect(byAction.get('deployment.wave-approved')).toMatchObject({ actor: 'operator:otto', user: 'otto', role: 'operator', reason: 'change ticket 42' });
    expect(byAction.get('deployment.created')).toMatchObject({ actor: 'operator:otto', user: 'otto', role: 'operator' });
    const people = await api<{ entries: { action: string; subject: string; user: string; role: string; reason: string | null }[] }>(c, 'GET', '/v1/audit?user=admin&limit=10');
    expect(people.body.entries.filter((e) => e.action === 'users.added').map((e) => [e.subject, e.user, e.role, e.reason])).toEqual([
      ['ada', 'admin', 'admin', 'test ada'],
      ['otto', 'admin', 'admin', 'test otto'],
      ['vera', 'admin', 'admin', 'test vera'],
    ]);
  });

  it('a removed user, or a replaced token, is refused at once; the built-in admin stays', async () => {
    const tok = await addUser('tess', 'operator');
    expect((await api(as(tok), 'GET', '/v1/session')).body).toEqual({ user: { name: 'tess', role: 'operator' } });
    const renewed = await api<{ token: string }>(c, 'POST', '/v1/users/tess/token', {});
    expect(renewed.status).toBe(200);
    expect((await api(as(tok), 'GET', '/v1/devices')).status).toBe(401);
    expect((await api(as(renewed.body.token), 'GET', '/v1/devices')).status).toBe(200);
    expect((await api(c, 'DELETE', '/v1/users/tess?reason=left%20the%20team')).status).toBe(204);
    expect((await api(as(renewed.body.token), 'GET', '/v1/devices')).status).toBe(401);
    const builtin = await api<ErrorBody>(c, 'DELETE', '/v1/users/admin');
    expect(builtin.status).toBe(409);
    expect(builtin.body.error.message).toMatch(/built-in admin/);
    const short = await api<ErrorBody>(c, 'POST', '/v1/users', { name: 'pat', role: 'viewer', password: 'too short' });
    expect(short.status).toBe(400);
    expect(short.body.error.message).toMatch(/password: a password needs at least 12 characters/);
  });
});

/** Calls the API with the session cookie (and the CSRF token when given). */
async function withCookie<T>(cookie: string, method: string, path: string, body?: unknown, csrf?: string): Promise<{ status: number; body: T; setCookie: string | null }> {
  const res = await fetch(`${c.httpUrl}${path}`, {
    method,
    headers: { cookie, ...(csrf !== undefined ? { 'x-csrf-token': csrf } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T, setCookie: res.headers.get('set-cookie') };
}

async function login(body: unknown): Promise<{ status: number; body: { user: { name: string; role: string }; csrfToken: string } & ErrorBody; cookie: string; setCookie: string; retryAfter: string | null }> {
  const res = await fetch(`${c.httpUrl}/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const setCookie = res.headers.get('set-cookie') ?? '';
  return { status: res.status, body: (await res.json()) as never, cookie: setCookie.split(';')[0]!, setCookie, retryAfter: res.headers.get('retry-after') };
}

describe('web sessions', () => {
  it('log in with a password, act with the CSRF token only, and log out', async () => {
    await addUser('wes', 'operator', 'wes the operator');
    const session = await login({ username: 'wes', password: 'wes the operator' });
    expect(session.status).toBe(200);
    expect(session.body.user).toEqual({ name: 'wes', role: 'operator' });
    expect(session.setCookie).toMatch(/^fleet_session=[\w-]{43}; Max-Age=\d+; Path=\/; HttpOnly; SameSite=Strict$/);
    const { cookie } = session;
    const csrf = session.body.csrfToken;
    const me = await withCookie<{ user: { name: string }; csrfToken: string }>(cookie, 'GET', '/v1/session');
    expect(me.body).toMatchObject({ user: { name: 'wes', role: 'operator' }, csrfToken: csrf });
    expect((await withCookie(cookie, 'GET', '/v1/devices')).status).toBe(200);

    // Without the header, or with another, a change is refused; with it, it reaches the route.
    const noCsrf = await withCookie<ErrorBody>(cookie, 'POST', '/v1/deployments/nope/actions', { type: 'pause' });
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.body.error.code).toBe('csrf');
    expect((await withCookie<ErrorBody>(cookie, 'POST', '/v1/deployments/nope/actions', { type: 'pause' }, 'forged')).body.error.code).toBe('csrf');
    expect((await withCookie<ErrorBody>(cookie, 'POST', '/v1/deployments/nope/actions', { type: 'pause' }, csrf)).status).toBe(404);
    expect((await withCookie<ErrorBody>(cookie, 'POST', '/v1/users', { name: 'eve', role: 'admin' }, csrf)).status).toBe(403);

    // Changing one's own password from a session needs the current one, and ends the other sessions.
    const other = await login({ username: 'wes', password: 'wes the operator' });
    const noCurrent = await withCookie<ErrorBody>(cookie, 'PUT', '/v1/users/wes/password', { password: 'wes the new password' }, csrf);
    expect(noCurrent.status).toBe(403);
    expect(noCurrent.body.error.message).toMatch(/current password/);
    expect((await withCookie(cookie, 'PUT', '/v1/users/wes/password', { password: 'wes the new password', currentPassword: 'wes the operator' }, csrf)).status).toBe(204);
    expect((await withCookie(other.cookie, 'GET', '/v1/session')).status).toBe(401);
    expect((await withCookie(cookie, 'GET', '/v1/session')).status).toBe(200);
    // Nor may anyone but an admin set another user's password.
    expect((await withCookie<ErrorBody>(cookie, 'PUT', '/v1/users/admin/password', { password: 'taking over admin' }, csrf)).status).toBe(403);

    const out = await withCookie(cookie, 'DELETE', '/v1/session', undefined, csrf);
    expect(out.status).toBe(204);
    expect(out.setCookie).toMatch(/^fleet_session=; Max-Age=0; Path=\/; HttpOnly; SameSite=Strict$/);
    const after = await withCookie<ErrorBody>(cookie, 'GET', '/v1/session');
    expect(after.status).toBe(401);
    expect(after.body.error.message).toMatch(/log in again/);
    const audit = await api<{ entries: { action: string; user: string; source: string }[] }>(c, 'GET', '/v1/audit?user=wes');
    expect(audit.body.entries.map((e) => e.action)).toEqual(['session.ended', 'users.password-changed', 'session.created', 'session.created']);
  });

  it('log in with the admin token too; refuse a form post, a wrong password, and a flood of them', async () => {
    const byToken = await login({ token: c.adminToken });
    expect(byToken.status).toBe(200);
    expect(byToken.body.user).toEqual({ name: 'admin', role: 'admin' });
    const form = await fetch(`${c.httpUrl}/v1/session`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ token: c.adminToken }) });
    expect(form.status).toBe(400);
    expect(form.headers.get('set-cookie')).toBeNull();
    await addUser('zoe', 'viewer', 'zoe the viewer!');
    for (let i = 0; i < 4; i++) {
      const wrong = await login({ username: 'zoe', password: `guess ${i}` });
      expect(wrong.status).toBe(401);
      expect(wrong.body.error.message).toBe('wrong user name or password');
    }
    const throttled = await login({ username: 'zoe', password: 'zoe the viewer!' });
    expect(throttled.status).toBe(429);
    expect(throttled.body.error.code).toBe('throttled');
    expect(Number(throttled.retryAfter)).toBeGreaterThan(0);
    expect(c.counter('admin.login.failed')).toBe(4);
    expect(c.counter('admin.login.throttled')).toBe(1);
  });
});

describe('over HTTPS', () => {
  it('the session cookie is Secure', async () => {
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const tls = await startCoordinator(join(dir, 'tls-data'), { config: { http: { port: 0, host: '127.0.0.1', tlsCert: cert, tlsKey: key } } });
    try {
      const url = new URL(`${tls.httpUrl}/v1/session`);
      const setCookie = await new Promise<string>((resolve, reject) => {
        const body = JSON.stringify({ token: tls.adminToken });
        const req = request(
          { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', ca: readFileSync(cert), headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
          (res) => {
            res.resume();
            resolve(String(res.headers['set-cookie']?.[0] ?? ''));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
      expect(setCookie).toMatch(/^fleet_session=[\w-]{43}; Max-Age=\d+; Path=\/; HttpOnly; Secure; SameSite=Strict$/);
    } finally {
      await tls.stop();
    }
  });
});
