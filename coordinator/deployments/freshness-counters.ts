/**
 * The coordinator's freshness counters, kept in SQLite: every manifest it signs gets the next
 * `metadataVersion` and every command the next `seq` (docs/freshness.md). Each value is
 * max(last + 1, now in ms), so the counters survive restarts, never go backwards when the clock does,
 * and order with manifests an operator signed offline at a known time. One counter per kind for the
 * whole coordinator: a device only compares values it receives, so one sequence is monotonic per
 * device as well. I/O (SQLite) around the pure `nextFreshness`.
 */
import type { Db } from '../store/db.js';
import type { Migration } from '../store/migrations.js';
import { nextFreshness } from '@fleet/firmware/manifest';

/** Schema versions 300–399 (listed in coordinator/store/migration-list.ts). */
export const FRESHNESS_MIGRATIONS: readonly Migration[] = [
  {
    version: 300,
    name: 'freshness-counters',
    up(db) {
      db.exec(`
        CREATE TABLE freshness_counters (
          name TEXT PRIMARY KEY,
          value INTEGER NOT NULL
        );
      `);
    },
  },
];

/** `manifest`: metadataVersion of signed manifests; `command`: seq of signed commands. */
export type FreshnessCounterName = 'manifest' | 'command';

export class FreshnessCounters {
  private readonly get;
  private readonly put;

  constructor(
    private readonly db: Db,
    private readonly now: () => number,
  ) {
    this.get = db.prepare('SELECT value FROM freshness_counters WHERE name = ?');
    this.put = db.prepare(`INSERT INTO freshness_counters (name, value) VALUES (?, ?)
      ON CONFLICT(name) DO UPDATE SET value = excluded.value WHERE excluded.value > freshness_counters.value`);
  }

  /** The last value issued (0 before the first). */
  current(name: FreshnessCounterName): number {
    return (this.get.get(name) as { value: number } | undefined)?.value ?? 0;
  }

  /** The next value, recorded before it is returned (a crash never reissues one). */
  next(name: FreshnessCounterName): number {
    return this.db.transaction(() => {
      const value = nextFreshness(this.current(name), this.now());
      this.put.run(name, value);
      return value;
    })();
  }

  /** Raises the counter to at least `value` (a manifest signed offline was deployed). */
  observe(name: FreshnessCounterName, value: number): void {
    this.put.run(name, Math.floor(value));
  }
}
