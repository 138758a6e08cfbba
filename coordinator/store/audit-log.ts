/**
 * The audit log: who did what, when, from where, to which subject, and why (operator actions, user
 * management, engine transitions). Entries appended during an admin API request record the signed-in
 * user, role and source address (audit-context.ts). I/O shell (SQLite).
 */
import type { Db } from './db.js';
import { whoFor, type AuditWho } from './audit-context.js';

export interface AuditRecord {
  id: number;
  at: number;
  /** `alice`, `operator:alice` (engine entries for a person's action), `gate`, `engine`, `coordinator`. */
  actor: string;
  /** The signed-in user behind the entry; null for the coordinator's own entries. */
  user: string | null;
  role: string | null;
  /** Remote address of the request. */
  source: string | null;
  action: string;
  subject: string | null;
  /** The reason the user gave, if any. */
  reason: string | null;
  detail: Record<string, unknown>;
}

export interface AuditQuery {
  /** Newest first, at most this many. Default 100. */
  limit?: number;
  subject?: string;
  user?: string;
  /** Entries older than this id (paging). */
  beforeId?: number;
}

interface Row {
  id: number;
  at: number;
  actor: string;
  user: string | null;
  role: string | null;
  source: string | null;
  action: string;
  subject: string | null;
  reason: string | null;
  detail_json: string;
}

export class AuditLog {
  private readonly insert;
  private readonly listeners = new Set<(record: AuditRecord) => void>();

  constructor(private readonly db: Db) {
    this.insert = db.prepare('INSERT INTO audit_log (at, actor, user, role, source, action, subject, reason, detail_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
  }

  /**
   * Appends an entry. `who` defaults to the current admin API request's user when `actor` is that
   * user; the reason is taken from `detail.reason`.
   */
  append(at: number, actor: string, action: string, subject: string | undefined, detail: Record<string, unknown> = {}, who: AuditWho | undefined = whoFor(actor)): AuditRecord {
    const reason = typeof detail['reason'] === 'string' ? detail['reason'] : null;
    const detailJson = JSON.stringify(detail);
    const { lastInsertRowid } = this.insert.run(at, actor, who?.user ?? null, who?.role ?? null, who?.source ?? null, action, subject ?? null, reason, detailJson);
    const record: AuditRecord = {
      id: Number(lastInsertRowid),
      at,
      actor,
      user: who?.user ?? null,
      role: who?.role ?? null,
      source: who?.source ?? null,
      action,
      subject: subject ?? null,
      reason,
      detail,
    };
    for (const listener of this.listeners) listener(record);
    return record;
  }

  /** Calls `listener` with each entry appended from now on; returns the unsubscribe function. */
  subscribe(listener: (record: AuditRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  list(options: AuditQuery = {}): AuditRecord[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    const filter = (clause: string, value: string | number | undefined): void => {
      if (value === undefined) return;
      where.push(clause);
      args.push(value);
    };
    filter('subject = ?', options.subject);
    filter('user = ?', options.user);
    filter('id < ?', options.beforeId);
    const sql = `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    const rows = this.db.prepare(sql).all(...args, options.limit ?? 100) as Row[];
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      actor: r.actor,
      user: r.user,
      role: r.role,
      source: r.source,
      action: r.action,
      subject: r.subject,
      reason: r.reason,
      detail: JSON.parse(r.detail_json) as Record<string, unknown>,
    }));
  }
}
