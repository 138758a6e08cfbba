/**
 * Web sessions: a random id in an HttpOnly cookie, stored as its sha256, ending after `idleMs` without
 * a request or `maxMs` after login, whichever comes first. The CSRF token a session's page must echo
 * is derived from the id (a keyed hash the page cannot compute without the cookie it cannot read), so
 * nothing more is stored. Sessions survive a coordinator restart, and any coordinator sharing the store
 * knows them. I/O shell (the Sql store, node:crypto).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Sql } from '../store/sql.js';
import { sha256Hex } from './user-store.js';

export interface SessionOptions {
  /** A session unused this long ends. Default 1 h. */
  idleMs: number;
  /** A session ends this long after login, used or not. Default 12 h. */
  maxMs: number;
}

export const DEFAULT_SESSION_OPTIONS: SessionOptions = { idleMs: 3_600_000, maxMs: 12 * 3_600_000 };

/** How often a session's last use is written (not at every request). */
const TOUCH_EVERY_MS = 60_000;

export interface Session {
  idHash: string;
  userName: string;
  createdAt: number;
  /** The earlier of the absolute end and the idle end as of now. */
  expiresAt: number;
  /** The absolute end: `maxMs` after login. */
  endsAt: number;
  csrfToken: string;
}

interface Row {
  id_hash: string;
  user_name: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

/** The CSRF token of a session id. */
export function csrfTokenFor(sessionId: string): string {
  return createHash('sha256').update(`fleet-csrf\0${sessionId}`).digest('base64url');
}

export class SessionStore {
  constructor(
    private readonly sql: Sql,
    private readonly now: () => number,
    private readonly o: SessionOptions = DEFAULT_SESSION_OPTIONS,
  ) {}

  /** Starts a session (ended ones are swept first); returns its id (for the cookie, never stored) and the session. */
  async create(userName: string, source: string): Promise<{ id: string; session: Session }> {
    const now = this.now();
    const id = randomBytes(32).toString('base64url');
    const idHash = sha256Hex(id);
    const expiresAt = now + this.o.maxMs;
    await this.sql.transaction(async (tx) => {
      await tx.run('DELETE FROM user_sessions WHERE expires_at <= ? OR last_seen_at <= ?', [now, now - this.o.idleMs]);
      await tx.run('INSERT INTO user_sessions (id_hash, user_name, created_at, last_seen_at, expires_at, source) VALUES (?, ?, ?, ?, ?, ?)', [idHash, userName, now, now, expiresAt, source]);
    });
    return { id, session: { idHash, userName, createdAt: now, expiresAt: Math.min(expiresAt, now + this.o.idleMs), endsAt: expiresAt, csrfToken: csrfTokenFor(id) } };
  }

  /** The live session with this id, its last use noted; undefined when unknown, idle too long or past its end. */
  async lookup(id: string): Promise<Session | undefined> {
    const idHash = sha256Hex(id);
    const row = await this.sql.get<Row>('SELECT * FROM user_sessions WHERE id_hash = ?', [idHash]);
    if (!row) return undefined;
    const now = this.now();
    if (now >= row.expires_at || now - row.last_seen_at >= this.o.idleMs) {
      await this.revoke(idHash);
      return undefined;
    }
    let lastSeen = row.last_seen_at;
    if (now - lastSeen >= TOUCH_EVERY_MS) {
      await this.sql.run('UPDATE user_sessions SET last_seen_at = ? WHERE id_hash = ?', [now, idHash]);
      lastSeen = now;
    }
    return { idHash, userName: row.user_name, createdAt: row.created_at, expiresAt: Math.min(row.expires_at, lastSeen + this.o.idleMs), endsAt: row.expires_at, csrfToken: csrfTokenFor(id) };
  }

  async revoke(idHash: string): Promise<void> {
    await this.sql.run('DELETE FROM user_sessions WHERE id_hash = ?', [idHash]);
  }

  /** Ends every session of a user (removed, or their password changed), but `keep`. Returns how many ended. */
  async revokeUser(userName: string, keep?: string): Promise<number> {
    return (await this.sql.run('DELETE FROM user_sessions WHERE user_name = ? AND id_hash != ?', [userName, keep ?? ''])).changes;
  }
}
