/**
 * The status inbox: device statuses are stored (one small SQLite write) before their QoS 1 PUBACK is
 * sent, and replayed to the engine at start-up. The engine persists a status in its own queue a few
 * milliseconds later; a crash in that gap would otherwise lose an acknowledged status. Entries are
 * kept for a bounded time. I/O shell (SQLite).
 */
import { StatusMessageSchema, type StatusMessage } from '@fleet/protocol/messages';
import type { Db } from '../store/db.js';

/** How long (clock time) entries are kept for replay. Default 10 minutes. */
export const DEFAULT_INBOX_RETENTION_MS = 10 * 60_000;

export class StatusInbox {
  private readonly insert;
  private readonly pruneStmt;

  constructor(
    private readonly db: Db,
    private readonly retentionMs = DEFAULT_INBOX_RETENTION_MS,
  ) {
    this.insert = db.prepare('INSERT INTO status_inbox (device_id, deployment_id, seq, received_at, message_json) VALUES (?, ?, ?, ?, ?)');
    this.pruneStmt = db.prepare('DELETE FROM status_inbox WHERE received_at < ?');
  }

  record(status: StatusMessage, receivedAt: number): void {
    this.insert.run(status.deviceId, status.deploymentId, status.seq, receivedAt, JSON.stringify(status));
  }

  /** Stored statuses in arrival order (malformed rows are skipped). */
  pending(): StatusMessage[] {
    const rows = this.db.prepare('SELECT message_json FROM status_inbox ORDER BY id').all() as { message_json: string }[];
    const out: StatusMessage[] = [];
    for (const r of rows) {
      const parsed = StatusMessageSchema.safeParse(JSON.parse(r.message_json));
      if (parsed.success) out.push(parsed.data);
    }
    return out;
  }

  prune(now: number): number {
    return this.pruneStmt.run(now - this.retentionMs).changes;
  }
}
