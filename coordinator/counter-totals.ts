/**
 * Counter totals that survive a restart: the operator must still see, after a crash or an upgrade,
 * that telemetry was dropped or lost, messages refused or bad. The in-memory Counters' increments are
 * added to `counter_totals` in the store every few seconds (housekeeping) and at stop, so a SIGKILL
 * loses at most the last few seconds of increments. The stored totals are read once at start and kept
 * in memory with what this process has added since, so reading them (metrics) costs no round trip;
 * on a store shared by several coordinators the stored row is the sum of all of them, and this
 * process shows what it read at start plus its own. I/O shell (the store).
 */
import type { Migration, PostgresMigration } from './store/migrations.js';
import type { Sql } from './store/sql.js';
import { sortedRecord, type Counters } from './metrics.js';

export const COUNTER_MIGRATIONS: Migration[] = [
  {
    version: 60,
    name: 'counter-totals',
    up(db) {
      db.exec(`
        CREATE TABLE counter_totals (
          name TEXT PRIMARY KEY,
          total INTEGER NOT NULL,
          first_at INTEGER NOT NULL,
          updated_at INTEGER NOT NULL
        )`);
    },
  },
];

/** The same table on PostgreSQL (versions 60–69). */
export const COUNTER_POSTGRES_MIGRATIONS: PostgresMigration[] = [
  {
    version: 60,
    name: 'counter-totals',
    sql: `
      CREATE TABLE counter_totals (
        name TEXT PRIMARY KEY,
        total BIGINT NOT NULL,
        first_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      )`,
  },
];

const UPSERT = `INSERT INTO counter_totals (name, total, first_at, updated_at) VALUES (?, ?, ?, ?)
  ON CONFLICT (name) DO UPDATE SET total = counter_totals.total + excluded.total, updated_at = excluded.updated_at`;

export class CounterTotals {
  /** Stored totals as read at start plus every flush since. */
  private readonly stored = new Map<string, number>();
  private since: number | null = null;
  /** One flush at a time: increments taken by one are not stored twice by the next. */
  private flushing: Promise<void> | undefined;

  private constructor(
    private readonly sql: Sql,
    private readonly counters: Counters,
    private readonly now: () => number,
  ) {}

  /** Reads the stored totals. */
  static async load(sql: Sql, counters: Counters, now: () => number): Promise<CounterTotals> {
    const t = new CounterTotals(sql, counters, now);
    for (const r of await sql.all<{ name: string; total: number; first_at: number }>('SELECT name, total, first_at FROM counter_totals')) {
      t.stored.set(r.name, r.total);
      if (t.since === null || r.first_at < t.since) t.since = r.first_at;
    }
    return t;
  }

  /** Adds the increments since the last flush to the stored totals, in one transaction. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    const increments = this.counters.takePending();
    if (increments.size === 0) return;
    const at = this.now();
    const run = this.sql.transaction(async (tx) => {
      for (const [name, by] of increments) await tx.run(UPSERT, [name, by, at, at]);
    });
    this.flushing = run.then(
      () => undefined,
      () => undefined,
    );
    try {
      await run;
    } catch (err) {
      this.counters.restore(increments);
      throw err;
    } finally {
      this.flushing = undefined;
    }
    for (const [name, by] of increments) this.stored.set(name, (this.stored.get(name) ?? 0) + by);
    this.since ??= at;
  }

  /** Every counter over every run on this store (stored totals plus what is not yet stored). */
  totals(): { totals: Record<string, number>; since: number | null } {
    const out = new Map(this.stored);
    for (const [name, by] of this.counters.pending()) out.set(name, (out.get(name) ?? 0) + by);
    return { totals: sortedRecord(out), since: this.since };
  }
}
