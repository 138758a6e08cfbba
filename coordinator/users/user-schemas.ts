/**
 * What the users and session endpoints accept and answer: the one definition of each, used to parse
 * requests and to describe them in the OpenAPI document. Pure.
 */
import { z } from 'zod';
import { RoleSchema } from './roles.js';

/**
 * Passwords of at least 12 characters in every environment (NIST SP 800-63B asks for 8 and for
 * length over composition rules); at most 256 so that a login cannot make scrypt hash megabytes.
 */
export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 256;

export const UserNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9._-]{0,63}$/, 'a user name is 1–64 lower-case letters, digits, ".", "_" or "-", starting with a letter');

export const PasswordSchema = z
  .string()
  .min(MIN_PASSWORD_LENGTH, `a password needs at least ${MIN_PASSWORD_LENGTH} characters`)
  .max(MAX_PASSWORD_LENGTH, `a password has at most ${MAX_PASSWORD_LENGTH} characters`);

const Reason = z.string().max(500).optional();

export const NewUserSchema = z.object({
  name: UserNameSchema,
  role: RoleSchema,
  /** For the web login; without one the user logs in with their API token. */
  password: PasswordSchema.optional(),
  reason: Reason,
});

export const PasswordChangeSchema = z.object({
  password: PasswordSchema,
  /** Required when users change their own password from a web session. */
  currentPassword: z.string().max(MAX_PASSWORD_LENGTH).optional(),
  reason: Reason,
});

export const ReasonSchema = z.object({ reason: Reason });

export const UserViewSchema = z.object({
  name: z.string(),
  role: RoleSchema,
  /** The built-in first admin (its token is the coordinator's admin token). */
  builtin: z.boolean(),
  hasPassword: z.boolean(),
  hasToken: z.boolean(),
  createdAt: z.number().nullable(),
  createdBy: z.string().nullable(),
  tokenIssuedAt: z.number().nullable(),
  lastLoginAt: z.number().nullable(),
});
export type UserView = z.infer<typeof UserViewSchema>;

/** A user and their new API token: shown once, only its hash is stored. */
export const IssuedTokenSchema = z.object({ user: UserViewSchema, token: z.string() });

export const LoginSchema = z.union([
  z.object({ username: z.string().min(1).max(64), password: z.string().min(1).max(MAX_PASSWORD_LENGTH) }).strict(),
  z.object({ token: z.string().min(1).max(512) }).strict(),
]);
export type Login = z.infer<typeof LoginSchema>;

export const SessionViewSchema = z.object({
  user: z.object({ name: z.string(), role: RoleSchema }),
  /** Session only: send it as `x-csrf-token` with every non-GET request made with the session cookie. */
  csrfToken: z.string().optional(),
  /** Session only: when it ends unless used again (and at the latest 12 h after login, by default). */
  expiresAt: z.number().optional(),
});
export type SessionView = z.infer<typeof SessionViewSchema>;
