/**
 * Publishing for the coordinator: retained publishes are recorded in SQLite and re-published after a
 * restart (the embedded broker's retained store lives in memory); an empty payload clears a topic.
 * I/O shell.
 */
import type { Db } from '../store/db.js';
import type { Transport } from './transport.js';

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
    for (const r of rows) await this.transport.publish(r.topic, r.payload, { qos: 1, retain: true });
    return rows.length;
  }

  retainedTopics(prefix = ''): string[] {
    return (this.db.prepare('SELECT topic FROM retained_messages WHERE topic LIKE ? ORDER BY topic').all(`${prefix}%`) as { topic: string }[]).map(
      (r) => r.topic,
    );
  }
}
