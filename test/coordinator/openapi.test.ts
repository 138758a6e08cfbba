/**
 * The OpenAPI document a real coordinator serves at /v1/openapi.json: it parses, lists every route of
 * the admin API (and each listed route is one the coordinator answers), says which need no
 * credentials, and its request and response schemas are the zod schemas the routes validate with.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { COORDINATOR_VERSION, type Coordinator } from '../../coordinator/coordinator.js';
import { DeploymentRequestSchema } from '../../coordinator/engine/types.js';
import { RoleSchema } from '../../coordinator/users/roles.js';
import { MIN_PASSWORD_LENGTH, NewUserSchema, SessionViewSchema } from '../../coordinator/users/user-schemas.js';
import { startCoordinator, tempDir } from './helpers.js';

/** Every route of the admin API: method and OpenAPI path. Add a route, add it here (and to the README). */
const ROUTES = [
  'GET /v1/health',
  'GET /v1/info',
  'GET /v1/metrics',
  'GET /v1/audit',
  'GET /v1/cluster',
  'GET /v1/devices',
  'GET /v1/devices/{id}',
  'GET /v1/anomalies',
  'POST /v1/devices/provision',
  'DELETE /v1/devices/{id}/credentials',
  'GET /v1/firmware',
  'POST /v1/firmware',
  'GET /v1/firmware/{version}',
  'GET /v1/deployments',
  'POST /v1/deployments',
  'GET /v1/deployments/{id}',
  'POST /v1/deployments/{id}/actions',
  'GET /v1/deployments/{id}/decisions',
  'GET /v1/deployments/{id}/devices',
  'GET /v1/deployments/{id}/decisions/{decisionId}/snapshot',
  'POST /v1/session',
  'GET /v1/session',
  'DELETE /v1/session',
  'GET /v1/users',
  'POST /v1/users',
  'DELETE /v1/users/{name}',
  'POST /v1/users/{name}/token',
  'PUT /v1/users/{name}/password',
  'GET /v1/flags',
  'GET /v1/flags-message',
  'GET /v1/flags/{name}',
  'PUT /v1/flags/{name}',
  'DELETE /v1/flags/{name}',
  'POST /v1/flags/{name}/kill',
  'GET /v1/flags/{name}/history',
  'GET /v1/flags/{name}/evaluate',
  'GET /v1/webhooks',
  'POST /v1/webhooks',
  'GET /v1/webhooks/{id}',
  'DELETE /v1/webhooks/{id}',
  'POST /v1/webhooks/{id}/test',
  'GET /v1/webhooks/{id}/deliveries',
  'GET /v1/events',
  'GET /v1/fleet/summary',
  'GET /v1/devices/{id}/telemetry',
  'GET /v1/deployments/{id}/decisions/{decisionId}/cohorts',
  'GET /metrics',
];

interface Operation {
  security?: unknown[];
  description?: string;
  parameters?: { name: string; in: string; required: boolean; schema: Record<string, unknown> }[];
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, { content?: Record<string, { schema: JsonSchema }> }>;
}
type JsonSchema = { type?: string; properties?: Record<string, JsonSchema>; required?: string[]; enum?: string[]; minLength?: number; anyOf?: JsonSchema[]; oneOf?: JsonSchema[] };
type Doc = { openapi: string; info: { version: string }; paths: Record<string, Record<string, Operation>>; components: { securitySchemes: Record<string, unknown> } };

let c: Coordinator;
let cleanup: () => void;
let doc: Doc;

beforeAll(async () => {
  let dir: string;
  ({ dir, cleanup } = tempDir());
  c = await startCoordinator(join(dir, 'data'));
  const res = await fetch(`${c.httpUrl}/v1/openapi.json`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  doc = JSON.parse(await res.text()) as Doc;
});

afterAll(async () => {
  await c.stop();
  cleanup();
});

const op = (method: string, path: string): Operation => {
  const o = doc.paths[path]?.[method];
  if (!o) throw new Error(`the document has no ${method.toUpperCase()} ${path}`);
  return o;
};

describe('GET /v1/openapi.json', () => {
  it('is an OpenAPI 3 document, served without credentials, listing every route and nothing else', () => {
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.version).toBe(COORDINATOR_VERSION);
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(listed.sort()).toEqual([...ROUTES].sort());
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['bearer', 'session']);
  });

  it('every listed route is one the coordinator routes (never its 404 or 405)', async () => {
    for (const route of ROUTES) {
      const [method, path] = route.split(' ') as [string, string];
      const concrete = path.replace(/\{[^}]+\}/g, 'nothing-here');
      // Routes answer, or say what is missing from the request — all after routing.
      const res = await fetch(`${c.httpUrl}${concrete}`, {
        method,
        headers: { authorization: `Bearer ${c.adminToken}`, 'content-type': 'application/json' },
        ...(method === 'GET' || method === 'DELETE' ? {} : { body: '{}' }),
      });
      // The event stream never ends: its answering is enough.
      if (res.headers.get('content-type')?.startsWith('text/event-stream')) await res.body?.cancel();
      const text = res.bodyUsed ? '' : await res.text();
      expect(res.status, route).not.toBe(405);
      if (res.status === 404) expect(text, route).not.toMatch(/no admin API route/);
    }
  });

  it('marks public routes and names the role each other route needs', () => {
    expect(op('get', '/v1/health').security).toEqual([]);
    expect(op('post', '/v1/session').security).toEqual([]);
    expect(op('get', '/v1/devices').security).toBeUndefined();
    expect(op('get', '/v1/devices').description).toBe('Needs the viewer role.');
    expect(op('post', '/v1/deployments/{id}/actions').description).toBe('Needs the operator role.');
    expect(op('post', '/v1/users').description).toBe('Needs the admin role.');
    expect(op('put', '/v1/flags/{name}').description).toBe('Needs the admin role.');
    expect(op('post', '/v1/webhooks').description).toBe('Needs the admin role.');
    expect(op('get', '/metrics').description).toBe('Needs the viewer role.');
  });

  it('takes its request and response schemas from the zod schemas the routes validate with', () => {
    const addUser = op('post', '/v1/users');
    const body = addUser.requestBody!.content['application/json']!.schema;
    const { $schema: _, ...fromZod } = z.toJSONSchema(NewUserSchema, { io: 'input' });
    expect(body).toEqual(fromZod);
    expect(Object.keys(body.properties!).sort()).toEqual(Object.keys(NewUserSchema.shape).sort());
    expect(body.required!.sort()).toEqual(['name', 'role']);
    expect(body.properties!['role']!.enum).toEqual(RoleSchema.options);
    expect(body.properties!['password']!.minLength).toBe(MIN_PASSWORD_LENGTH);
    expect(Object.keys(addUser.responses['201']!.content!['application/json']!.schema.properties!).sort()).toEqual(['token', 'user']);

    const session = op('get', '/v1/session').responses['200']!.content!['application/json']!.schema;
    expect(Object.keys(session.properties!).sort()).toEqual(Object.keys(SessionViewSchema.shape).sort());

    const create = op('post', '/v1/deployments').requestBody!.content['application/json']!.schema;
    expect(Object.keys(create.properties!).sort()).toEqual(Object.keys(DeploymentRequestSchema.shape).sort());
    expect(create.required).toEqual(expect.arrayContaining(['firmwareVersion', 'target']));

    // A discriminated union of the seven actions.
    const action = op('post', '/v1/deployments/{id}/actions').requestBody!.content['application/json']!.schema;
    const variants = action.oneOf ?? action.anyOf ?? [];
    expect(variants.map((v) => v.properties!['type']!.enum?.[0] ?? (v.properties!['type'] as { const?: string }).const).sort()).toEqual(
      ['abort', 'approve', 'pause', 'promote', 'resume', 'rollback', 'start'],
    );

    // Query strings and path parameters become parameters.
    const devices = op('get', '/v1/devices').parameters!;
    expect(devices.map((p) => `${p.in}:${p.name}`).sort()).toEqual(['query:limit', 'query:model', 'query:offset', 'query:online', 'query:tag', 'query:version']);
    expect(op('get', '/v1/devices/{id}').parameters).toEqual([expect.objectContaining({ in: 'path', name: 'id', required: true })]);
    expect(op('post', '/v1/firmware').parameters!.filter((p) => p.required).map((p) => p.name).sort()).toEqual(['hardware', 'version']);
  });
});
