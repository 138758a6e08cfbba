/**
 * Admin API: named users (admin role, but a user may change their own password).
 *
 *   GET    /v1/users                 every user with role and what credentials they have (never a hash)
 *   POST   /v1/users                 add a user; answers their first API token, shown once
 *   DELETE /v1/users/:name           remove a user; their token and sessions stop working at once
 *   POST   /v1/users/:name/token     issue a new API token (the old one stops working)
 *   PUT    /v1/users/:name/password  set a password for the web login
 */
import { z } from 'zod';
import type { SessionStore } from '../users/session-store.js';
import { authorize } from '../users/access.js';
import { IssuedTokenSchema, NewUserSchema, PasswordChangeSchema, ReasonSchema, UserViewSchema } from '../users/user-schemas.js';
import type { UserStore } from '../users/user-store.js';
import { actorOf, sourceOf, type AdminApi } from './admin-api.js';
import { ForbiddenError } from './http-errors.js';
import { definedProps } from '@fleet/firmware/defined-props';

export interface UserRouteDeps {
  users: UserStore;
  sessions: SessionStore;
  audit: (actor: string, action: string, subject: string, detail?: Record<string, unknown>) => void;
}

const NameParams = z.object({ name: z.string() });

export function registerUserRoutes(api: AdminApi, deps: UserRouteDeps): void {
  const { users, sessions } = deps;

  api.get('/v1/users', { schema: { summary: 'users, their roles and credentials (never a secret)', response: { 200: z.object({ users: z.array(UserViewSchema) }) } } }, async () => ({
    users: await users.list(),
  }));

  api.post('/v1/users', { schema: { summary: 'add a user; answers their API token, shown once', body: NewUserSchema, response: { 201: IssuedTokenSchema } } }, async (request, reply) => {
    const { body } = request;
    const issued = await users.add(body, actorOf(request));
    deps.audit(actorOf(request), 'users.added', body.name, { role: body.role, password: body.password !== undefined, ...definedProps({ reason: body.reason }) });
    return reply.code(201).send(issued);
  });

  api.delete('/v1/users/:name', { schema: { summary: 'remove a user: their token and sessions stop working', params: NameParams, querystring: ReasonSchema } }, async (request, reply) => {
    const { name } = request.params;
    await users.remove(name);
    const ended = await sessions.revokeUser(name);
    deps.audit(actorOf(request), 'users.removed', name, { sessionsEnded: ended, ...definedProps({ reason: request.query.reason }) });
    return reply.code(204).send();
  });

  api.post(
    '/v1/users/:name/token',
    { schema: { summary: 'issue a new API token (shown once); the old one stops working', params: NameParams, body: ReasonSchema, response: { 200: IssuedTokenSchema } } },
    async (request) => {
      const issued = await users.issueToken(request.params.name);
      deps.audit(actorOf(request), 'users.token-issued', request.params.name, definedProps({ reason: request.body.reason }));
      return issued;
    },
  );

  // Any signed-in user for their own password; an admin for anyone's.
  api.put(
    '/v1/users/:name/password',
    { config: { role: 'viewer' }, schema: { summary: "set a user's password for the web login (your own, or anyone's as an admin)", params: NameParams, body: PasswordChangeSchema } },
    async (request, reply) => {
      const { name } = request.params;
      const principal = request.principal!;
      const self = principal.name === name;
      if (!self) authorize(principal, 'admin', `setting ${name}'s password`);
      if (self && principal.via === 'session' && (await users.view(name))?.hasPassword) {
        // A session left open on a shared screen must not be enough to take the account over.
        if (request.body.currentPassword === undefined || !(await users.checkPassword(name, request.body.currentPassword, sourceOf(request.raw)))) {
          throw new ForbiddenError('changing your own password from a web session needs your current password (currentPassword)');
        }
      }
      await users.setPassword(name, request.body.password);
      const ended = await sessions.revokeUser(name, principal.sessionHash);
      deps.audit(actorOf(request), 'users.password-changed', name, { sessionsEnded: ended, ...definedProps({ reason: request.body.reason }) });
      return reply.code(204).send();
    },
  );
}
