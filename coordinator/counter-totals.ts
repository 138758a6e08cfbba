/**
 * Counter totals that survive a restart: the operator must still see, after a crash or an upgrade,
 * that telemetry was dropped or lost, messages refused or bad. The in-memory Counters' increments are
 * added to `counter_totals` in fleet.db every few seconds (housekeeping) and at stop, so a SIGKILL
 * loses at most the last few seconds of increments. I/O shell (SQLite).
 */
import type { Db } from './store/db.js';
import type { Migration } from './store/migrations.js';
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

export class CounterTotals {
  private readonly upsert;
  private readonly selectAll;

  constructor(
    private readonly db: Db,
    private readonly counters: Counters,
    private readonly now: () => number,
  ) {
    this.upsert = db.prepare(`INSERT INTO counter_totals (name, total, first_at, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT(name) DO UPDATE SET total = total + excluded.total, updated_at = excluded.updated_at`);
    this.selectAll = db.prepare('SELECT name, total, first_at FROM counter_totals');
  }

  /** Adds the increments since the last flush to the stored totals, in one transaction. */
  flush(): void {
    const increments = this.counters.takePending();
    if (increments.size === 0) return;
    const at = this.now();
    try {
      this.db.transaction(() => {
        for (const [name, by] of increments) this.upsert.run(name, by, at, at);
      })();
    } catch (err) {
      this.counters.restore(increments);
      throw err;
    }
  }

  /** Every counter over every run on this data directory (stored totals plus what is not yet stored). */
  totals(): { totals: Record<string, number>; since: number | null } {
    const rows = this.selectAll.all() as { name: string; total: number; first_at: number }[];
    const out = new Map<string, number>();
    let since: number | null = null;
    for (const r of rows) {
      out.set(r.name, r.total);
      if (since === null || r.first_at < since) since = r.first_at;
    }
    for (const [name, by] of this.counters.pending()) out.set(name, (out.get(name) ?? 0) + by);
    return { totals: sortedRecord(out), since };
  }
}
