/**
 * Webhooks and their deliveries in fleet.db (schema versions 700–799, listed in
 * coordinator/store/migration-list.ts): each webhook's URL, events and signing secret; each event to
 * each webhook as a delivery with the exact body sent on every attempt, its state (pending, delivered,
 * failed), when it is next due, and every attempt (HTTP status, latency, error). A pending delivery
 * survives a restart and is sent again. Finished deliveries beyond the newest
 * `KEEP_DELIVERIES` per webhook are deleted. I/O shell (the Sql store: SQLite or PostgreSQL).
 */
import type { Migration, PostgresMigration } from '../store/migrations.js';
import type { Sql } from '../store/sql.js';
import type { WebhookEventType } from '@fleet/protocol/webhooks';

export const WEBHOOK_MIGRATIONS: Migration[] = [
  {
    version: 700,
    name: 'webhooks',
    up(db) {
      db.exec(`
        CREATE TABLE webhooks (
          id TEXT PRIMARY KEY,
          url TEXT NOT NULL,
          events_json TEXT NOT NULL,
          secret TEXT NOT NULL,
          description TEXT,
          created_at INTEGER NOT NULL,
          created_by TEXT NOT NULL
        );
        CREATE TABLE webhook_deliveries (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
          event_id TEXT NOT NULL,
          event_type TEXT NOT NULL,
          body TEXT NOT NULL,
          status TEXT NOT NULL,
          attempts INTEGER NOT NULL DEFAULT 0,
          next_attempt_at INTEGER,
          created_at INTEGER NOT NULL,
          finished_at INTEGER,
          last_status INTEGER,
          last_error TEXT,
          last_latency_ms INTEGER
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
        CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
        CREATE TABLE webhook_attempts (
          delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
          attempt INTEGER NOT NULL,
          at INTEGER NOT NULL,
          status INTEGER,
          latency_ms INTEGER NOT NULL,
          error TEXT,
          PRIMARY KEY (delivery_id, attempt)
        )`);
    },
  },
];

/** The same tables on PostgreSQL, at today's shape. */
export const WEBHOOK_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 700,
    name: 'webhooks',
    sql: `
      CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        events_json TEXT NOT NULL,
        secret TEXT NOT NULL,
        description TEXT,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL
      );
      CREATE TABLE webhook_deliveries (
        id BIGSERIAL PRIMARY KEY,
        webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        next_attempt_at BIGINT,
        created_at BIGINT NOT NULL,
        finished_at BIGINT,
        last_status BIGINT,
        last_error TEXT,
        last_latency_ms BIGINT
      );
      CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
      CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
      CREATE TABLE webhook_attempts (
        delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
        attempt BIGINT NOT NULL,
        at BIGINT NOT NULL,
        status BIGINT,
        latency_ms BIGINT NOT NULL,
        error TEXT,
        PRIMARY KEY (delivery_id, attempt)
      );
    `,
  },
];

/** Finished deliveries kept per webhook (pending ones are always kept). */
export const KEEP_DELIVERIES = 500;

export interface WebhookRecord {
  id: string;
  url: string;
  events: WebhookEventType[];
  secret: string;
  description: string | null;
  createdAt: number;
  createdBy: string;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface DeliveryRecord {
  id: number;
  webhookId: string;
  eventId: string;
  eventType: string;
  body: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: number | null;
  createdAt: number;
  finishedAt: number | null;
  lastStatus: number | null;
  lastError: string | null;
  lastLatencyMs: number | null;
}

export interface AttemptRecord {
  attempt: number;
  at: number;
  status: number | null;
  latencyMs: number;
  error: string | null;
}

interface DeliveryRow {
  id: number;
  webhook_id: string;
  event_id: string;
  event_type: string;
  body: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: number | null;
  created_at: number;
  finished_at: number | null;
  last_status: number | null;
  last_error: string | null;
  last_latency_ms: number | null;
}

const toDelivery = (r: DeliveryRow): DeliveryRecord => ({
  id: r.id,
  webhookId: r.webhook_id,
  eventId: r.event_id,
  eventType: r.event_type,
  body: r.body,
  status: r.status,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  createdAt: r.created_at,
  finishedAt: r.finished_at,
  lastStatus: r.last_status,
  lastError: r.last_error,
  lastLatencyMs: r.last_latency_ms,
});

interface WebhookRow {
  id: string;
  url: string;
  events_json: string;
  secret: string;
  description: string | null;
  created_at: number;
  created_by: string;
}

const toWebhook = (r: WebhookRow): WebhookRecord => ({
  id: r.id,
  url: r.url,
  events: JSON.parse(r.events_json) as WebhookEventType[],
  secret: r.secret,
  description: r.description,
  createdAt: r.created_at,
  createdBy: r.created_by,
});

export class WebhookStore {
  constructor(private readonly sql: Sql) {}

  async addWebhook(w: WebhookRecord): Promise<void> {
    await this.sql.run('INSERT INTO webhooks (id, url, events_json, secret, description, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)', [
      w.id,
      w.url,
      JSON.stringify(w.events),
      w.secret,
      w.description,
      w.createdAt,
      w.createdBy,
    ]);
  }

  async webhook(id: string): Promise<WebhookRecord | undefined> {
    const r = await this.sql.get<WebhookRow>('SELECT * FROM webhooks WHERE id = ?', [id]);
    return r ? toWebhook(r) : undefined;
  }

  async webhooks(): Promise<WebhookRecord[]> {
    return (await this.sql.all<WebhookRow>('SELECT * FROM webhooks ORDER BY created_at, id')).map(toWebhook);
  }

  /** Removes a webhook with its deliveries; false when there was none. */
  async removeWebhook(id: string): Promise<boolean> {
    return (await this.sql.run('DELETE FROM webhooks WHERE id = ?', [id])).changes > 0;
  }

  /** Stores one event for each webhook given, due at `dueAt` (null: never by the queue). Returns the delivery ids. */
  enqueue(webhookIds: readonly string[], event: { id: string; type: string; body: string }, now: number, dueAt: number | null): Promise<number[]> {
    return this.sql.transaction(async (tx) => {
      const ids: number[] = [];
      for (const w of webhookIds) {
        const row = await tx.get<{ id: number }>(
          `INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, body, status, attempts, next_attempt_at, created_at)
           VALUES (?, ?, ?, ?, 'pending', 0, ?, ?) RETURNING id`,
          [w, event.id, event.type, event.body, dueAt, now],
        );
        ids.push(row!.id);
      }
      return ids;
    });
  }

  async delivery(id: number): Promise<DeliveryRecord | undefined> {
    const r = await this.sql.get<DeliveryRow>('SELECT * FROM webhook_deliveries WHERE id = ?', [id]);
    return r ? toDelivery(r) : undefined;
  }

  /** Pending deliveries due at `now`, oldest first. */
  async due(now: number, limit: number): Promise<DeliveryRecord[]> {
    const rows = await this.sql.all<DeliveryRow>(
      "SELECT * FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
      [now, limit],
    );
    return rows.map(toDelivery);
  }

  /** The earliest time a pending delivery is due, if any. */
  async nextDueAt(): Promise<number | undefined> {
    return (await this.sql.get<{ at: number | null }>("SELECT MIN(next_attempt_at) AS at FROM webhook_deliveries WHERE status = 'pending'"))?.at ?? undefined;
  }

  /**
   * Takes a due delivery for an attempt until `until`: it is not due again before then, so a pump does
   * not start it twice, and a coordinator that dies mid-attempt sends it again after a restart. False
   * when it is no longer due at `now` (another coordinator on the same store took it first).
   */
  async lease(id: number, now: number, until: number): Promise<boolean> {
    const taken = await this.sql.run("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ? AND status = 'pending' AND next_attempt_at <= ?", [until, id, now]);
    return taken.changes === 1;
  }

  /** Records an attempt and the delivery's new state, in one transaction. */
  recordAttempt(
    d: Pick<DeliveryRecord, 'id' | 'webhookId'>,
    a: AttemptRecord,
    next: { status: DeliveryStatus; nextAttemptAt: number | null },
  ): Promise<void> {
    return this.sql.transaction(async (tx) => {
      await tx.run(
        `INSERT INTO webhook_attempts (delivery_id, attempt, at, status, latency_ms, error) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at, status = excluded.status, latency_ms = excluded.latency_ms, error = excluded.error`,
        [d.id, a.attempt, a.at, a.status, a.latencyMs, a.error],
      );
      const finishedAt = next.status === 'pending' ? null : a.at + a.latencyMs;
      await tx.run(
        `UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, finished_at = ?, last_status = ?, last_error = ?, last_latency_ms = ?
         WHERE id = ?`,
        [next.status, a.attempt, next.nextAttemptAt, finishedAt, a.status, a.error, a.latencyMs, d.id],
      );
      if (next.status !== 'pending') {
        await tx.run(
          `DELETE FROM webhook_deliveries WHERE webhook_id = ? AND status != 'pending' AND id <= (
             SELECT id FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
          [d.webhookId, d.webhookId, KEEP_DELIVERIES],
        );
      }
    });
  }

  async attempts(deliveryId: number): Promise<AttemptRecord[]> {
    const rows = await this.sql.all<{ attempt: number; at: number; status: number | null; latency_ms: number; error: string | null }>(
      'SELECT attempt, at, status, latency_ms, error FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt',
      [deliveryId],
    );
    return rows.map((r) => ({ attempt: r.attempt, at: r.at, status: r.status, latencyMs: r.latency_ms, error: r.error }));
  }

  /** The newest deliveries of a webhook, newest first. */
  async recent(webhookId: string, limit: number): Promise<DeliveryRecord[]> {
    return (await this.sql.all<DeliveryRow>('SELECT * FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?', [webhookId, limit])).map(toDelivery);
  }

  async counts(webhookId: string): Promise<Record<DeliveryStatus, number>> {
    const out: Record<DeliveryStatus, number> = { pending: 0, delivered: 0, failed: 0 };
    for (const r of await this.sql.all<{ status: DeliveryStatus; n: number }>('SELECT status, COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = ? GROUP BY status', [webhookId])) {
      out[r.status] = r.n;
    }
    return out;
  }
}
