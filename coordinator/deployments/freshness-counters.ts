/**
 * The coordinator's freshness counters, kept in the store: every manifest it signs gets the next
 * `metadataVersion` and every command the next `seq` (docs/freshness.md). Each value is
 * max(last + 1, now in ms) (firmware/manifest.ts nextFreshness), so the counters survive restarts,
 * never go backwards when the clock does, and order with manifests an operator signed offline at a
 * known time. One counter per kind for the whole coordinator: a device only compares values it
 * receives, so one sequence is monotonic per device as well. I/O (the store).
 *
 * `next` is one upsert that returns the new value: the value is durable before anyone can sign with
 * it, and coordinators sharing one PostgreSQL database never issue the same value twice.
 */
import type { Migration, PostgresMigration } from '../store/migrations.js';
import type { Sql } from '../store/sql.js';

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

/** The same table on PostgreSQL. */
export const FRESHNESS_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 300,
    name: 'freshness-counters',
    sql: 'CREATE TABLE freshness_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);',
  },
];

/** `manifest`: metadataVersion of signed manifests; `command`: seq of signed commands. */
export type FreshnessCounterName = 'manifest' | 'command';

export class FreshnessCounters {
  constructor(
    private readonly sql: Sql,
    private readonly now: () => number,
  ) {}

  /** The last value issued (0 before the first). */
  async current(name: FreshnessCounterName): Promise<number> {
    return (await this.sql.get<{ value: number }>('SELECT value FROM freshness_counters WHERE name = ?', [name]))?.value ?? 0;
  }

  /** The next value, committed before it is returned (a crash never reissues one). */
  async next(name: FreshnessCounterName): Promise<number> {
    const row = await this.sql.get<{ value: number }>(
      `INSERT INTO freshness_counters (name, value) VALUES (?, ?)
       ON CONFLICT (name) DO UPDATE SET value = CASE WHEN excluded.value > freshness_counters.value THEN excluded.value ELSE freshness_counters.value + 1 END
       RETURNING value`,
      [name, Math.max(1, Math.floor(this.now()))],
    );
    return row!.value;
  }

  /** Raises the counter to at least `value` (a manifest signed offline was deployed). */
  async observe(name: FreshnessCounterName, value: number): Promise<void> {
    await this.sql.run(
      `INSERT INTO freshness_counters (name, value) VALUES (?, ?)
       ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE excluded.value > freshness_counters.value`,
      [name, Math.floor(value)],
    );
  }
}
