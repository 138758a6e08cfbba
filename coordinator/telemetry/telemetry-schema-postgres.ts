/**
 * The telemetry tables on PostgreSQL (versions 800–899 of ALL_POSTGRES_MIGRATIONS), in the
 * coordinator's own database: row locks, not a file lock, so they need no database of their own.
 * A file apart from telemetry-schema.ts, which opens SQLite through store/db.ts: the migration list
 * imports this one, and db.ts imports the migration list.
 */
import type { PostgresMigration } from '../store/migrations.js';

/**
 * The same tables on PostgreSQL, at SQLite's version 3 shape (BIGINT for every integer, BYTEA for
 * packed data). Later changes get a migration in both lists.
 */
export const TELEMETRY_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 800,
    name: 'telemetry',
    sql: `
      CREATE TABLE telemetry_rollup (
        device_id TEXT NOT NULL,
        slot_start BIGINT NOT NULL,
        firmware_version TEXT NOT NULL,
        samples BIGINT NOT NULL,
        first_at BIGINT NOT NULL,
        last_at BIGINT NOT NULL,
        exposure_ms BIGINT NOT NULL,
        crashes BIGINT NOT NULL, errors BIGINT NOT NULL, reboots BIGINT NOT NULL, agent_restarts BIGINT NOT NULL,
        error_lines TEXT NOT NULL DEFAULT '[]',
        metrics BYTEA NOT NULL DEFAULT '',
        PRIMARY KEY (device_id, slot_start, firmware_version)
      );
      CREATE TABLE telemetry_samples (
        device_id TEXT NOT NULL,
        firmware_version TEXT NOT NULL,
        first_at BIGINT NOT NULL,
        last_at BIGINT NOT NULL,
        n BIGINT NOT NULL,
        data BYTEA NOT NULL
      );
      CREATE INDEX telemetry_samples_device ON telemetry_samples (device_id, last_at);
      CREATE INDEX telemetry_samples_last ON telemetry_samples (last_at);
      CREATE TABLE device_counters (
        device_id TEXT PRIMARY KEY,
        at BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        firmware_version TEXT NOT NULL,
        crashes BIGINT NOT NULL, errors BIGINT NOT NULL, reboots BIGINT NOT NULL, agent_restarts BIGINT NOT NULL,
        device_at BIGINT,
        boot_count BIGINT
      );
    `,
  },
];
