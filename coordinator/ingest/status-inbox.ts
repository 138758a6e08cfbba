/**
 * The status inbox: device statuses are stored before their QoS 1 PUBACK is sent, and replayed to the
 * engine at start-up. The engine persists a status in its own queue a few milliseconds later; a crash
 * in that gap would otherwise lose an acknowledged status. Entries are kept for a bounded time.
 *
 * Statuses that arrive in the same turn of the event loop are committed together (group commit, at
 * the end of the turn), and each `record` resolves once its row is committed: a wave of devices
 * reporting at once paid a commit per status. I/O shell (SQLite).
 */
import { StatusMessageSchema, type StatusMessage } from '@fleet/protocol/messages';
import type { Db } from '../store/db.js';

/** How long (clock time) entries are kept for replay. Default 10 minutes. */
export const DEFAULT_INBOX_RETENTION_MS = 10 * 60_000;

interface Waiting {
  status: StatusMessage;
  receivedAt: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class StatusInbox {
  private readonly insert;
  private readonly pruneStmt;
  private readonly insertAll;
  private waiting: Waiting[] = [];

  constructor(
    private readonly db: Db,
    private readonly retentionMs = DEFAULT_INBOX_RETENTION_MS,
  ) {
    this.insert = db.prepare('INSERT INTO status_inbox (device_id, deployment_id, seq, received_at, message_json) VALUES (?, ?, ?, ?, ?)');
    this.pruneStmt = db.prepare('DELETE FROM status_inbox WHERE received_at < ?');
    this.insertAll = db.transaction((rows: readonly Waiting[]) => {
      for (const r of rows) this.insert.run(r.status.deviceId, r.status.deploymentId, r.status.seq, r.receivedAt, JSON.stringify(r.status));
    });
  }

  /** Stores a status; resolves once it is committed (rejects if the commit failed: no PUBACK then). */
  record(status: StatusMessage, receivedAt: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ status, receivedAt, resolve, reject });
      if (this.waiting.length === 1) setImmediate(() => this.commit());
    });
  }

  private commit(): void {
    const rows = this.waiting;
    this.waiting = [];
    try {
      this.insertAll(rows);
    } catch (err) {
      for (const r of rows) r.reject(err);
      return;
    }
    for (const r of rows) r.resolve();
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
