/**
 * A tiny HTTP router for the admin API. Route modules export `registerXRoutes(router, deps)` and add
 * routes with `router.get/post/put/delete(pattern, spec, handler)`. The router authenticates the
 * operator bearer token, parses JSON bodies and query strings with zod, and turns errors into
 * `{error: {code, message}}` with a matching HTTP status. I/O shell (node:http).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { z } from 'zod';
import { FleetError, ValidationError, errorMessage } from '../../protocol/errors.js';
import { formatIssues } from '../../protocol/parse.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** An error with an HTTP status; route handlers throw these (or any FleetError). */
export class HttpError extends FleetError {
  readonly status: number;

  constructor(status: number, code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = status;
  }
}

export class NotFoundError extends HttpError {
  constructor(message: string) {
    super(404, 'not-found', message);
  }
}

/** Maps FleetError codes that are not HttpErrors to statuses. */
const STATUS_BY_CODE: Record<string, number> = {
  'invalid-input': 400,
  'unsupported-version': 400,
  'invalid-topic': 400,
  'not-found': 404,
  conflict: 409,
  'no-eligible-devices': 409,
  'artifact-exists': 409,
  'artifact-damaged': 409,
  'credentials-exist': 409,
  'invalid-action': 409,
  'already-paused': 409,
  'not-paused': 409,
  paused: 409,
  'nothing-to-approve': 409,
  stopped: 503,
  'broker-accounts': 502,
  'broker-unreachable': 503,
  'invalid-transition': 409,
  unauthorized: 401,
  forbidden: 403,
};

export interface RequestContext<B, Q> {
  params: Record<string, string>;
  query: Q;
  body: B;
  req: IncomingMessage;
  res: ServerResponse;
  /** Who made the request, for the audit log (`operator` for a token holder). */
  actor: string;
}

export interface RouteSpec<B extends z.ZodType | undefined, Q extends z.ZodType | undefined> {
  body?: B;
  query?: Q;
  /** Default true. Public routes (health) set false. */
  auth?: boolean;
}

type Infer<S> = S extends z.ZodType ? z.infer<S> : undefined;

/**
 * What a handler returns: a JSON value (status 200), `{status, body}` for another status, or
 * `undefined` when the handler wrote the response itself (streams, long polls).
 */
type HandlerResult = unknown;

interface Route {
  method: HttpMethod;
  pattern: string;
  parts: string[];
  spec: RouteSpec<z.ZodType | undefined, z.ZodType | undefined>;
  handler: (ctx: RequestContext<unknown, unknown>) => HandlerResult;
}

export interface RouterOptions {
  /** The operator bearer token; requests without it get 401. */
  token: string;
  /** Largest accepted JSON body in bytes. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Called for unexpected (non-FleetError) errors, e.g. to log them. */
  onError?: (err: unknown, req: IncomingMessage) => void;
  /** Called with the pattern of the route a request matched (request metrics label by it). */
  onMatch?: (req: IncomingMessage, pattern: string) => void;
}

/** A JSON reply with a status other than 200. */
export function reply(status: number, body: unknown): { __reply: true; status: number; body: unknown } {
  return { __reply: true, status, body };
}

function isReply(v: unknown): v is { __reply: true; status: number; body: unknown } {
  return typeof v === 'object' && v !== null && (v as { __reply?: unknown }).__reply === true;
}

export class Router {
  private readonly routes: Route[] = [];
  private readonly tokenDigest: Buffer;
  private readonly maxBodyBytes: number;
  private readonly onError: ((err: unknown, req: IncomingMessage) => void) | undefined;
  private readonly onMatch: ((req: IncomingMessage, pattern: string) => void) | undefined;

  constructor(options: RouterOptions) {
    this.tokenDigest = createHash('sha256').update(options.token).digest();
    this.maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
    this.onError = options.onError;
    this.onMatch = options.onMatch;
  }

  add<B extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined>(
    method: HttpMethod,
    pattern: string,
    spec: RouteSpec<B, Q>,
    handler: (ctx: RequestContext<Infer<B>, Infer<Q>>) => unknown,
  ): void {
    this.routes.push({
      method,
      pattern,
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
    handler: (ctx: RequestContext<undefined, Infer<Q>>) => HandlerResult,
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
      this.onMatch?.(req, route.pattern);
      if (route.spec.auth !== false) this.authenticate(req);
      const query = route.spec.query
        ? parseWith(route.spec.query, Object.fromEntries(url.searchParams), 'query string')
        : undefined;
      const body = route.spec.body ? parseWith(route.spec.body, await readJson(req, this.maxBodyBytes), 'request body') : undefined;
      const result = await route.handler({ params, query, body, req, res, actor: 'operator' });
      if (res.headersSent || res.writableEnded) return;
      if (isReply(result)) sendJson(res, result.status, result.body);
      else if (result === undefined) sendJson(res, 204, undefined);
      else sendJson(res, 200, result);
      return;
    }
    if (pathMatched) throw new HttpError(405, 'method-not-allowed', `${req.method ?? '?'} is not allowed on ${url.pathname}`);
    throw new NotFoundError(`no admin API route ${req.method ?? '?'} ${url.pathname}; see the admin API reference in README.md`);
  }

  private authenticate(req: IncomingMessage): void {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m) {
      throw new HttpError(401, 'unauthorized', 'missing operator token: pass --token, set FLEET_TOKEN, or run the CLI on the coordinator machine');
    }
    const given = createHash('sha256').update(m[1]!.trim()).digest();
    if (!timingSafeEqual(given, this.tokenDigest)) {
      throw new HttpError(401, 'unauthorized', 'operator token rejected: check FLEET_TOKEN against the coordinator\'s admin token');
    }
  }

  private sendError(res: ServerResponse, err: unknown, req: IncomingMessage): void {
    let status = 500;
    let code = 'internal';
    let message = 'internal error; see the coordinator log';
    if (err instanceof HttpError) {
      status = err.status;
      code = err.code;
      message = err.message;
    } else if (err instanceof FleetError) {
      status = STATUS_BY_CODE[err.code] ?? 400;
      code = err.code;
      message = err.message;
    } else {
      this.onError?.(err, req);
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendJson(res, status, { error: { code, message } });
  }
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
    throw new ValidationError('request body', [`not JSON: ${errorMessage(err)}`]);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
