/**
 * Users, sessions and access on their own (a fake clock), on SQLite and PostgreSQL alike: roles,
 * tokens shown once and stored hashed, the built-in admin, session idle and absolute ends, CSRF, login
 * throttling and the session cookie's attributes.
 */
import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { Counters } from '../../coordinator/metrics.js';
import type { Sql } from '../../coordinator/store/sql.js';
import { Access, authorize, SESSION_COOKIE } from '../../coordinator/users/access.js';
import { roleAllows, type Principal, type Role } from '../../coordinator/users/roles.js';
import { SessionStore } from '../../coordinator/users/session-store.js';
import { NewUserSchema } from '../../coordinator/users/user-schemas.js';
import { sha256Hex, UserStore } from '../../coordinator/users/user-store.js';
import { STORE_KINDS, openTestStore } from '../support/postgres.js';

const ADMIN_TOKEN = 'the-configured-admin-token-0123456789';

describe('roles', () => {
  it.each<[Role, Role, boolean]>([
    ['viewer', 'viewer', true],
    ['viewer', 'operator', false],
    ['viewer', 'admin', false],
    ['operator', 'viewer', true],
    ['operator', 'operator', true],
    ['operator', 'admin', false],
    ['admin', 'viewer', true],
    ['admin', 'operator', true],
    ['admin', 'admin', true],
  ])('%s may do what needs %s: %s', (have, need, allowed) => {
    expect(roleAllows(have, need)).toBe(allowed);
    const p: Principal = { name: 'alice', role: have, via: 'token' };
    if (allowed) expect(() => authorize(p, need, 'this')).not.toThrow();
    else expect(() => authorize(p, need, 'this')).toThrow(`this needs the ${need} role; you are alice (${have})`);
  });
});

describe.each(STORE_KINDS)('users, sessions and access on %s', (kind) => {
  let db: Sql;
  let now: number;
  let users: UserStore;
  let sessions: SessionStore;

  beforeEach(async () => {
    db = await openTestStore(kind);
    now = 1_800_000_000_000;
    users = new UserStore({ sql: db, adminToken: ADMIN_TOKEN, now: () => now, scryptLogN: 4 });
    sessions = new SessionStore(db, () => now, { idleMs: 60 * 60_000, maxMs: 12 * 60 * 60_000 });
  });

  function access(secureCookies = false): Access {
    return new Access({ users, sessions, now: () => now, secureCookies });
  }

  describe('user store', () => {
    it('issues a token once, stores only its hash, and a new token replaces the old', async () => {
      const { user, token } = await users.add({ name: 'alice', role: 'operator' }, 'admin');
      expect(user).toMatchObject({ name: 'alice', role: 'operator', hasPassword: false, hasToken: true, createdBy: 'admin' });
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const row = (await db.get<Record<string, unknown>>('SELECT * FROM users WHERE name = ?', ['alice']))!;
      expect(JSON.stringify(row)).not.toContain(token);
      expect(row['token_hash']).toBe(sha256Hex(token));
      expect(await users.byToken(token)).toEqual({ name: 'alice', role: 'operator' });
      const second = await users.issueToken('alice');
      expect(second.user).toMatchObject({ name: 'alice', hasToken: true });
      expect(await users.byToken(token)).toBeUndefined();
      expect(await users.byToken(second.token)).toEqual({ name: 'alice', role: 'operator' });
      await expect(users.add({ name: 'alice', role: 'viewer' }, 'admin')).rejects.toMatchObject({ code: 'user-exists' });
    });

    it('adds a user once when two requests race for the name', async () => {
      const racing = await Promise.allSettled([
        users.add({ name: 'zoe', role: 'viewer', password: 'zoe password 12' }, 'admin'),
        users.add({ name: 'zoe', role: 'admin', password: 'zoe password 34' }, 'admin'),
      ]);
      expect(racing.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      expect(racing.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'user-exists' } });
      expect((await users.list()).filter((u) => u.name === 'zoe')).toHaveLength(1);
    });

    it('knows the configured admin token as the built-in admin, which cannot be changed or removed', async () => {
      expect(await users.byToken(ADMIN_TOKEN)).toEqual({ name: 'admin', role: 'admin' });
      expect(await users.byToken('not-a-token')).toBeUndefined();
      expect((await users.list())[0]).toMatchObject({ name: 'admin', role: 'admin', builtin: true });
      await expect(users.remove('admin')).rejects.toThrow(/built-in admin/);
      await expect(users.issueToken('admin')).rejects.toThrow(/FLEET_ADMIN_TOKEN/);
      await expect(users.add({ name: 'admin', role: 'viewer' }, 'admin')).rejects.toMatchObject({ code: 'builtin-user' });
      await expect(users.remove('nobody')).rejects.toThrow(/no user nobody/);
      await expect(users.issueToken('nobody')).rejects.toThrow(/no user nobody/);
    });

    it('checks passwords with scrypt; unknown users and users without one are refused the same way', async () => {
      await users.add({ name: 'bob', role: 'viewer', password: 'correct horse battery' }, 'admin');
      await users.add({ name: 'carol', role: 'viewer' }, 'admin');
      const row = (await db.get<{ password_hash: string }>('SELECT password_hash FROM users WHERE name = ?', ['bob']))!;
      expect(row.password_hash).toMatch(/^scrypt\$4\$/);
      expect(await users.checkPassword('bob', 'correct horse battery', '127.0.0.1')).toEqual({ name: 'bob', role: 'viewer' });
      expect(await users.checkPassword('bob', 'wrong horse battery', '127.0.0.1')).toBeUndefined();
      expect(await users.checkPassword('carol', '', '127.0.0.1')).toBeUndefined();
      expect(await users.checkPassword('nobody', 'correct horse battery', '127.0.0.1')).toBeUndefined();
      expect(await users.checkPassword('admin', ADMIN_TOKEN, '127.0.0.1')).toBeUndefined();
      await users.setPassword('carol', 'a brand new password');
      expect(await users.checkPassword('carol', 'a brand new password', '127.0.0.1')).toEqual({ name: 'carol', role: 'viewer' });
    });

    it('refuses short passwords and malformed names in the request schema', () => {
      const short = NewUserSchema.safeParse({ name: 'dave', role: 'viewer', password: 'short' });
      expect(short.success).toBe(false);
      expect(short.error?.issues[0]?.message).toMatch(/at least 12 characters/);
      expect(NewUserSchema.safeParse({ name: 'Dave Smith', role: 'viewer' }).success).toBe(false);
      expect(NewUserSchema.safeParse({ name: 'dave', role: 'root' }).success).toBe(false);
      expect(NewUserSchema.safeParse({ name: 'dave.smith-2', role: 'viewer', password: 'twelve chars' }).success).toBe(true);
    });
  });

  describe('sessions', () => {
    it('end after an idle hour, and after 12 h however busy', async () => {
      await users.add({ name: 'erin', role: 'viewer' }, 'admin');
      const idle = await sessions.create('erin', '127.0.0.1');
      now += 59 * 60_000;
      expect((await sessions.lookup(idle.id))?.userName).toBe('erin');
      // Used at 59 min: the idle hour starts again from there.
      now += 59 * 60_000;
      expect((await sessions.lookup(idle.id))?.userName).toBe('erin');
      now += 60 * 60_000;
      expect(await sessions.lookup(idle.id)).toBeUndefined();
      const busy = await sessions.create('erin', '127.0.0.1');
      for (let i = 0; i < 12 * 2 - 1; i++) {
        now += 30 * 60_000;
        expect(await sessions.lookup(busy.id), `after ${(i + 1) / 2} h`).toBeDefined();
      }
      now += 30 * 60_000;
      expect(await sessions.lookup(busy.id)).toBeUndefined();
    });

    it('are stored hashed and end for a user at once (removal, password change), but the one kept', async () => {
      const a = await sessions.create('frank', '127.0.0.1');
      const b = await sessions.create('frank', '127.0.0.2');
      const stored = await db.all<{ id_hash: string }>('SELECT id_hash FROM user_sessions');
      expect(stored.map((r) => r.id_hash).sort()).toEqual([sha256Hex(a.id), sha256Hex(b.id)].sort());
      expect(await sessions.revokeUser('frank', a.session.idHash)).toBe(1);
      expect(await sessions.lookup(a.id)).toBeDefined();
      expect(await sessions.lookup(b.id)).toBeUndefined();
    });

    it('are known to a second coordinator on the same store, and ended ones are swept at the next login', async () => {
      const other = new SessionStore(db, () => now, { idleMs: 60 * 60_000, maxMs: 12 * 60 * 60_000 });
      const s = await sessions.create('gus', '127.0.0.1');
      expect((await other.lookup(s.id))?.userName).toBe('gus');
      await other.revoke(s.session.idHash);
      expect(await sessions.lookup(s.id)).toBeUndefined();
      await sessions.create('gus', '127.0.0.1');
      now += 2 * 60 * 60_000;
      await other.create('gus', '127.0.0.1');
      expect(await db.all('SELECT id_hash FROM user_sessions')).toHaveLength(1);
    });
  });

  describe('access', () => {
    const cookieOf = (setCookie: string): string => setCookie.split(';')[0]!;

    it('logs in with a password or a token, sets an HttpOnly SameSite=Strict cookie, and asks the cookie for a CSRF token', async () => {
      await users.add({ name: 'gina', role: 'operator', password: 'gina password 1' }, 'admin');
      const a = access();
      const { view, setCookie } = await a.login({ username: 'gina', password: 'gina password 1' }, '127.0.0.1');
      expect(view.user).toEqual({ name: 'gina', role: 'operator' });
      expect((await users.view('gina'))?.lastLoginAt).toBe(now);
      expect(setCookie).toMatch(new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{43}; Max-Age=43200; Path=/; HttpOnly; SameSite=Strict$`));
      const cookie = cookieOf(setCookie);
      const get = await a.authenticate({ method: 'GET', headers: { cookie }, source: '127.0.0.1' });
      expect(get).toMatchObject({ name: 'gina', role: 'operator', via: 'session', csrfToken: view.csrfToken });
      await expect(a.authenticate({ method: 'POST', headers: { cookie }, source: '127.0.0.1' })).rejects.toThrow(expect.objectContaining({ code: 'csrf', status: 403 }));
      await expect(a.authenticate({ method: 'POST', headers: { cookie, 'x-csrf-token': 'guess' }, source: '127.0.0.1' })).rejects.toThrow(expect.objectContaining({ code: 'csrf' }));
      expect((await a.authenticate({ method: 'POST', headers: { cookie, 'x-csrf-token': view.csrfToken }, source: '127.0.0.1' })).name).toBe('gina');
      // With the admin token itself, as the built-in admin; a bearer needs no CSRF header.
      const byToken = await a.login({ token: ADMIN_TOKEN }, '127.0.0.1');
      expect(byToken.view.user).toEqual({ name: 'admin', role: 'admin' });
      expect(await a.authenticate({ method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, source: '127.0.0.1' })).toMatchObject({ name: 'admin', via: 'token' });
      // Logging out ends the session and clears the cookie.
      const clear = await a.logout(get);
      expect(clear).toMatch(new RegExp(`^${SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict$`));
      await expect(a.authenticate({ method: 'GET', headers: { cookie }, source: '127.0.0.1' })).rejects.toThrow(expect.objectContaining({ code: 'unauthorized' }));
    });

    it('marks the cookie Secure when served over HTTPS', async () => {
      const { setCookie } = await access(true).login({ token: ADMIN_TOKEN }, '127.0.0.1');
      expect(setCookie).toMatch(/; Secure; SameSite=Strict$/);
    });
    it('throttles failed logins per user name and per address, before checking any password', async () => {
      await users.add({ name: 'hank', role: 'viewer', password: 'hank password 1' }, 'admin');
      const lines: Record<string, unknown>[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
      const counters = new Counters();
      const a = new Access({ users, sessions, now: () => now, secureCookies: false, logger, counters });
      for (let i = 0; i < 3; i++) await expect(a.login({ username: 'hank', password: 'nope' }, '10.0.0.1')).rejects.toMatchObject({ code: 'unauthorized' });
      await expect(a.login({ username: 'hank', password: 'nope' }, '10.0.0.2')).rejects.toMatchObject({ code: 'unauthorized' });
      // Blocked now: even the right password waits, from any address.
      const blocked = a.login({ username: 'hank', password: 'hank password 1' }, '10.0.0.3');
      await expect(blocked).rejects.toMatchObject({ code: 'throttled', status: 429, headers: { 'retry-after': '1' } });
      await expect(blocked).rejects.toThrow(/too many failed logins for hank; retry in 1 s/);
      // Counted every time, logged with who and from where once per address and kind per 10 s.
      expect(counters.get('admin.login.failed')).toBe(4);
      expect(counters.get('admin.login.throttled')).toBe(1);
      expect(lines.map((l) => [l['msg'], l['user'], l['source']])).toEqual([
        ['login refused: wrong user name, password or token', 'hank', '10.0.0.1'],
        ['login refused: wrong user name, password or token', 'hank', '10.0.0.2'],
        ['login throttled after failed attempts', 'hank', '10.0.0.3'],
      ]);
      now += 1_001;
      expect((await a.login({ username: 'hank', password: 'hank password 1' }, '10.0.0.3')).view.user.name).toBe('hank');
      // An address that keeps guessing tokens is blocked; other addresses are not.
      for (let i = 0; i < 4; i++) await expect(a.login({ token: `guess-${i}` }, '10.0.0.9')).rejects.toMatchObject({ code: 'unauthorized' });
      await expect(a.login({ token: ADMIN_TOKEN }, '10.0.0.9')).rejects.toThrow(/too many failed logins from 10.0.0.9/);
      expect((await a.login({ token: ADMIN_TOKEN }, '10.0.0.10')).view.user.name).toBe('admin');
    });

    it('refuses a removed user at once, whatever the credential', async () => {
      const { token } = await users.add({ name: 'ivy', role: 'admin', password: 'ivy password 12' }, 'admin');
      const a = access();
      const { setCookie } = await a.login({ username: 'ivy', password: 'ivy password 12' }, '127.0.0.1');
      await users.remove('ivy');
      await expect(a.authenticate({ method: 'GET', headers: { authorization: `Bearer ${token}` }, source: '127.0.0.1' })).rejects.toThrow(/token rejected/);
      await expect(a.authenticate({ method: 'GET', headers: { cookie: cookieOf(setCookie) }, source: '127.0.0.1' })).rejects.toThrow(/session has ended/);
      await expect(a.authenticate({ method: 'GET', headers: {}, source: '127.0.0.1' })).rejects.toThrow(/FLEET_TOKEN/);
      await expect(a.authenticate({ method: 'GET', headers: { authorization: 'Basic abc' }, source: '127.0.0.1' })).rejects.toThrow(/Bearer <token>/);
    });
  });
});
