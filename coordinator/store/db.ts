/**
 * Opens the coordinator's SQLite database (better-sqlite3, WAL) and applies migrations. I/O shell.
 *
 * WAL lets the admin API read while the telemetry path writes; `synchronous = NORMAL` in WAL mode
 * survives a process crash (only an OS crash can lose the last transactions), which is the durability
 * the coordinator promises: a status is acknowledged to the device only after its transaction commits.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { FleetError } from '../../protocol/errors.js';
import { applyMigrations, type Migration } from './migrations.js';
import { ALL_MIGRATIONS } from './migration-list.js';

export type Db = Database.Database;

export class StoreError extends FleetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store', message, options);
  }
}

export interface OpenDatabaseOptions {
  /** Migrations to apply; default: every module's migrations (migration-list.ts). */
  migrations?: readonly Migration[];
  /** Open read-only (no migrations applied). Default false. */
  readonly?: boolean;
}

/**
 * Opens (creating if needed) the database at `path` (`:memory:` for tests), sets WAL and applies
 * pending migrations in one transaction each.
 */
export function openDatabase(path: string, options: OpenDatabaseOptions = {}): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  let db: Db;
  try {
    db = new Database(path, { readonly: options.readonly ?? false });
  } catch (err) {
    throw new StoreError(`cannot open database ${path}: ${(err as Error).message}; check the data directory's permissions`, { cause: err });
  }
  if (!options.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    applyMigrations(db, options.migrations ?? ALL_MIGRATIONS);
  }
  return db;
}

/** Closes the database if open; safe to call twice. */
export function closeDatabase(db: Db): void {
  if (db.open) db.close();
}
