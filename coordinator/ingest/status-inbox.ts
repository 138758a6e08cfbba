/**
 * The status inbox: device statuses are stored before their QoS 1 PUBACK is sent, and replayed to the
 * engine at start-up. The engine persists a status in its own queue a few milliseconds later; a crash
 * in that gap would otherwise lose an acknowledged status. Entries are kept for a bounded time.
 *
 * Statuses that arrive in the same turn of the event loop are committed together (group commit, at
 * the end of the turn, in one transaction), and each `record` resolves once its row is committed: a
 * wave of devices reporting at once paid a commit per status. Statuses arriving while a commit is in
 * flight (a PostgreSQL round trip) wait for it and form the next group. I/O shell (the store).
 */
import { StatusMessageSchema, type StatusMessage } from '@fleet/protocol/messages';
import { MultiRowInsert } from '../store/multi-row-insert.js';
import type { Sql, SqlValue } from '../store/sql.js';

/** How long (clock time) entries are kept for replay. Default 10 minutes. */
export const DEFAULT_INBOX_RETENTION_MS = 10 * 60_000;

const PUT = new MultiRowInsert('INSERT INTO status_inbox (device_id, deployment_id, seq, received_at, message_json)', 5);

interface Waiting {
  status: StatusMessage;
  receivedAt: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class StatusInbox {
  private waiting: Waiting[] = [];
  /** The group commit in flight, if any: the next group starts after it. */
  private committing: Promise<void> | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly retentionMs = DEFAULT_INBOX_RETENTION_MS,
  ) {}

  /** Stores a status; resolves once it is committed (rejects if the commit failed: no PUBACK then). */
  record(status: StatusMessage, receivedAt: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ status, receivedAt, resolve, reject });
      if (this.waiting.length === 1 && !this.committing) setImmediate(() => void this.commit());
    });
  }

  private async commit(): Promise<void> {
    const rows = this.waiting;
    this.waiting = [];
    const done = this.insert(rows).then(
      () => rows.forEach((r) => r.resolve()),
      (err: unknown) => rows.forEach((r) => r.reject(err)),
    );
    this.committing = done;
    await done;
    this.committing = null;
    // What arrived during the commit goes out as the next group.
    if (this.waiting.length) setImmediate(() => void this.commit());
  }

  private async insert(rows: readonly Waiting[]): Promise<void> {
    const params = rows.flatMap((r): SqlValue[] => [r.status.deviceId, r.status.deploymentId, r.status.seq, r.receivedAt, JSON.stringify(r.status)]);
    await this.sql.transaction((tx) => PUT.run(tx, params));
  }

  /** Stored statuses in arrival order (malformed rows are skipped). */
  async pending(): Promise<StatusMessage[]> {
    const rows = await this.sql.all<{ message_json: string }>('SELECT message_json FROM status_inbox ORDER BY id');
    const out: StatusMessage[] = [];
    for (const r of rows) {
      const parsed = StatusMessageSchema.safeParse(JSON.parse(r.message_json));
      if (parsed.success) out.push(parsed.data);
    }
    return out;
  }

  /** Deletes entries older than the retention; returns how many. */
  async prune(now: number): Promise<number> {
    return (await this.sql.run('DELETE FROM status_inbox WHERE received_at < ?', [now - this.retentionMs])).changes;
  }
}
