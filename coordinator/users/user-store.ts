/**
 * Named users of the admin API and the console: a role, an optional password for the web login
 * (scrypt at `credentialCost`: a person chose it, so it gets a slow hash), and one API token (32
 * random bytes, shown once, stored as its sha256: a token that long cannot be guessed, so a fast hash
 * is enough to keep it out of a leaked database, as with device secrets; docs/credential-hashing.md).
 * The coordinator's configured admin token is the built-in first admin, `admin`, with no row of its
 * own. Password checks run one at a time through a fair queue, each source
 * address in its own lane, so a burst of logins cannot occupy libuv's thread pool. Every read goes
 * to the store (a removal or new role applies at once, on every coordinator sharing it). I/O shell
 * (the Sql store, node:crypto).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { FleetError } from '@fleet/protocol/errors';
import { scryptHash, verifyScrypt } from '../broker/secret-hash.js';
import { FairQueue } from '../broker/fair-queue.js';
import type { Sql } from '../store/sql.js';
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
  sql: Sql;
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

  async list(): Promise<UserView[]> {
    const rows = await this.o.sql.all<Row>('SELECT * FROM users ORDER BY name');
    return [this.builtinView(), ...rows.map((r) => view(r))];
  }

  /** One user's view (the built-in admin included), or undefined. */
  async view(name: string): Promise<UserView | undefined> {
    if (name === BUILTIN_ADMIN) return this.builtinView();
    const row = await this.row(name);
    return row ? view(row) : undefined;
  }

  /** Name and role of a user (the built-in admin included), or undefined: read at every request, so a removal or new role applies at once. */
  async identity(name: string): Promise<UserIdentity | undefined> {
    if (name === BUILTIN_ADMIN) return { name, role: 'admin' };
    const row = await this.row(name);
    return row ? { name: row.name, role: RoleSchema.parse(row.role) } : undefined;
  }

  /** Adds a user and issues their first API token (returned once). */
  async add(user: { name: string; role: Role; password?: string | undefined }, by: string): Promise<{ user: UserView; token: string }> {
    if (user.name === BUILTIN_ADMIN) throw new BuiltinUserError('be added again');
    if (await this.row(user.name)) throw new UserExistsError(user.name);
    const passwordHash = user.password !== undefined ? await this.hash(user.password) : null;
    const token = newToken();
    const now = this.o.now();
    // DO NOTHING: added by a concurrent request (or another coordinator) while the password was hashed.
    const inserted = await this.o.sql.get<Row>(
      `INSERT INTO users (name, role, password_hash, token_hash, token_issued_at, created_at, created_by, password_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (name) DO NOTHING RETURNING *`,
      [user.name, user.role, passwordHash, sha256Hex(token), now, now, by, passwordHash !== null ? now : null],
    );
    if (!inserted) throw new UserExistsError(user.name);
    return { user: view(inserted), token };
  }

  /** Removes a user (their sessions are the session store's to end). */
  async remove(name: string): Promise<void> {
    if (name === BUILTIN_ADMIN) throw new BuiltinUserError('be removed');
    if ((await this.o.sql.run('DELETE FROM users WHERE name = ?', [name])).changes === 0) throw new UnknownUserError(name);
  }

  /** Issues a new API token; the previous one stops working. */
  async issueToken(name: string): Promise<{ user: UserView; token: string }> {
    if (name === BUILTIN_ADMIN) throw new BuiltinUserError('be issued another token');
    const token = newToken();
    const row = await this.o.sql.get<Row>('UPDATE users SET token_hash = ?, token_issued_at = ? WHERE name = ? RETURNING *', [sha256Hex(token), this.o.now(), name]);
    if (!row) throw new UnknownUserError(name);
    return { user: view(row), token };
  }

  async setPassword(name: string, password: string): Promise<void> {
    if (name === BUILTIN_ADMIN) throw new BuiltinUserError('have a password');
    if (!(await this.row(name))) throw new UnknownUserError(name);
    const hash = await this.hash(password);
    if ((await this.o.sql.run('UPDATE users SET password_hash = ?, password_changed_at = ? WHERE name = ?', [hash, this.o.now(), name])).changes === 0) {
      throw new UnknownUserError(name);
    }
  }

  /** The user a bearer token belongs to: the built-in admin's, or a user's current token. */
  async byToken(token: string): Promise<UserIdentity | undefined> {
    const digest = createHash('sha256').update(token).digest();
    if (timingSafeEqual(digest, this.adminDigest)) return { name: BUILTIN_ADMIN, role: 'admin' };
    const row = await this.o.sql.get<Row>('SELECT * FROM users WHERE token_hash = ?', [digest.toString('hex')]);
    return row ? { name: row.name, role: RoleSchema.parse(row.role) } : undefined;
  }

  /**
   * The user when `password` is theirs. An unknown name, or a user without a password, costs a check
   * against a decoy hash all the same. `lane`: the source address (fair queue; BusyError when full).
   */
  async checkPassword(name: string, password: string, lane: string): Promise<UserIdentity | undefined> {
    const row = name === BUILTIN_ADMIN ? undefined : await this.row(name);
    const stored = row?.password_hash ?? (await this.decoyHash());
    const ok = await this.checks.run(lane, () => verifyScrypt(password, stored));
    return ok && row?.password_hash ? { name: row.name, role: RoleSchema.parse(row.role) } : undefined;
  }

  async noteLogin(name: string): Promise<void> {
    await this.o.sql.run('UPDATE users SET last_login_at = ? WHERE name = ?', [this.o.now(), name]);
  }

  private row(name: string): Promise<Row | undefined> {
    return this.o.sql.get<Row>('SELECT * FROM users WHERE name = ?', [name]);
  }

  private hash(password: string): Promise<string> {
    // The admin's own work: waits its turn with logins instead of being refused.
    return this.checks.run('operator:users', () => scryptHash(password, this.o.scryptLogN), false);
  }

  private decoyHash(): Promise<string> {
    this.decoy ??= scryptHash(newToken(), this.o.scryptLogN);
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
