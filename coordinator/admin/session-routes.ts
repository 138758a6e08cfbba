/**
 * Admin API: the web login.
 *
 *   POST   /v1/session   {username, password} or {token} → the user and CSRF token, + the session cookie
 *   GET    /v1/session   the caller (and, with the cookie, the CSRF token): 401 when not logged in
 *   DELETE /v1/session   ends the session and clears the cookie
 */
import { ValidationError } from '../../protocol/errors.js';
import type { AuditLog } from '../store/audit-log.js';
import { sessionView, type Access } from '../users/access.js';
import { LoginSchema } from '../users/user-schemas.js';
import { reply, type Router } from './router.js';

export interface SessionRouteDeps {
  access: Access;
  auditLog: AuditLog;
  now: () => number;
}

export function registerSessionRoutes(router: Router, deps: SessionRouteDeps): void {
  router.post('/v1/session', { auth: false, body: LoginSchema }, async ({ body, req, source }) => {
    // A form on another site can post text/plain, never application/json without asking first.
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      throw new ValidationError('login', ['send it as JSON (content-type: application/json)']);
    }
    const { principal, view, setCookie } = await deps.access.login(body, source);
    deps.auditLog.append(deps.now(), principal.name, 'session.created', principal.name, { via: 'username' in body ? 'password' : 'token' }, { user: principal.name, role: principal.role, source });
    return reply(200, view, { 'set-cookie': setCookie });
  });

  router.get('/v1/session', {}, ({ principal }) => sessionView(principal!));

  router.delete('/v1/session', { role: 'viewer' }, ({ principal, actor }) => {
    const cookie = deps.access.logout(principal!);
    if (principal!.via === 'session') deps.auditLog.append(deps.now(), actor, 'session.ended', actor);
    return reply(204, undefined, { 'set-cookie': cookie });
  });
}
