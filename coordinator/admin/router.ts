/**
 * A tiny HTTP router for the admin API. Route modules export `registerXRoutes(router, deps)` and add
 * routes with `router.get/post/put/delete(pattern, spec, handler)`. The router authenticates the
 * caller (access.ts), checks the route's role, parses JSON bodies and query strings with zod, runs the
 * handler as that user for the audit log, and turns errors into `{error: {code, message}}` with a
 * matching HTTP status. I/O shell (node:http).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { ValidationError, type FleetError } from '../../protocol/errors.js';
import { formatIssues } from '../../protocol/parse.js';
import { auditContext } from '../store/audit-context.js';
import { authorize, tokenAuthenticator, type Authenticator } from '../users/access.js';
import type { Principal, Role } from '../users/roles.js';
import { HttpError, NotFoundError, statusOf } from './http-errors.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

export { HttpError, NotFoundError, ConflictError } from './http-errors.js';

export interface RequestContext<B, Q> {
  params: Record<string, string>;
  query: Q;
  body: B;
  req: IncomingMessage;
  res: ServerResponse;
  /** Who made the request: the user's name (the built-in admin is `admin`), for the audit log. */
  actor: string;
  /** The authenticated caller; `undefined` only on public routes. */
  principal: Principal | undefined;
  /** The request's remote address. */
  source: string;
}

export interface RouteSpec<B extends z.ZodType | undefined, Q extends z.ZodType | undefined> {
  body?: B;
  query?: Q;
  /** Default true. Public routes (health, login) set false. */
  auth?: boolean;
  /** The role needed. Default: viewer for GET, admin for anything else. */
  role?: Role;
}

type Infer<S> = S extends z.ZodType ? z.infer<S> : undefined;

/**
 * What a handler returns: a JSON value (status 200), `{status, body}` for another status, or
 * `undefined` when the handler wrote the response itself (streams, long polls).
 */
export type HandlerResult = unknown;

interface Route {
  method: HttpMethod;
  parts: string[];
  spec: RouteSpec<z.ZodType | undefined, z.ZodType | undefined>;
  handler: (ctx: RequestContext<unknown, unknown>) => unknown;
}

export interface RouterOptions {
  /** Who is calling (users, sessions, the admin token). */
  authenticator?: Authenticator;
  /** Without an authenticator: the one token accepted, as the built-in admin. */
  token?: string;
  /** Largest accepted JSON body in bytes. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Called for unexpected (non-FleetError) errors, e.g. to log them. */
  onError?: (err: unknown, req: IncomingMessage) => void;
}

interface Reply {
  __reply: true;
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** A JSON reply with a status other than 200, or with headers (Set-Cookie). */
export function reply(status: number, body: unknown, headers?: Record<string, string>): Reply {
  return { __reply: true, status, body, ...(headers ? { headers } : {}) };
}

function isReply(v: unknown): v is Reply {
  return typeof v === 'object' && v !== null && (v as { __reply?: unknown }).__reply === true;
}

export class Router {
  private readonly routes: Route[] = [];
  private readonly authenticator: Authenticator;
  private readonly maxBodyBytes: number;
  private readonly onError: ((err: unknown, req: IncomingMessage) => void) | undefined;

  constructor(options: RouterOptions) {
    if (!options.authenticator && options.token === undefined) throw new TypeError('Router needs an authenticator or a token');
    this.authenticator = options.authenticator ?? tokenAuthenticator(options.token!);
    this.maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
    this.onError = options.onError;
  }

  add<B extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined>(
    method: HttpMethod,
    pattern: string,
    spec: RouteSpec<B, Q>,
    handler: (ctx: RequestContext<Infer<B>, Infer<Q>>) => unknown,
  ): void {
    this.routes.push({
      method,
      parts: pattern.split('/').filter(Boolean),
      spec,
      handler: handler as Route['handler'],
    });
  }

  get<Q extends z.ZodType | undefined = undefined>(
    pattern: string,
    spec: RouteSpec<undefined, Q>,
    handler: (ctx: RequestContext<undefined, Infer<Q>>) => unknown,
  ): void {
    this.add('GET', pattern, spec, handler);
  }

  post<B extends z.ZodType | undefined = undefined>(
    pattern: string,
    spec: RouteSpec<B, undefined>,
    handler: (ctx: RequestContext<Infer<B>, undefined>) => unknown,
  ): void {
    this.add('POST', pattern, spec, handler);
  }

  put<B extends z.ZodType | undefined = undefined>(
    pattern: string,
    spec: RouteSpec<B, undefined>,
    handler: (ctx: RequestContext<Infer<B>, undefined>) => unknown,
  ): void {
    this.add('PUT', pattern, spec, handler);
  }

  delete<Q extends z.ZodType | undefined = undefined>(
    pattern: string,
    spec: RouteSpec<undefined, Q>,
    handler: (ctx: RequestContext<undefined, Infer<Q>>) => unknown,
  ): void {
    this.add('DELETE', pattern, spec, handler);
  }

  /** Node http request listener. Never throws. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.dispatch(req, res).catch((err: unknown) => this.sendError(res, err, req));
  };

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = requestUrl(req);
    const segments = url.pathname.split('/').filter(Boolean).map(decodeSegment);
    let pathMatched = false;
    for (const route of this.routes) {
      const params = matchParts(route.parts, segments);
      if (!params) continue;
      pathMatched = true;
      if (route.method !== req.method) continue;
      const source = remoteAddress(req);
      let principal: Principal | undefined;
      if (route.spec.auth !== false) {
        principal = this.authenticator.authenticate({ method: req.method, headers: req.headers, source });
        authorize(principal, route.spec.role ?? (route.method === 'GET' ? 'viewer' : 'admin'), `${route.method} /${route.parts.join('/')}`);
      }
      const query = route.spec.query
        ? parseWith(route.spec.query, Object.fromEntries(url.searchParams), 'query string')
        : undefined;
      const body = route.spec.body ? parseWith(route.spec.body, await readJson(req, this.maxBodyBytes), 'request body') : undefined;
      const ctx = { params, query, body, req, res, actor: principal?.name ?? 'anonymous', principal, source };
      const run = (): unknown => route.handler(ctx);
      const result: unknown = await (principal ? auditContext.run({ user: principal.name, role: principal.role, source }, run) : run());
      if (res.headersSent || res.writableEnded) return;
      if (isReply(result)) sendJson(res, result.status, result.body, result.headers);
      else if (result === undefined) sendJson(res, 204, undefined);
      else sendJson(res, 200, result);
      return;
    }
    if (pathMatched) throw new HttpError(405, 'method-not-allowed', `${req.method ?? '?'} is not allowed on ${url.pathname}`);
    throw new NotFoundError(`no admin API route ${req.method ?? '?'} ${url.pathname}; see the admin API reference in README.md`);
  }

  private sendError(res: ServerResponse, err: unknown, req: IncomingMessage): void {
    const status = statusOf(err);
    if (status === undefined) this.onError?.(err, req);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (status === undefined) {
      sendJson(res, 500, { error: { code: 'internal', message: 'internal error; see the coordinator log' } });
      return;
    }
    const e = err as FleetError;
    sendJson(res, status, { error: { code: e.code, message: e.message } }, err instanceof HttpError ? err.headers : {});
  }
}

/** The request's remote address (IPv4-mapped IPv6 written as IPv4). */
export function remoteAddress(req: IncomingMessage): string {
  return (req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
}

/** The request's URL; a request target that is not a URL path is the client's mistake (400). */
export function requestUrl(req: IncomingMessage): URL {
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    throw new HttpError(400, 'bad-url', `request target ${JSON.stringify((req.url ?? '').slice(0, 200))} is not a valid URL path`);
  }
}

/**
 * A path segment with its percent-escapes decoded. A malformed escape (`%zz`, `%E0%A4`, a lone `%`)
 * is the client's mistake: 400 naming the segment, never a 500.
 */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'bad-url', `path segment ${JSON.stringify(segment.slice(0, 200))} has a malformed percent-escape; encode "%" as %25`);
  }
}

function matchParts(pattern: readonly string[], segments: readonly string[]): Record<string, string> | null {
  if (pattern.length !== segments.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const s = segments[i]!;
    if (p.startsWith(':')) params[p.slice(1)] = s;
    else if (p !== s) return null;
  }
  return params;
}

function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ValidationError(what, formatIssues(r.error));
  return r.data;
}

async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > max) throw new HttpError(413, 'too-large', `request body is over ${max} bytes`);
    chunks.push(buf);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (err) {
    throw new ValidationError('request body', [`not JSON: ${(err as Error).message}`]);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
