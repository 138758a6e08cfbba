/**
 * Opens the coordinator's SQLite database (better-sqlite3, WAL) and applies migrations. I/O shell.
 *
 * WAL lets the admin API read while the telemetry path writes; `synchronous = NORMAL` in WAL mode
 * survives a process crash (only an OS crash can lose the last transactions), which is the durability
 * the coordinator promises: a status is acknowledged to the device only after its transaction commits.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { FleetError, errorMessage } from '@fleet/protocol/errors';
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
 * Database files hold device records, secrets' hashes, the audit log and telemetry: readable by the
 * coordinator's user only, like the keys and `admin.json`. SQLite gives its `-wal` and `-shm` files
 * the main file's mode, so creating that file 0600 first covers all three; files an older coordinator
 * created 0644 are narrowed when opened.
 */
export const DATABASE_FILE_MODE = 0o600;

function restrictFileModes(path: string): void {
  closeSync(openSync(path, 'a', DATABASE_FILE_MODE));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(file)) chmodSync(file, DATABASE_FILE_MODE);
}

/**
 * Opens (creating if needed, mode 0600) the database at `path` (`:memory:` for tests), sets WAL and
 * applies pending migrations in one transaction each.
 */
export function openDatabase(path: string, options: OpenDatabaseOptions = {}): Db {
  let db: Db;
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    if (path !== ':memory:' && !options.readonly) restrictFileModes(path);
    db = new Database(path, { readonly: options.readonly ?? false });
  } catch (err) {
    throw new StoreError(`cannot open database ${path}: ${errorMessage(err)}; check the data directory's permissions`, { cause: err });
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
