/**
 * Opening the coordinator's two SQLite databases in the data directory: telemetry.db (its read
 * connection here; the telemetry thread writes it) and fleet.db (everything else). telemetry.db comes
 * first, so telemetry an older coordinator kept in fleet.db moves there before fleet.db's migration 9
 * drops it. With a PostgreSQL store the telemetry tables are in that database and telemetry.db is not
 * opened. I/O shell (SQLite, worker thread).
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '@fleet/protocol/clock';
import type { CoordinatorConfig } from './config.js';
import type { Counters } from './metrics.js';
import { closeDatabase, openDatabase, type Db } from './store/db.js';
import { isPostgresUrl } from './store/open-store.js';
import { SqliteSql } from './store/sqlite-sql.js';
import { importLegacyTelemetry } from './telemetry/legacy-import.js';
import { openTelemetryDatabase } from './telemetry/telemetry-schema.js';
import { TelemetryWriter, type TelemetryWriterOptions } from './telemetry/telemetry-writer.js';

/** telemetry.db in a data directory: opened here, written by the telemetry thread. */
const telemetryDbPath = (dataDir: string): string => join(dataDir, 'telemetry.db');

export interface DataStores {
  db: Db;
  /** telemetry.db's read connection; undefined with a PostgreSQL store (its telemetry tables are there). */
  telemetry: SqliteSql | undefined;
}

/** Opens the databases (migrated); on failure nothing stays open. */
export function openDataStores(dataDir: string, logger: Logger, options: { postgres: boolean }): DataStores {
  const fleetPath = join(dataDir, 'fleet.db');
  if (options.postgres) return { db: openDatabase(fleetPath), telemetry: undefined };
  const telemetryDb = openTelemetryDatabase(telemetryDbPath(dataDir));
  try {
    const moved = importLegacyTelemetry(telemetryDb, fleetPath);
    if (moved.rollups + moved.samples + moved.counters > 0) logger.info(moved, 'moved telemetry from fleet.db to telemetry.db');
    return { db: openDatabase(fleetPath), telemetry: new SqliteSql(telemetryDb) };
  } catch (err) {
    closeDatabase(telemetryDb);
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
