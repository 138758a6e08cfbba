/**
 * The admin API's HTTP framework: Fastify with the zod type provider, so each route's zod schemas
 * (body, query string, path, response) both validate requests and describe them in the OpenAPI
 * document at `GET /v1/openapi.json`. Around the routes, one place decides:
 *   - who is calling (users/access.ts) and whether their role allows the route — route config
 *     `role` (default viewer for GET, admin for anything else) or `public: true`;
 *   - that a handler runs as that user for the audit log (store/audit-context.ts);
 *   - how every error reads: `{error: {code, message}}` with the status of its code (http-errors.ts),
 *     bodies parsed as JSON whatever their content type (an empty one is `{}`), 413 past the body
 *     limit, 400 `bad-url` for a malformed percent-escape, 404 and 405 for unknown routes.
 * Routes mount with `api.get/post/put/delete(url, {schema, config}, handler)`; raw Node handlers
 * (event streams, the console's files, Prometheus text) with {@link mountRaw}. Artifact downloads
 * never reach Fastify (http-server.ts serves them first).
 * I/O shell (Fastify).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type RawServerDefault, type RouteOptions } from 'fastify';
import { hasZodFastifySchemaValidationErrors, jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { FleetError, ValidationError } from '@fleet/protocol/errors';
import { auditContext } from '../store/audit-context.js';
import { authorize, CSRF_HEADER, SESSION_COOKIE, type Authenticator } from '../users/access.js';
import type { Principal, Role } from '../users/roles.js';
import { HttpError, NotFoundError, statusOf } from './http-errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The role a caller needs. Default: viewer for GET, admin for anything else. */
    role?: Role;
    /** Served without credentials (health, login, the OpenAPI document, the console's files). */
    public?: boolean;
  }
  interface FastifyRequest {
    /** The authenticated caller; undefined on public routes. */
    principal: Principal | undefined;
  }
  interface FastifyInstance {
    /** Reports an unexpected error (the options' onError), for handlers that answer themselves. */
    reportError(err: unknown, req: IncomingMessage): void;
  }
}

export type AdminApi = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, ZodTypeProvider>;

export interface AdminApiOptions {
  authenticator: Authenticator;
  /** Largest JSON body in bytes. Default 1 MiB. */
  maxBodyBytes?: number;
  /** The coordinator's version, for the OpenAPI document. */
  version?: string;
  /** Called with unexpected (non-Fleet) errors, e.g. to log them; the caller gets a 500. */
  onError?: (err: unknown, req: IncomingMessage) => void;
  /** Called with the pattern of the route a request matched, before authentication (request metrics label by it). */
  onMatch?: (req: IncomingMessage, pattern: string) => void;
}

const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** The request's remote address (IPv4-mapped IPv6 written as IPv4). */
export function sourceOf(req: IncomingMessage): string {
  return (req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
}

/** The authenticated caller's name, for the audit log (`anonymous` on a public route). */
export function actorOf(request: FastifyRequest): string {
  return request.principal?.name ?? 'anonymous';
}

/** Builds the admin API (no listener: HttpServer serves it through `api.routing`). */
export async function createAdminApi(o: AdminApiOptions): Promise<AdminApi> {
  const maxBodyBytes = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const api: AdminApi = Fastify({
    logger: false,
    bodyLimit: maxBodyBytes,
    // Devices' ids and deployment ids travel in paths; find-my-way's default cap is 100 characters.
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 1000, querystringParser: (s) => Object.fromEntries(new URLSearchParams(s)) },
    frameworkErrors: (err, request, reply) => {
      sendError(reply, err.code === 'FST_ERR_BAD_URL' ? badUrl(request.raw.url ?? '') : new HttpError(400, 'bad-url', err.message));
    },
  }).withTypeProvider<ZodTypeProvider>();
  api.setValidatorCompiler(validatorCompiler);
  api.setSerializerCompiler(serializerCompiler);
  api.decorateRequest('principal', undefined);
  api.decorate('reportError', (err: unknown, req: IncomingMessage) => o.onError?.(err, req));

  const routes: { method: string; parts: string[] }[] = [];
  api.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, parts: route.url.split('/').filter(Boolean) });
    describeForOpenApi(route);
    runAsCaller(route);
  });

  // Before the body is read: a caller without the right credentials never gets a body parsed.
  api.addHook('onRequest', async (request) => {
    if (!request.is404 && request.routeOptions.url !== undefined) o.onMatch?.(request.raw, request.routeOptions.url);
    if (request.is404 || request.routeOptions.config.public) return;
    const principal = await o.authenticator.authenticate({ method: request.method, headers: request.headers, source: sourceOf(request.raw) });
    const safe = request.method === 'GET' || request.method === 'HEAD';
    authorize(principal, request.routeOptions.config.role ?? (safe ? 'viewer' : 'admin'), `${request.method} ${request.routeOptions.url ?? request.url}`);
    request.principal = principal;
  });

  // Bodies are JSON whatever their declared type (the CLI and curl users send all sorts); routes that
  // take a stream (firmware upload) replace this parser in their own scope.
  api.removeAllContentTypeParsers();
  api.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(new ValidationError('request body', [`not JSON: ${(err as Error).message}`]));
    }
  });
  // A POST without a body at all is an empty object, as an empty JSON body is.
  api.addHook('preValidation', (request, _reply, done) => {
    if (request.body === undefined && request.routeOptions.schema?.body !== undefined) request.body = {};
    done();
  });

  api.setErrorHandler((err: FastifyError, request, reply) => {
    const known = describeError(err, maxBodyBytes);
    if (!known) api.reportError(err, request.raw);
    sendError(reply, known ?? new HttpError(500, 'internal', 'internal error; see the coordinator log'));
  });

  api.setNotFoundHandler((request, reply) => {
    const path = new URL(request.url, 'http://localhost').pathname;
    const segments = path.split('/').filter(Boolean);
    const other = routes.some((r) => r.method !== request.method && r.method !== 'HEAD' && matches(r.parts, segments));
    sendError(
      reply,
      other
        ? new HttpError(405, 'method-not-allowed', `${request.method} is not allowed on ${path}`)
        : new NotFoundError(`no admin API route ${request.method} ${path}; see GET /v1/openapi.json or the admin API reference in README.md`),
    );
  });

  await api.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'fleet coordinator admin API',
        version: o.version ?? '0.0.0',
        description: 'Every route but the public ones needs a user: a bearer token, or the console session cookie plus x-csrf-token on changes.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: "a user's API token (fleet users token <name>) or the coordinator's admin token" },
          session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE, description: `POST /v1/session sets it; send ${CSRF_HEADER} with every non-GET request` },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
    },
    transform: jsonSchemaTransform,
  });
  api.get('/v1/openapi.json', { config: { public: true }, schema: { hide: true } }, () => api.swagger());
  return api;
}

/** A handler that answers with Node's own objects: an event stream, static files, Prometheus text. */
export type RawHandler = (req: IncomingMessage, res: ServerResponse, principal: Principal | undefined) => void | Promise<void>;

export interface RawRoute {
  method: 'GET' | 'HEAD' | 'POST';
  /** A Fastify path: `/v1/events`, `/assets/*`. */
  url: string;
  /** The role needed (default as for any route), or `public: true`. */
  config?: { role?: Role; public?: boolean };
  /** One line for the OpenAPI document. */
  summary: string;
  /** Left out of the OpenAPI document (the console's files: not part of the API). */
  hide?: boolean;
}

/**
 * Mounts a raw handler: authentication, the role check and the audit context run as for any route,
 * then the handler owns the response (`reply.hijack()`: Fastify neither serializes nor ends it). A
 * handler that throws before answering gets the usual JSON error; after, the connection is closed.
 */
export function mountRaw(api: AdminApi, route: RawRoute, handler: RawHandler): void {
  api.route({
    method: route.method,
    url: route.url,
    config: route.config ?? {},
    schema: { summary: route.summary, ...(route.hide ? { hide: true } : {}) },
    handler: async (request, reply) => {
      reply.hijack();
      const res = reply.raw;
      try {
        await handler(request.raw, res, request.principal);
      } catch (err) {
        const known = err instanceof FleetError ? err : undefined;
        if (!known) api.reportError(err, request.raw);
        if (res.headersSent) return void res.destroy();
        const status = (known && statusOf(known)) ?? 500;
        const body = JSON.stringify({ error: known ? { code: known.code, message: known.message } : { code: 'internal', message: 'internal error; see the coordinator log' } });
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body);
      }
    },
  });
}

/** Tags, the role needed and public routes' empty security, from each route's own config. */
function describeForOpenApi(route: RouteOptions): void {
  const schema = (route.schema ?? {}) as Record<string, unknown>;
  const config = (route.config ?? {}) as { role?: Role; public?: boolean };
  const section = route.url.split('/').filter(Boolean)[1] ?? 'console';
  const safe = [route.method].flat().every((m) => m === 'GET' || m === 'HEAD');
  const described: Record<string, unknown> = { ...schema, tags: schema['tags'] ?? [section.replace(/-message$/, '')] };
  if (config.public) described['security'] = [];
  else described['description'] = [schema['description'], `Needs the ${config.role ?? (safe ? 'viewer' : 'admin')} role.`].filter(Boolean).join(' ');
  route.schema = described;
}

/** Runs the handler inside the audit context of its caller, so audit entries name them. */
function runAsCaller(route: RouteOptions): void {
  const handler = route.handler;
  route.handler = function (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
    const p = request.principal;
    if (!p) return handler.call(this, request, reply);
    return auditContext.run({ user: p.name, role: p.role, source: sourceOf(request.raw) }, () => handler.call(this, request, reply));
  };
}

function matches(pattern: readonly string[], segments: readonly string[]): boolean {
  return pattern.length === segments.length && pattern.every((p, i) => p.startsWith(':') || p === '*' || p === segments[i]);
}

/** The first path segment that cannot be decoded: 400 naming it, never a 500. */
function badUrl(rawUrl: string): HttpError {
  const path = rawUrl.split('?')[0] ?? '';
  const segment = path.split('/').find((s) => {
    try {
      decodeURIComponent(s);
      return false;
    } catch {
      return true;
    }
  });
  return new HttpError(400, 'bad-url', `path segment ${JSON.stringify((segment ?? path).slice(0, 200))} has a malformed percent-escape; encode "%" as %25`);
}

const WHAT: Readonly<Record<string, string>> = { body: 'request body', querystring: 'query string', params: 'path', headers: 'headers' };

/** A FleetError for everything the client got wrong; undefined for our own failures (500). */
function describeError(err: FastifyError, maxBodyBytes: number): FleetError | undefined {
  if (hasZodFastifySchemaValidationErrors(err)) {
    const issues = err.validation.map((v) => `${v.instancePath.split('/').filter(Boolean).join('.') || '(root)'}: ${v.message}`);
    return new ValidationError(WHAT[err.validationContext ?? 'body'] ?? 'request', issues);
  }
  if (err instanceof FleetError) return err;
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new HttpError(413, 'too-large', `request body is over ${maxBodyBytes} bytes`);
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) return new HttpError(status, 'bad-request', err.message);
  return undefined;
}

function sendError(reply: FastifyReply, err: FleetError): void {
  const status = statusOf(err) ?? 500;
  if (err instanceof HttpError) void reply.headers(err.headers);
  void reply.code(status).type('application/json; charset=utf-8').send({ error: { code: err.code, message: err.message } });
}
