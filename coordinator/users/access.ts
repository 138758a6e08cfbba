/**
 * Who is calling the admin API, and may they. Credentials are a bearer token (a user's API token, or
 * the coordinator's admin token: the built-in `admin`) or the web login's session cookie; a request
 * with the cookie that changes anything must echo the session's CSRF token in `x-csrf-token` (a page
 * on another site can make the browser send the cookie, never read the token). Logins are throttled
 * per user name and per source address with the broker's backoff (login-throttle.ts). Pure apart from
 * the stores it is given.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { parse as parseCookie, serialize as serializeCookie } from 'cookie';
import { HttpError, UnauthorizedError, ForbiddenError } from '../admin/http-errors.js';
import { DEFAULT_LOGIN_THROTTLE, LoginThrottle } from '../broker/login-throttle.js';
import type { Logger } from 'pino';
import { LogLimiter } from '../log-limiter.js';
import type { Counters } from '../metrics.js';
import { definedProps } from '@fleet/firmware/defined-props';
import { roleAllows, type Principal, type Role } from './roles.js';
import type { SessionStore } from './session-store.js';
import type { Login, SessionView } from './user-schemas.js';
import type { UserStore } from './user-store.js';

export const SESSION_COOKIE = 'fleet_session';
export const CSRF_HEADER = 'x-csrf-token';

/** What authentication looks at in a request. */
export interface AccessRequest {
  method: string;
  headers: IncomingHttpHeaders;
  /** Remote address. */
  source: string;
}

/** Resolves a request's caller or rejects with 401 (no or unknown credentials) or 403 (`csrf`). */
export interface Authenticator {
  authenticate(req: AccessRequest): Promise<Principal>;
}

export const MISSING_TOKEN = 'missing operator token: pass --token, set FLEET_TOKEN, or run the CLI on the coordinator machine';
const TOKEN_REJECTED =
  "token rejected: it is neither the coordinator's admin token (FLEET_ADMIN_TOKEN, or admin.json in development) nor a user's current API token (`fleet users token <name>` issues a new one)";

/** Refuses a principal whose role does not include `need`: 403 naming both roles. */
export function authorize(p: Principal, need: Role, what: string): void {
  if (!roleAllows(p.role, need)) throw new ForbiddenError(`${what} needs the ${need} role; you are ${p.name} (${p.role})`);
}

/** The bearer token in an Authorization header, undefined when there is none; 401 for another scheme. */
function bearerOf(headers: IncomingHttpHeaders): string | undefined {
  const header = headers.authorization;
  if (header === undefined || header === '') return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(header);
  if (!m) throw new UnauthorizedError(`the Authorization header must be "Bearer <token>"; ${MISSING_TOKEN}`);
  return m[1]!.trim();
}

export interface AccessOptions {
  users: UserStore;
  sessions: SessionStore;
  now: () => number;
  /** Set the cookie's Secure attribute (served over HTTPS, or behind a TLS proxy). */
  secureCookies: boolean;
  throttle?: LoginThrottle;
  counters?: Counters;
  /** Refused logins and credentials are logged here with who and from where, once per address per 10 s. */
  logger?: Logger;
}

export class Access implements Authenticator {
  private readonly throttle: LoginThrottle;
  private readonly logLimit: LogLimiter;

  constructor(private readonly o: AccessOptions) {
    this.throttle = o.throttle ?? new LoginThrottle(DEFAULT_LOGIN_THROTTLE);
    this.logLimit = new LogLimiter(10_000, o.now);
  }

  /** Counts a refusal and logs it (rate-limited per source address and kind). */
  private refused(counter: string, fields: { source: string; user?: string }, msg: string): void {
    this.o.counters?.inc(counter);
    const held = this.logLimit.admit(`${counter} ${fields.source}`);
    if (held !== undefined) this.o.logger?.warn({ ...fields, counter, heldBack: held }, msg);
  }

  async authenticate(req: AccessRequest): Promise<Principal> {
    const token = bearerOf(req.headers);
    if (token !== undefined) {
      const user = await this.o.users.byToken(token);
      if (!user) {
        this.refused('admin.auth.refused', { source: req.source }, 'admin API request with an unknown token refused');
        throw new UnauthorizedError(TOKEN_REJECTED);
      }
      return { ...user, via: 'token' };
    }
    const id = this.sessionIdOf(req.headers);
    if (id === undefined) throw new UnauthorizedError(MISSING_TOKEN);
    const session = await this.o.sessions.lookup(id);
    const user = session && (await this.o.users.identity(session.userName));
    if (!session || !user) {
      this.o.counters?.inc('admin.auth.refused');
      throw new UnauthorizedError('your session has ended (expired, logged out, or the user was removed or changed their password): log in again');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD' && !sameSecret(req.headers[CSRF_HEADER], session.csrfToken)) {
      this.refused('admin.csrf.refused', { source: req.source, user: user.name }, 'admin API change with the session cookie but without its CSRF token refused');
      throw new HttpError(403, 'csrf', `a request made with the session cookie must carry the ${CSRF_HEADER} header that POST or GET /v1/session answered with`);
    }
    return { ...user, via: 'session', sessionHash: session.idHash, csrfToken: session.csrfToken, sessionExpiresAt: session.expiresAt };
  }

  /**
   * Checks a password or token and starts a session. Throttled per user name and source address:
   * 429 with Retry-After while blocked, before any password is checked.
   */
  async login(body: Login, source: string): Promise<{ principal: Principal; view: SessionView; setCookie: string }> {
    const key = 'username' in body ? `user:${body.username}` : `token@${source}`;
    const verdict = this.throttle.check(key, source, this.o.now());
    if (verdict.throttled) {
      this.refused('admin.login.throttled', { source, ...('username' in body ? { user: body.username } : {}) }, 'login throttled after failed attempts');
      const seconds = Math.ceil(verdict.retryInMs / 1000);
      const who = verdict.by === 'client' && 'username' in body ? `for ${body.username}` : `from ${source}`;
      throw new HttpError(429, 'throttled', `too many failed logins ${who}; retry in ${seconds} s`, { headers: { 'retry-after': String(seconds) } });
    }
    const user = 'username' in body ? await this.o.users.checkPassword(body.username, body.password, source) : await this.o.users.byToken(body.token);
    if (!user) {
      this.throttle.failed(key, source, this.o.now());
      this.refused('admin.login.failed', { source, ...('username' in body ? { user: body.username } : {}) }, 'login refused: wrong user name, password or token');
      throw new UnauthorizedError('username' in body ? 'wrong user name or password' : 'that token is not a current API token');
    }
    this.throttle.succeeded(key);
    this.o.counters?.inc('admin.login.ok');
    await this.o.users.noteLogin(user.name);
    const { id, session } = await this.o.sessions.create(user.name, source);
    const principal: Principal = { ...user, via: 'session', sessionHash: session.idHash, csrfToken: session.csrfToken, sessionExpiresAt: session.expiresAt };
    return { principal, view: sessionView(principal), setCookie: this.cookie(id, session.endsAt) };
  }

  /** Ends the caller's session (a no-op for a bearer token); returns the Set-Cookie that clears the cookie. */
  async logout(p: Principal): Promise<string> {
    if (p.sessionHash !== undefined) await this.o.sessions.revoke(p.sessionHash);
    return serializeCookie(SESSION_COOKIE, '', { httpOnly: true, sameSite: 'strict', path: '/', secure: this.o.secureCookies, maxAge: 0 });
  }

  private cookie(id: string, until: number): string {
    return serializeCookie(SESSION_COOKIE, id, {
      httpOnly: true,
      sameSite: 'strict',
      path: '/',
      secure: this.o.secureCookies,
      // A browser session cookie would outlive the server's session; Max-Age ends both together.
      maxAge: Math.max(1, Math.floor((until - this.o.now()) / 1000)),
    });
  }

  private sessionIdOf(headers: IncomingHttpHeaders): string | undefined {
    const header = headers.cookie;
    if (header === undefined) return undefined;
    const value = parseCookie(header)[SESSION_COOKIE];
    return value === undefined || value === '' ? undefined : value;
  }
}

/** What GET /v1/session answers: the caller, and for a session its CSRF token and end. */
export function sessionView(p: Principal): SessionView {
  return {
    user: { name: p.name, role: p.role },
    ...definedProps({ csrfToken: p.csrfToken, expiresAt: p.sessionExpiresAt }),
  };
}

/** Only the coordinator's admin token, as the built-in admin: for tests that mount a few routes. */
export function tokenAuthenticator(token: string): Authenticator {
  const sha256 = (v: string): Buffer => createHash('sha256').update(v).digest();
  const digest = sha256(token);
  return {
    authenticate(req) {
      // bearerOf throws for another scheme: inside the promise, as a rejection.
      return Promise.resolve().then(() => {
        const given = bearerOf(req.headers);
        if (given === undefined) throw new UnauthorizedError(MISSING_TOKEN);
        if (!timingSafeEqual(sha256(given), digest)) throw new UnauthorizedError(TOKEN_REJECTED);
        return { name: 'admin', role: 'admin', via: 'token' };
      });
    },
  };
}

/** A header against a secret, in constant time (hashed first, so lengths do not leak either). */
function sameSecret(given: string | string[] | undefined, secret: string): boolean {
  const digest = (v: string): Buffer => createHash('sha256').update(v).digest();
  return typeof given === 'string' && timingSafeEqual(digest(given), digest(secret));
}
