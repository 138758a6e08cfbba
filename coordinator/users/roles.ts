/**
 * Operator roles. Each role includes the one below it:
 *   viewer   — reads everything (every GET)
 *   operator — viewer + creates deployments and acts on them (start, pause, resume, promote, approve,
 *              abort, rollback)
 *   admin    — operator + users, devices (provision, revoke), flags, firmware upload, webhooks
 * Pure.
 */
import { z } from 'zod';

export const RoleSchema = z.enum(['viewer', 'operator', 'admin']);
export type Role = z.infer<typeof RoleSchema>;

const RANK: Readonly<Record<Role, number>> = { viewer: 0, operator: 1, admin: 2 };

/** True when `have` includes everything `need` may do. */
export function roleAllows(have: Role, need: Role): boolean {
  return RANK[have] >= RANK[need];
}

/** Who made a request: a named user with a role, and how they proved it. */
export interface Principal {
  name: string;
  role: Role;
  /** `token`: a bearer token (a user's, or the configured admin token); `session`: the web login's cookie. */
  via: 'token' | 'session';
  /** For `via: 'session'`: the sha256 of its id (logout), the CSRF token its page echoes, when it ends. */
  sessionHash?: string;
  csrfToken?: string;
  sessionExpiresAt?: number;
}

/** The name of the built-in first admin, whose token is the coordinator's configured admin token. */
export const BUILTIN_ADMIN = 'admin';
