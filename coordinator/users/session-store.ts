/**
 * Web sessions: a random id in an HttpOnly cookie, stored as its sha256, ending after `idleMs` without
 * a request or `maxMs` after login, whichever comes first. The CSRF token a session's page must echo
 * is derived from the id (a keyed hash the page cannot compute without the cookie it cannot read), so
 * nothing more is stored. Sessions survive a coordinator restart. I/O shell (SQLite, node:crypto).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '../store/db.js';
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
    private readonly db: Db,
    private readonly now: () => number,
    private readonly o: SessionOptions = DEFAULT_SESSION_OPTIONS,
  ) {}

  /** Starts a session; returns its id (for the cookie, never stored) and the session. */
  create(userName: string, source: string): { id: string; session: Session } {
    const now = this.now();
    this.db.prepare('DELETE FROM user_sessions WHERE expires_at <= ? OR last_seen_at <= ?').run(now, now - this.o.idleMs);
    const id = randomBytes(32).toString('base64url');
    const idHash = sha256Hex(id);
    const expiresAt = now + this.o.maxMs;
    this.db.prepare('INSERT INTO user_sessions (id_hash, user_name, created_at, last_seen_at, expires_at, source) VALUES (?, ?, ?, ?, ?, ?)').run(idHash, userName, now, now, expiresAt, source);
    return { id, session: { idHash, userName, createdAt: now, expiresAt: Math.min(expiresAt, now + this.o.idleMs), endsAt: expiresAt, csrfToken: csrfTokenFor(id) } };
  }

  /** The live session with this id, its last use noted; undefined when unknown, idle too long or past its end. */
  lookup(id: string): Session | undefined {
    const idHash = sha256Hex(id);
    const row = this.db.prepare('SELECT * FROM user_sessions WHERE id_hash = ?').get(idHash) as Row | undefined;
    if (!row) return undefined;
    const now = this.now();
    if (now >= row.expires_at || now - row.last_seen_at >= this.o.idleMs) {
      this.revoke(idHash);
      return undefined;
    }
    let lastSeen = row.last_seen_at;
    if (now - lastSeen >= TOUCH_EVERY_MS) {
      this.db.prepare('UPDATE user_sessions SET last_seen_at = ? WHERE id_hash = ?').run(now, idHash);
      lastSeen = now;
    }
    return { idHash, userName: row.user_name, createdAt: row.created_at, expiresAt: Math.min(row.expires_at, lastSeen + this.o.idleMs), endsAt: row.expires_at, csrfToken: csrfTokenFor(id) };
  }

  revoke(idHash: string): void {
    this.db.prepare('DELETE FROM user_sessions WHERE id_hash = ?').run(idHash);
  }

  /** Ends every session of a user (removed, or their password changed), but `keep`. Returns how many ended. */
  revokeUser(userName: string, keep?: string): number {
    return this.db.prepare('DELETE FROM user_sessions WHERE user_name = ? AND id_hash != ?').run(userName, keep ?? '').changes;
  }
}
