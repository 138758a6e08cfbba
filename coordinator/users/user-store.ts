/**
 * Named users of the admin API and the console: a role, an optional password (scrypt, as device
 * secrets are hashed) for the web login, and one API token (32 random bytes, shown once, stored as
 * its sha256: a token that long cannot be guessed, so a fast hash is enough to keep it out of a
 * leaked database). The coordinator's configured admin token is the built-in first admin, `admin`,
 * with no row of its own. Password checks run one at a time through a fair queue, each source
 * address in its own lane, so a burst of logins cannot occupy libuv's thread pool. I/O shell
 * (SQLite, node:crypto).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { FleetError } from '@fleet/protocol/errors';
import { hashSecret, verifySecret } from '../broker/credentials.js';
import { FairQueue } from '../broker/fair-queue.js';
import type { Db } from '../store/db.js';
import { BUILTIN_ADMIN, RoleSchema, type Role } from './roles.js';
import type { UserView } from './user-schemas.js';

export class UserExistsError extends FleetError {
  constructor(name: string) {
    super('user-exists', `user ${name} already exists; remove it first, or issue it a new token with \`fleet users token ${name}\``);
  }
}

export class UnknownUserError extends FleetError {
  constructor(name: string) {
    super('not-found', `no user ${name}; list users with \`fleet users list\``);
  }
}

export class BuiltinUserError extends FleetError {
  constructor(what: string) {
    super(
      'builtin-user',
      `${BUILTIN_ADMIN} is the built-in admin: its token is the coordinator's admin token (FLEET_ADMIN_TOKEN, or admin.json in development), so it cannot ${what}; add a named admin with \`fleet users add <name> --role admin\``,
    );
  }
}

/** A user as the API knows them (never a hash). */
export interface UserIdentity {
  name: string;
  role: Role;
}

interface Row {
  name: string;
  role: string;
  password_hash: string | null;
  token_hash: string | null;
  token_issued_at: number | null;
  created_at: number;
  created_by: string;
  password_changed_at: number | null;
  last_login_at: number | null;
}

export interface UserStoreOptions {
  db: Db;
  /** The coordinator's admin token: the built-in admin's. */
  adminToken: string;
  now: () => number;
  /** log2 of scrypt's N for passwords (the coordinator's `credentialCost`). */
  scryptLogN: number;
}

export const sha256Hex = (value: string): string => createHash('sha256').update(value).digest('hex');

/** A new API token: 32 random bytes, base64url (43 characters). */
export const newToken = (): string => randomBytes(32).toString('base64url');

export class UserStore {
  private readonly adminDigest: Buffer;
  private readonly checks = new FairQueue({ concurrency: 1, maxPerLane: 4, maxQueued: 64 });
  /** A hash that an unknown user's password is checked against, so that the answer takes as long. */
  private decoy: Promise<string> | undefined;

  constructor(private readonly o: UserStoreOptions) {
    this.adminDigest = createHash('sha256').update(o.adminToken).digest();
  }

  list(): UserView[] {
    const rows = this.o.db.prepare('SELECT * FROM users ORDER BY name').all() as Row[];
    return [this.builtinView(), ...rows.map((r) => view(r))];
  }

  /** One user's view (the built-in admin included), or undefined. */
  view(name: string): UserView | undefined {
    if (name === BUILTIN_ADMIN) return this.builtinView();
    const row = this.row(name);
    return row ? view(row) : undefined;
  }

  /** Name and role of a user (the built-in admin included), or undefined: read at every request, so a removal or new role applies at once. */
  identity(name: string): UserIdentity | undefined {
    if (name === BUILTIN_ADMIN) return { name, role: 'admin' };
    const row = this.row(name);
    return row ? { name: row.name, role: RoleSchema.parse(row.role) } : undefined;
  }

  /** Adds a user and issues their first API token (returned once). */
  async add(user: { name: string; role: Role; password?: string | undefined }, by: string): Promise<{ user: UserView; token: string }> {
    if (user.name === BUILTIN_ADMIN) throw new BuiltinUserError('be added again');
    if (this.row(user.name)) throw new UserExistsError(user.name);
    const passwordHash = user.password !== undefined ? await this.hash(user.password) : null;
    const token = newToken();
    const now = this.o.now();
    try {
      this.o.db
        .prepare('INSERT INTO users (name, role, password_hash, token_hash, token_issued_at, created_at, created_by, password_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(user.name, user.role, passwordHash, sha256Hex(token), now, now, by, passwordHash !== null ? now : null);
    } catch (err) {
      // Added by a concurrent request while the password was being hashed.
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new UserExistsError(user.name);
      throw err;
    }
    return { user: view(this.row(user.name)!), token };
  }

  /** Removes a user (their sessions are the session store's to end). */
  remove(name: string): void {
    if (name === BUILTIN_ADMIN) throw new BuiltinUserError('be removed');
    if (this.o.db.prepare('DELETE FROM users WHERE name = ?').run(name).changes === 0) throw new UnknownUserError(name);
  }

  /** Issues a new API token; the previous one stops working. */
  issueToken(name: string): { user: UserView; token: string } {
    if (name === BUILTIN_ADMIN) throw new BuiltinUserError('be issued another token');
    const token = newToken();
    const changed = this.o.db.prepare('UPDATE users SET token_hash = ?, token_issued_at = ? WHERE name = ?').run(sha256Hex(token), this.o.now(), name).changes;
    if (changed === 0) throw new UnknownUserError(name);
    return { user: view(this.row(name)!), token };
  }

  async setPassword(name: string, password: string): Promise<void> {
    if (name === BUILTIN_ADMIN) throw new BuiltinUserError('have a password');
    if (!this.row(name)) throw new UnknownUserError(name);
    const hash = await this.hash(password);
    if (this.o.db.prepare('UPDATE users SET password_hash = ?, password_changed_at = ? WHERE name = ?').run(hash, this.o.now(), name).changes === 0) {
      throw new UnknownUserError(name);
    }
  }

  /** The user a bearer token belongs to: the built-in admin's, or a user's current token. */
  byToken(token: string): UserIdentity | undefined {
    const digest = createHash('sha256').update(token).digest();
    if (timingSafeEqual(digest, this.adminDigest)) return { name: BUILTIN_ADMIN, role: 'admin' };
    const row = this.o.db.prepare('SELECT * FROM users WHERE token_hash = ?').get(digest.toString('hex')) as Row | undefined;
    return row ? { name: row.name, role: RoleSchema.parse(row.role) } : undefined;
  }

  /**
   * The user when `password` is theirs. An unknown name, or a user without a password, costs a check
   * against a decoy hash all the same. `lane`: the source address (fair queue; BusyError when full).
   */
  async checkPassword(name: string, password: string, lane: string): Promise<UserIdentity | undefined> {
    const row = name === BUILTIN_ADMIN ? undefined : this.row(name);
    const stored = row?.password_hash ?? (await this.decoyHash());
    const ok = await this.checks.run(lane, () => verifySecret(password, stored));
    return ok && row?.password_hash ? { name: row.name, role: RoleSchema.parse(row.role) } : undefined;
  }

  noteLogin(name: string): void {
    this.o.db.prepare('UPDATE users SET last_login_at = ? WHERE name = ?').run(this.o.now(), name);
  }

  private row(name: string): Row | undefined {
    return this.o.db.prepare('SELECT * FROM users WHERE name = ?').get(name) as Row | undefined;
  }

  private hash(password: string): Promise<string> {
    // The admin's own work: waits its turn with logins instead of being refused.
    return this.checks.run('operator:users', () => hashSecret(password, this.o.scryptLogN), false);
  }

  private decoyHash(): Promise<string> {
    this.decoy ??= hashSecret(newToken(), this.o.scryptLogN);
    return this.decoy;
  }

  private builtinView(): UserView {
    return { name: BUILTIN_ADMIN, role: 'admin', builtin: true, hasPassword: false, hasToken: true, createdAt: null, createdBy: null, tokenIssuedAt: null, lastLoginAt: null };
  }
}

function view(r: Row): UserView {
  return {
    name: r.name,
    role: RoleSchema.parse(r.role),
    builtin: false,
    hasPassword: r.password_hash !== null,
    hasToken: r.token_hash !== null,
    createdAt: r.created_at,
    createdBy: r.created_by,
    tokenIssuedAt: r.token_issued_at,
    lastLoginAt: r.last_login_at,
  };
}
