/**
 * Publishing for the coordinator: retained publishes are recorded in SQLite and re-published after a
 * restart (the embedded broker's retained store lives in memory); an empty payload clears a topic.
 * A wave's manifests go out together: recorded in one transaction, then published concurrently (one
 * at a time, each waiting for the broker, the last bucket of a 100 % wave waited seconds behind the
 * first while the first devices' downloads held the event loop). I/O shell.
 */
import type { Db } from '../store/db.js';
import type { Transport } from './transport.js';

/** Publishes in flight at once for a batch: every bucket topic of a wave, bounded for an external broker's client. */
export const PUBLISH_CONCURRENCY = 256;

export class Publisher {
  private readonly put;
  private readonly del;
  private readonly get;

  constructor(
    private readonly db: Db,
    private readonly transport: Transport,
    private readonly now: () => number,
  ) {
    this.put = db.prepare(`INSERT INTO retained_messages (topic, payload, qos, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT(topic) DO UPDATE SET payload = excluded.payload, qos = excluded.qos, updated_at = excluded.updated_at`);
    this.del = db.prepare('DELETE FROM retained_messages WHERE topic = ?');
    this.get = db.prepare('SELECT payload FROM retained_messages WHERE topic = ?');
  }

  /** The payload last published retained on `topic` (as recorded), if any. */
  retained(topic: string): Buffer | undefined {
    return (this.get.get(topic) as { payload: Buffer } | undefined)?.payload;
  }

  /** Publishes retained (QoS 1) and remembers it. Recording first: a crash in between re-publishes. */
  async retain(topic: string, payload: Buffer): Promise<void> {
    this.put.run(topic, payload, 1, this.now());
    await this.transport.publish(topic, payload, { qos: 1, retain: true });
  }

  /**
   * Publishes several retained messages (QoS 1) and remembers them: all recorded in one transaction
   * first (a crash in between re-publishes them all), then published concurrently. Resolves when the
   * broker took every one; rejects with the first failure once none is in flight.
   */
  async retainMany(messages: readonly { topic: string; payload: Buffer }[]): Promise<void> {
    const now = this.now();
    this.db.transaction(() => {
      for (const m of messages) this.put.run(m.topic, m.payload, 1, now);
    })();
    await this.publishAll(messages.map((m) => ({ topic: m.topic, payload: m.payload })));
  }

  /** Clears several retained topics: forgotten in one transaction, then cleared concurrently. */
  async clearMany(topics: readonly string[]): Promise<void> {
    this.db.transaction(() => {
      for (const t of topics) this.del.run(t);
    })();
    const empty = Buffer.alloc(0);
    await this.publishAll(topics.map((topic) => ({ topic, payload: empty })));
  }

  /** Retained QoS 1 publishes, at most PUBLISH_CONCURRENCY in flight. */
  private async publishAll(messages: readonly { topic: string; payload: Buffer }[]): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < messages.length) {
        const m = messages[next++]!;
        await this.transport.publish(m.topic, m.payload, { qos: 1, retain: true });
      }
    };
    const results = await Promise.allSettled(Array.from({ length: Math.min(PUBLISH_CONCURRENCY, messages.length) }, worker));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Clears a retained topic (empty retained payload). */
  async clear(topic: string): Promise<void> {
    this.del.run(topic);
    await this.transport.publish(topic, Buffer.alloc(0), { qos: 1, retain: true });
  }

  async send(topic: string, payload: Buffer, qos: 0 | 1 = 1): Promise<void> {
    await this.transport.publish(topic, payload, { qos, retain: false });
  }

  /** Re-publishes every recorded retained message (after start). Returns how many. */
  async restore(): Promise<number> {
    const rows = this.db.prepare('SELECT topic, payload FROM retained_messages').all() as { topic: string; payload: Buffer }[];
    await this.publishAll(rows);
    return rows.length;
  }

  retainedTopics(prefix = ''): string[] {
    return (this.db.prepare('SELECT topic FROM retained_messages WHERE topic LIKE ? ORDER BY topic').all(`${prefix}%`) as { topic: string }[]).map(
      (r) => r.topic,
    );
  }
}
