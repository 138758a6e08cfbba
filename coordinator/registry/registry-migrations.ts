/**
 * The registry's tables beyond the store's `devices` (schema versions 400–499): per-device anomalies.
 * Listed in coordinator/store/migration-list.ts, for SQLite and for PostgreSQL. Pure data (SQL run by
 * the store).
 */
import type { Migration, PostgresMigration } from '../store/migrations.js';

export const REGISTRY_MIGRATIONS: readonly Migration[] = [
  {
    version: 400,
    name: 'device-anomalies',
    up(db) {
      db.exec(`
        CREATE TABLE device_anomalies (
          device_id TEXT NOT NULL,
          kind TEXT NOT NULL,
          count INTEGER NOT NULL,
          first_at INTEGER NOT NULL,
          last_at INTEGER NOT NULL,
          detail TEXT NOT NULL,
          PRIMARY KEY (device_id, kind)
        );
        CREATE INDEX device_anomalies_last_at ON device_anomalies (last_at);
      `);
    },
  },
];

/** The same table on PostgreSQL, as SQLite's reached it at version 400. */
export const REGISTRY_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 400,
    name: 'device-anomalies',
    sql: `
      CREATE TABLE device_anomalies (
        device_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        count BIGINT NOT NULL,
        first_at BIGINT NOT NULL,
        last_at BIGINT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (device_id, kind)
      );
      CREATE INDEX device_anomalies_last_at ON device_anomalies (last_at);
    `,
  },
];
