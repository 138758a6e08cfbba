/**
 * The telemetry tables: per-device rollups, packed sample chunks and each device's last reading
 * (cumulative counters, its own clock and boot count). On SQLite they live in `telemetry.db`, beside
 * `fleet.db`, a file of its own so that the ingest thread that owns it never holds a write lock the
 * control plane (statuses, deployments) waits on; its own migration list. On PostgreSQL they live in
 * the coordinator's database (row locks, no file lock): telemetry-schema-postgres.ts.
 */
import type { Migration } from '../store/migrations.js';
import { openDatabase, type Db } from '../store/db.js';
import { SqliteSql } from '../store/sqlite-sql.js';
import type { ContinuousMetric } from '@fleet/protocol/canary';
import { packSums, type MetricSums } from './rollup-math.js';

export const TELEMETRY_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'telemetry',
    up(db) {
      db.exec(`
        CREATE TABLE telemetry_rollup (
          device_id TEXT NOT NULL,
          slot_start INTEGER NOT NULL,
          firmware_version TEXT NOT NULL,
          samples INTEGER NOT NULL,
          first_at INTEGER NOT NULL,
          last_at INTEGER NOT NULL,
          exposure_ms INTEGER NOT NULL,
          crashes INTEGER NOT NULL, errors INTEGER NOT NULL, reboots INTEGER NOT NULL, agent_restarts INTEGER NOT NULL,
          -- per metric: n, sum, sumsq, max, st, stt, sty (t in hours from slot_start); packed since version 2
          metrics_json TEXT NOT NULL,
          error_lines TEXT NOT NULL DEFAULT '[]',
          PRIMARY KEY (device_id, slot_start, firmware_version)
        );
        -- One row per device, firmware version and write batch: the batch's samples packed (sample-chunks.ts).
        -- A row per message would cost one B-tree insert per index per message at fleet rates.
        CREATE TABLE telemetry_samples (
          device_id TEXT NOT NULL,
          firmware_version TEXT NOT NULL,
          first_at INTEGER NOT NULL,
          last_at INTEGER NOT NULL,
          n INTEGER NOT NULL,
          data BLOB NOT NULL
        );
        CREATE INDEX telemetry_samples_device ON telemetry_samples (device_id, last_at);
        CREATE INDEX telemetry_samples_last ON telemetry_samples (last_at);
        CREATE TABLE device_counters (
          device_id TEXT PRIMARY KEY,
          at INTEGER NOT NULL,
          seq INTEGER NOT NULL,
          firmware_version TEXT NOT NULL,
          crashes INTEGER NOT NULL, errors INTEGER NOT NULL, reboots INTEGER NOT NULL, agent_restarts INTEGER NOT NULL
        );
      `);
    },
  },
  {
    version: 2,
    name: 'rollup-sums-packed',
    // Rollup metric sums as packed float64 (rollup-math.ts packSums) instead of JSON text, which cost a
    // shortest-digits conversion per double at every commit.
    up(db) {
      db.exec(`ALTER TABLE telemetry_rollup ADD COLUMN metrics BLOB NOT NULL DEFAULT x''`);
      // Read in full first: the connection cannot update a table while it iterates over it.
      const rows = db.prepare('SELECT rowid, metrics_json FROM telemetry_rollup').all() as { rowid: number; metrics_json: string }[];
      const put = db.prepare('UPDATE telemetry_rollup SET metrics = ? WHERE rowid = ?');
      for (const r of rows) put.run(packSums(sumsFromJson(r.metrics_json)), r.rowid);
      db.exec('ALTER TABLE telemetry_rollup DROP COLUMN metrics_json');
    },
  },
  {
    version: 3,
    name: 'device-clock',
    // The device's own time and boot count at its last reading: what charges the first offline gap
    // after a coordinator restart with the time the device ran in it (telemetry-store.ts), as every
    // later gap is. NULL for rows written before: that one gap falls back to the capped receive gap.
    up(db) {
      db.exec(`
        ALTER TABLE device_counters ADD COLUMN device_at INTEGER;
        ALTER TABLE device_counters ADD COLUMN boot_count INTEGER;
      `);
    },
  },
];

/** Metric sums as version 1 stored them (JSON; an empty max, -Infinity, came back as null). */
export function sumsFromJson(text: string): Partial<Record<ContinuousMetric, MetricSums>> {
  const metrics = JSON.parse(text) as Partial<Record<ContinuousMetric, MetricSums>>;
  for (const s of Object.values(metrics)) if (s && typeof s.max !== 'number') s.max = Number.NEGATIVE_INFINITY;
  return metrics;
}

/** Opens (creating and migrating) a telemetry database; `:memory:` for tests. */
export function openTelemetryDatabase(path: string, options: { readonly?: boolean } = {}): Db {
  return openDatabase(path, { migrations: TELEMETRY_MIGRATIONS, ...(options.readonly ? { readonly: true } : {}) });
}

/** A SQLite telemetry database (opened and migrated) behind the Sql interface. */
export function openTelemetrySqlite(path: string): SqliteSql {
  return new SqliteSql(openTelemetryDatabase(path), path);
}
