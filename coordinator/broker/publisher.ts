/**
 * Publishing for the coordinator: retained publishes are recorded in the store and re-published after a
 * restart (the embedded broker's retained store lives in memory); an empty payload clears a topic.
 * A wave's manifests go out together: recorded in one transaction, then published concurrently (one
 * at a time, each waiting for the broker, the last bucket of a 100 % wave waited seconds behind the
 * first while the first devices' downloads held the event loop). I/O shell.
 */
import { MultiRowInsert } from '../store/multi-row-insert.js';
import { placeholders, type Sql } from '../store/sql.js';
import type { Transport } from './transport.js';

/** Publishes in flight at once for a batch: every bucket topic of a wave, bounded for an external broker's client. */
export const PUBLISH_CONCURRENCY = 256;

const UPSERT = 'ON CONFLICT (topic) DO UPDATE SET payload = excluded.payload, qos = excluded.qos, updated_at = excluded.updated_at';
const PUT = `INSERT INTO retained_messages (topic, payload, qos, updated_at) VALUES (?, ?, ?, ?) ${UPSERT}`;
const PUT_MANY = new MultiRowInsert('INSERT INTO retained_messages (topic, payload, qos, updated_at)', 4, UPSERT);

export class Publisher {
  constructor(
    private readonly sql: Sql,
    private readonly transport: Pick<Transport, 'publish'>,
    private readonly now: () => number,
  ) {}

  /** The payload last published retained on `topic` (as recorded), if any. */
  async retained(topic: string): Promise<Buffer | undefined> {
    return (await this.sql.get<{ payload: Buffer }>('SELECT payload FROM retained_messages WHERE topic = ?', [topic]))?.payload;
  }

  /** The payloads recorded for several topics at once (topics without one are left out). */
  async retainedMany(topics: readonly string[]): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for (let i = 0; i < topics.length; i += 500) {
      const chunk = topics.slice(i, i + 500);
      const rows = await this.sql.all<{ topic: string; payload: Buffer }>(`SELECT topic, payload FROM retained_messages WHERE topic IN (${placeholders(chunk.length)})`, chunk);
      for (const r of rows) out.set(r.topic, r.payload);
    }
    return out;
  }

  /** Publishes retained (QoS 1) and remembers it. Recorded (committed) first: a crash in between re-publishes. */
  async retain(topic: string, payload: Buffer): Promise<void> {
    await this.sql.run(PUT, [topic, payload, 1, this.now()]);
    await this.transport.publish(topic, payload, { qos: 1, retain: true });
  }

  /**
   * Publishes several retained messages (QoS 1) and remembers them: all recorded in one transaction
   * first (a crash in between re-publishes them all), then published concurrently. Resolves when the
   * broker took every one; rejects with the first failure once none is in flight.
   */
  async retainMany(messages: readonly { topic: string; payload: Buffer }[]): Promise<void> {
    const now = this.now();
    // One row per topic (the last payload wins): an upsert statement may not touch a row twice.
    const latest = new Map(messages.map((m) => [m.topic, m.payload]));
    await this.sql.transaction((tx) => PUT_MANY.run(tx, [...latest].flatMap(([topic, payload]) => [topic, payload, 1, now])));
    await this.publishAll(messages.map((m) => ({ topic: m.topic, payload: m.payload })));
  }

  /** Clears several retained topics: forgotten in one transaction, then cleared concurrently. */
  async clearMany(topics: readonly string[]): Promise<void> {
    await this.sql.transaction(async (tx) => {
      for (let i = 0; i < topics.length; i += 500) {
        const chunk = topics.slice(i, i + 500);
        await tx.run(`DELETE FROM retained_messages WHERE topic IN (${placeholders(chunk.length)})`, chunk);
      }
    });
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
    await this.sql.run('DELETE FROM retained_messages WHERE topic = ?', [topic]);
    await this.transport.publish(topic, Buffer.alloc(0), { qos: 1, retain: true });
  }

  async send(topic: string, payload: Buffer, qos: 0 | 1 = 1): Promise<void> {
    await this.transport.publish(topic, payload, { qos, retain: false });
  }

  /** Re-publishes every recorded retained message (after start). Returns how many. */
  async restore(): Promise<number> {
    const rows = await this.sql.all<{ topic: string; payload: Buffer }>('SELECT topic, payload FROM retained_messages');
    await this.publishAll(rows);
    return rows.length;
  }

  /** Recorded retained topics starting with `prefix`, sorted. */
  async retainedTopics(prefix = ''): Promise<string[]> {
    // Prefix test by substring, not LIKE: a topic's `_` and `%` are literal, and LIKE's case rules differ per dialect.
    const rows = await this.sql.all<{ topic: string }>('SELECT topic FROM retained_messages WHERE SUBSTR(topic, 1, ?) = ? ORDER BY topic', [prefix.length, prefix]);
    return rows.map((r) => r.topic);
  }
}
