/**
 * The registry's tables beyond the store's `devices` (schema versions 400–499): per-device anomalies.
 * Listed in coordinator/store/migration-list.ts. Pure data (SQL run by the store).
 */
import type { Migration } from '../store/migrations.js';

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
