/**
 * Admin API: named users (admin role, but a user may change their own password).
 *
 *   GET    /v1/users                 every user with role and what credentials they have (never a hash)
 *   POST   /v1/users                 add a user; answers their first API token, shown once
 *   DELETE /v1/users/:name           remove a user; their token and sessions stop working at once
 *   POST   /v1/users/:name/token     issue a new API token (the old one stops working)
 *   PUT    /v1/users/:name/password  set a password for the web login
 */
import type { SessionStore } from '../users/session-store.js';
import { authorize } from '../users/access.js';
import { NewUserSchema, PasswordChangeSchema, ReasonSchema } from '../users/user-schemas.js';
import type { UserStore } from '../users/user-store.js';
import { ForbiddenError } from './http-errors.js';
import { reply, type Router } from './router.js';

export interface UserRouteDeps {
  users: UserStore;
  sessions: SessionStore;
  audit: (actor: string, action: string, subject: string, detail?: Record<string, unknown>) => void;
}

const withReason = (reason: string | undefined): Record<string, unknown> => (reason !== undefined ? { reason } : {});

export function registerUserRoutes(router: Router, deps: UserRouteDeps): void {
  const { users, sessions } = deps;

  router.get('/v1/users', {}, () => ({ users: users.list() }));

  router.post('/v1/users', { body: NewUserSchema }, async ({ body, actor }) => {
    const issued = await users.add(body, actor);
    deps.audit(actor, 'users.added', body.name, { role: body.role, password: body.password !== undefined, ...withReason(body.reason) });
    return reply(201, issued);
  });

  router.delete('/v1/users/:name', { query: ReasonSchema }, ({ params, query, actor }) => {
    const name = params['name']!;
    users.remove(name);
    const ended = sessions.revokeUser(name);
    deps.audit(actor, 'users.removed', name, { sessionsEnded: ended, ...withReason(query.reason) });
    return undefined;
  });

  router.post('/v1/users/:name/token', { body: ReasonSchema }, ({ params, body, actor }) => {
    const issued = users.issueToken(params['name']!);
    deps.audit(actor, 'users.token-issued', params['name']!, withReason(body.reason));
    return issued;
  });

  // Any signed-in user for their own password; an admin for anyone's.
  router.put('/v1/users/:name/password', { body: PasswordChangeSchema, role: 'viewer' }, async ({ params, body, actor, principal, source }) => {
    const name = params['name']!;
    const self = principal!.name === name;
    if (!self) authorize(principal!, 'admin', `setting ${name}'s password`);
    if (self && principal!.via === 'session' && users.view(name)?.hasPassword) {
      // A session left open on a shared screen must not be enough to take the account over.
      if (body.currentPassword === undefined || !(await users.checkPassword(name, body.currentPassword, source))) {
        throw new ForbiddenError('changing your own password from a web session needs your current password (currentPassword)');
      }
    }
    await users.setPassword(name, body.password);
    const ended = sessions.revokeUser(name, principal!.sessionHash);
    deps.audit(actor, 'users.password-changed', name, { sessionsEnded: ended, ...withReason(body.reason) });
    return undefined;
  });
}
