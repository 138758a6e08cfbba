/**
 * The admin API's framework on its own (Fastify on 127.0.0.1, no coordinator): raw handlers mounted
 * with mountRaw — an event stream, public files — get the same authentication, role check and audit
 * context as any route, then own the response; handler errors keep the API's error shape.
 */
import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAdminApi, mountRaw, type AdminApi } from '../../coordinator/admin/admin-api.js';
import { UnauthorizedError } from '../../coordinator/admin/http-errors.js';
import { auditContext } from '../../coordinator/store/audit-context.js';
import type { Authenticator } from '../../coordinator/users/access.js';
import type { Principal } from '../../coordinator/users/roles.js';

/** Tokens named after their holder's role. */
const authenticator: Authenticator = {
  authenticate({ headers }) {
    const role = /^Bearer (viewer|operator|admin)$/.exec(headers.authorization ?? '')?.[1] as Principal['role'] | undefined;
    if (!role) return Promise.reject(new UnauthorizedError('missing operator token: pass --token, set FLEET_TOKEN'));
    return Promise.resolve({ name: `${role}-user`, role, via: 'token' });
  },
};

let api: AdminApi;
let base: string;
const errors: unknown[] = [];

beforeEach(async () => {
  errors.length = 0;
  api = await createAdminApi({ authenticator, onError: (err) => errors.push(err) });
  mountRaw(api, { method: 'GET', url: '/v1/stream', config: { role: 'operator' }, summary: 'a test stream' }, (_req, res, principal) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`event: hello\ndata: ${JSON.stringify({ to: principal?.name, as: auditContext.getStore()?.user })}\n\n`);
    res.end();
  });
  mountRaw(api, { method: 'GET', url: '/assets/*', config: { public: true }, summary: 'files' }, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`file ${req.url}`);
  });
  mountRaw(api, { method: 'GET', url: '/v1/broken', summary: 'throws' }, () => {
    throw new Error('boom');
  });
  base = await api.listen({ port: 0, host: '127.0.0.1' });
});

afterEach(async () => {
  await api.close();
});

function get(path: string, token?: string): Promise<{ status: number; type: string; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('mountRaw', () => {
  it('authenticates and checks the role before the handler owns the response, which runs as the caller', async () => {
    const ok = await get('/v1/stream', 'operator');
    expect(ok).toEqual({ status: 200, type: 'text/event-stream', body: 'event: hello\ndata: {"to":"operator-user","as":"operator-user"}\n\n' });
    const viewer = await get('/v1/stream', 'viewer');
    expect(viewer.status).toBe(403);
    expect(JSON.parse(viewer.body)).toEqual({ error: { code: 'forbidden', message: 'GET /v1/stream needs the operator role; you are viewer-user (viewer)' } });
    const none = await get('/v1/stream');
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body)).toMatchObject({ error: { code: 'unauthorized' } });
  });

  it('serves public raw routes without credentials, wildcards included', async () => {
    expect(await get('/assets/app.js')).toEqual({ status: 200, type: 'text/plain', body: 'file /assets/app.js' });
  });

  it('answers a handler that throws with the API error shape and reports the error', async () => {
    const res = await get('/v1/broken', 'viewer');
    expect(res.status).toBe(500);
    expect(JSON.parse(res.body)).toEqual({ error: { code: 'internal', message: 'internal error; see the coordinator log' } });
    expect(errors).toHaveLength(1);
  });

  it('lists raw routes in the OpenAPI document', async () => {
    const doc = JSON.parse((await get('/v1/openapi.json')).body) as { paths: Record<string, Record<string, { summary?: string }>> };
    expect(doc.paths['/v1/stream']?.['get']?.summary).toBe('a test stream');
  });
});
