/**
 * The audit log: who did what, when, from where, to which subject, and why (operator actions, user
 * management, engine transitions). Entries appended during an admin API request record the signed-in
 * user, role and source address (audit-context.ts). `append` resolves once the entry is stored:
 * await it where the action's answer follows; where nothing can wait (an engine effect), use
 * `appendLater`, which reports a failure instead of throwing it. I/O shell (the store).
 */
import type { Sql, SqlQueries, SqlValue } from './sql.js';
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

// `user` is reserved in PostgreSQL: always quoted.
const INSERT = 'INSERT INTO audit_log (at, actor, "user", role, source, action, subject, reason, detail_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id';

export interface AuditLogOptions {
  /** Told when an `appendLater` entry could not be stored (count and log it). */
  onError?: (err: unknown, action: string) => void;
}

export class AuditLog {
  private readonly listeners = new Set<(record: AuditRecord) => void>();

  constructor(
    private readonly sql: Sql,
    private readonly options: AuditLogOptions = {},
  ) {}

  /**
   * Appends an entry; resolves once it is stored. `who` defaults to the current admin API request's
   * user when `actor` is that user; the reason is taken from `detail.reason`. With `tx`, inside that
   * transaction (an entry that must commit or roll back with the change it records).
   */
  async append(
    at: number,
    actor: string,
    action: string,
    subject: string | undefined,
    detail: Record<string, unknown> = {},
    who: AuditWho | undefined = whoFor(actor),
    tx: SqlQueries = this.sql,
  ): Promise<AuditRecord> {
    const reason = typeof detail['reason'] === 'string' ? detail['reason'] : null;
    const detailJson = JSON.stringify(detail);
    const row = await tx.get<{ id: number }>(INSERT, [at, actor, who?.user ?? null, who?.role ?? null, who?.source ?? null, action, subject ?? null, reason, detailJson]);
    const record: AuditRecord = {
      id: Number(row?.id),
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

  /**
   * Appends an entry without waiting for it (where nothing can wait); a failure goes to `onError`.
   * `who` is taken now, while the request's context is current.
   */
  appendLater(at: number, actor: string, action: string, subject: string | undefined, detail: Record<string, unknown> = {}, who: AuditWho | undefined = whoFor(actor)): void {
    this.append(at, actor, action, subject, detail, who).catch((err: unknown) => this.options.onError?.(err, action));
  }

  /** Calls `listener` with each entry appended from now on; returns the unsubscribe function. */
  subscribe(listener: (record: AuditRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Entries, newest first. */
  async list(options: AuditQuery = {}): Promise<AuditRecord[]> {
    const where: string[] = [];
    const args: SqlValue[] = [];
    const filter = (clause: string, value: string | number | undefined): void => {
      if (value === undefined) return;
      where.push(clause);
      args.push(value);
    };
    filter('subject = ?', options.subject);
    filter('"user" = ?', options.user);
    filter('id < ?', options.beforeId);
    const sql = `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    const rows = await this.sql.all<Row>(sql, [...args, options.limit ?? 100]);
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
