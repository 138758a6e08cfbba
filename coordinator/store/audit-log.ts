/** The audit log: who did what, when, to which subject (operator actions, engine transitions). */
import type { Db } from './db.js';

export interface AuditRecord {
  id: number;
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  detail: Record<string, unknown>;
}

export class AuditLog {
  private readonly insert;
  private readonly listeners = new Set<(record: AuditRecord) => void>();

  constructor(private readonly db: Db) {
    this.insert = db.prepare('INSERT INTO audit_log (at, actor, action, subject, detail_json) VALUES (?, ?, ?, ?, ?)');
  }

  append(at: number, actor: string, action: string, subject: string | undefined, detail: Record<string, unknown> = {}): void {
    const { lastInsertRowid } = this.insert.run(at, actor, action, subject ?? null, JSON.stringify(detail));
    if (this.listeners.size === 0) return;
    const record: AuditRecord = { id: Number(lastInsertRowid), at, actor, action, subject: subject ?? null, detail };
    for (const l of this.listeners) l(record);
  }

  /** Told of every entry once it is stored (the console's live feed); returns the unsubscribe. */
  subscribe(listener: (record: AuditRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  list(options: { limit?: number; subject?: string } = {}): AuditRecord[] {
    const limit = options.limit ?? 100;
    const rows = (options.subject !== undefined
      ? this.db.prepare('SELECT * FROM audit_log WHERE subject = ? ORDER BY id DESC LIMIT ?').all(options.subject, limit)
      : this.db.prepare('SELECT * FROM audit_log ORDER BY id DESC LIMIT ?').all(limit)) as {
      id: number;
      at: number;
      actor: string;
      action: string;
      subject: string | null;
      detail_json: string;
    }[];
    return rows.map((r) => ({ id: r.id, at: r.at, actor: r.actor, action: r.action, subject: r.subject, detail: JSON.parse(r.detail_json) as Record<string, unknown> }));
  }
}
