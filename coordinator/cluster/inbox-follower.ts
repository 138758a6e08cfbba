/**
 * The leader's reading of the shared status inbox. Whichever replica received a status stored it in
 * the inbox before its PUBACK; the leader feeds every row to the engine, which ignores the copies it
 * already has by sequence. Woken at once by NOTIFY (a trigger on the inbox) and by a periodic poll,
 * the safety net for a notification lost while the listening connection reconnected.
 *
 * Ids come from a sequence and are taken at INSERT, but transactions commit in any order: a row with
 * a smaller id can become visible after a larger one was read. A wake reads past the largest id seen;
 * the periodic poll reads again from `lookbackMs` back (skipping ids already fed), longer than a
 * statement may run (30 s), so a late commit is never skipped. I/O shell; timers injected.
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '@fleet/protocol/clock';
import { StatusMessageSchema, type StatusMessage } from '@fleet/protocol/messages';
import type { SqlQueries } from '../store/sql.js';

export interface InboxFollowerOptions {
  sql: SqlQueries;
  /** Feeds one status to the engine (duplicates are the engine's to ignore). */
  feed: (status: StatusMessage) => void;
  logger: Logger;
  timers: Clock;
  /** Safety-net poll period. Default 2000 ms. */
  pollMs?: number;
  /** How far back the poll reads again for late commits. Default 60 s. */
  lookbackMs?: number;
  /** Rows per query. Default 2000. */
  pageSize?: number;
}

interface Row {
  id: number;
  message_json: string;
}

export class InboxFollower {
  /** Ids fed within the lookback, with when (timers' clock). */
  private readonly seen = new Map<number, number>();
  /** Every id at or below this was fed (or is older than the lookback). */
  private floor = 0;
  private maxSeen = 0;
  private timer: TimerHandle | undefined;
  private running: Promise<void> | undefined;
  private again: 'none' | 'wake' | 'poll' = 'none';
  private stopped = true;
  /** Statuses fed, rows that did not parse. */
  readonly counts = { fed: 0, malformed: 0 };

  constructor(private readonly o: InboxFollowerOptions) {}

  /** Starts from the beginning of the inbox: every kept status is replayed (the start-up replay). */
  async start(): Promise<void> {
    this.stopped = false;
    this.seen.clear();
    this.floor = 0;
    this.maxSeen = 0;
    await this.read('poll');
    this.schedule();
  }

  /** A notification: read what is new now. */
  wake(): void {
    if (!this.stopped) this.run('wake');
  }

  /** Stops polling; waits for a read in progress. Safe twice. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.o.timers.clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Resolves when no read is running or queued (tests). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.o.timers.setTimeout(() => {
      this.run('poll');
      this.schedule();
    }, this.o.pollMs ?? 2000);
  }

  private run(kind: 'wake' | 'poll'): void {
    if (this.running) {
      if (this.again !== 'poll') this.again = kind;
      return;
    }
    this.running = this.read(kind)
      .catch((err: unknown) => this.o.logger.warn({ err }, 'reading the status inbox failed; the next poll retries'))
      .finally(() => {
        this.running = undefined;
        const next = this.again;
        this.again = 'none';
        if (next !== 'none' && !this.stopped) this.run(next);
      });
  }

  private async read(kind: 'wake' | 'poll'): Promise<void> {
    const now = this.o.timers.now();
    const pageSize = this.o.pageSize ?? 2000;
    let after = kind === 'wake' ? this.maxSeen : this.floor;
    for (;;) {
      const rows = await this.o.sql.all<Row>('SELECT id, message_json FROM status_inbox WHERE id > ? ORDER BY id LIMIT ?', [after, pageSize]);
      for (const r of rows) {
        if (this.seen.has(r.id) || r.id <= this.floor) continue;
        this.seen.set(r.id, now);
        if (r.id > this.maxSeen) this.maxSeen = r.id;
        const status = parse(r.message_json);
        if (!status) {
          this.counts.malformed++;
          continue;
        }
        this.counts.fed++;
        this.o.feed(status);
      }
      if (rows.length < pageSize || this.stopped) break;
      after = rows[rows.length - 1]!.id;
    }
    if (kind === 'poll') this.forget(now);
  }

  /** Ids fed longer ago than the lookback are below the floor: never read again. */
  private forget(now: number): void {
    const before = now - (this.o.lookbackMs ?? 60_000);
    for (const [id, at] of this.seen) {
      if (at >= before) continue;
      if (id > this.floor) this.floor = id;
      this.seen.delete(id);
    }
  }
}

function parse(json: string): StatusMessage | undefined {
  try {
    const parsed = StatusMessageSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
