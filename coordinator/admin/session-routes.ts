/**
 * Admin API: the web login.
 *
 *   POST   /v1/session   {username, password} or {token} → the user and CSRF token, + the session cookie
 *   GET    /v1/session   the caller (and, with the cookie, the CSRF token): 401 when not logged in
 *   DELETE /v1/session   ends the session and clears the cookie
 */
import { ValidationError } from '@fleet/protocol/errors';
import type { AuditLog } from '../store/audit-log.js';
import { sessionView, type Access } from '../users/access.js';
import { LoginSchema, SessionViewSchema } from '../users/user-schemas.js';
import { actorOf, sourceOf, type AdminApi } from './admin-api.js';

export interface SessionRouteDeps {
  access: Access;
  auditLog: AuditLog;
  now: () => number;
}

export function registerSessionRoutes(api: AdminApi, deps: SessionRouteDeps): void {
  api.post(
    '/v1/session',
    { config: { public: true }, schema: { summary: 'log in: sets the session cookie', body: LoginSchema, response: { 200: SessionViewSchema } } },
    async (request, reply) => {
      // A form on another site can post text/plain, never application/json without asking first.
      if (!/^application\/json\b/i.test(request.headers['content-type'] ?? '')) {
        throw new ValidationError('login', ['send it as JSON (content-type: application/json)']);
      }
      const source = sourceOf(request.raw);
      const { principal, view, setCookie } = await deps.access.login(request.body, source);
      const via = 'username' in request.body ? 'password' : 'token';
      await deps.auditLog.append(deps.now(), principal.name, 'session.created', principal.name, { via }, { user: principal.name, role: principal.role, source });
      return reply.header('set-cookie', setCookie).send(view);
    },
  );

  api.get('/v1/session', { schema: { summary: 'who is logged in, and the CSRF token of their session', response: { 200: SessionViewSchema } } }, (request) =>
    sessionView(request.principal!),
  );

  api.delete('/v1/session', { config: { role: 'viewer' }, schema: { summary: 'log out: ends the session and clears the cookie' } }, async (request, reply) => {
    const cookie = await deps.access.logout(request.principal!);
    if (request.principal!.via === 'session') await deps.auditLog.append(deps.now(), actorOf(request), 'session.ended', actorOf(request));
    return reply.code(204).header('set-cookie', cookie).send();
  });
}
