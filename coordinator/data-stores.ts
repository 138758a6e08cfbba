/**
 * Opening the coordinator's store. SQLite (the default): two databases in the data directory,
 * telemetry.db (its read connection here; the telemetry thread writes it) and fleet.db (everything
 * else); telemetry.db comes first, so telemetry an older coordinator kept in fleet.db moves there before
 * fleet.db's migration 9 drops it. PostgreSQL: one database holds every table, telemetry's too.
 * I/O shell (SQLite, PostgreSQL, worker thread).
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '@fleet/protocol/clock';
import type { CoordinatorConfig } from './config.js';
import type { Counters } from './metrics.js';
import { closeDatabase } from './store/db.js';
import { isPostgresUrl, openPostgresStore, openSqliteStore } from './store/open-store.js';
import type { Sql } from './store/sql.js';
import { importLegacyTelemetry } from './telemetry/legacy-import.js';
import { openTelemetrySqlite } from './telemetry/telemetry-schema.js';
import { TelemetryWriter, type TelemetryWriterOptions } from './telemetry/telemetry-writer.js';

/** telemetry.db in a data directory: opened here, written by the telemetry thread. */
const telemetryDbPath = (dataDir: string): string => join(dataDir, 'telemetry.db');

export interface DataStores {
  /** Everything the coordinator keeps: fleet.db, or the PostgreSQL database. */
  sql: Sql;
  /** A read handle on the telemetry tables: telemetry.db's, or `sql` itself on PostgreSQL. */
  telemetrySql: Sql;
}

/** Opens the store (migrated): PostgreSQL when `store` is its URL, else the data directory's SQLite files. On failure nothing stays open. */
export async function openDataStores(dataDir: string, store: string | undefined, logger: Logger): Promise<DataStores> {
  if (isPostgresUrl(store)) {
    const sql = await openPostgresStore(store);
    return { sql, telemetrySql: sql };
  }
  const fleetPath = join(dataDir, 'fleet.db');
  const telemetrySql = openTelemetrySqlite(telemetryDbPath(dataDir));
  try {
    const moved = importLegacyTelemetry(telemetrySql.db, fleetPath);
    if (moved.rollups + moved.samples + moved.counters > 0) logger.info(moved, 'moved telemetry from fleet.db to telemetry.db');
    return { sql: openSqliteStore(fleetPath), telemetrySql };
  } catch (err) {
    closeDatabase(telemetrySql.db);
    throw err;
  }
}

/** Starts the telemetry thread on the data directory's telemetry.db (or the PostgreSQL store) with the configured bounds. */
export function startTelemetryWriter(
  config: CoordinatorConfig,
  deps: { timers: Clock; logger: Logger; counters: Counters } & Pick<TelemetryWriterOptions, 'onVersions' | 'bad'>,
): Promise<TelemetryWriter> {
  const t = config.telemetry;
  return TelemetryWriter.start({
    location: isPostgresUrl(config.store) ? config.store : telemetryDbPath(config.dataDir),
    store: { rollupSlotMs: t.rollupSlotMs, rawRetentionMs: t.rawRetentionMs, maxExposureGapMs: t.silentAfterMs },
    flushIntervalMs: t.flushIntervalMs,
    maxBatch: t.maxBatch,
    maxQueue: t.maxQueue,
    ...deps,
    logger: deps.logger.child({ module: 'telemetry' }),
  });
}
