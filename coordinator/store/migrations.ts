/**
 * Versioned schema migrations. Each module that owns tables exports its migrations; they are listed in
 * one place (migration-list.ts) in version order. Applying is idempotent: each pending migration runs
 * in its own transaction and is recorded in `schema_migrations`, so a crash mid-way leaves the database
 * at the last complete version.
 */
import type Database from 'better-sqlite3';
import { FleetError, errorMessage } from '@fleet/protocol/errors';
import type { Sql } from './sql.js';

export interface Migration {
  /** Strictly increasing across the whole list; never reuse or renumber a shipped version. */
  version: number;
  /** Short name, e.g. `devices`, recorded with the version. */
  name: string;
  up(db: Database.Database): void;
}

export class MigrationError extends FleetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('migration', message, options);
  }
}

/** Checks that versions are unique and ascending; throws naming the offending pair. */
export function validateMigrations(list: readonly { version: number; name: string }[]): void {
  for (let i = 1; i < list.length; i++) {
    const prev = list[i - 1]!;
    const cur = list[i]!;
    if (cur.version <= prev.version) {
      throw new MigrationError(
        `migration ${cur.version} (${cur.name}) must have a higher version than ${prev.version} (${prev.name}); fix the order in coordinator/store/migration-list.ts`,
      );
    }
  }
}

/** The highest applied version, 0 for a fresh database. */
export function currentSchemaVersion(db: Database.Database): number {
  ensureTable(db);
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? 0;
}

function ensureTable(db: Database.Database): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`);
}

/** Applies every migration above the database's version, in order. Returns the versions applied. */
export function applyMigrations(db: Database.Database, list: readonly Migration[], now: () => number = Date.now): number[] {
  validateMigrations(list);
  ensureTable(db);
  const applied = new Set(
    (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version),
  );
  const known = new Set(list.map((m) => m.version));
  const unknown = [...applied].filter((v) => !known.has(v));
  if (unknown.length) {
    throw new MigrationError(
      `database has schema version(s) ${unknown.join(', ')} this build does not know; it was written by a newer fleet — upgrade this coordinator`,
    );
  }
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  const done: number[] = [];
  for (const m of list) {
    if (applied.has(m.version)) continue;
    const run = db.transaction(() => {
      m.up(db);
      record.run(m.version, m.name, new Date(now()).toISOString());
    });
    try {
      run();
    } catch (err) {
      throw new MigrationError(`migration ${m.version} (${m.name}) failed: ${errorMessage(err)}`, { cause: err });
    }
    done.push(m.version);
  }
  return done;
}

/**
 * A PostgreSQL migration: one SQL script, run in one transaction (PostgreSQL's DDL is transactional).
 * PostgreSQL's schema starts at the SQLite schema's current shape, so a module's first PostgreSQL
 * migration creates its tables as they are now, under the module's own version range; later changes
 * get a migration in both lists.
 */
export interface PostgresMigration {
  version: number;
  name: string;
  sql: string;
}

/** Serialises migrations between coordinators starting at once on one database (any fixed key). */
const MIGRATION_LOCK_KEY = 0x666c6565; // "flee"

/** Applies every PostgreSQL migration the database lacks, in order, under an advisory lock. */
export async function applyPostgresMigrations(store: Sql, list: readonly PostgresMigration[], now: () => number = Date.now): Promise<number[]> {
  validateMigrations(list);
  return store.transaction(async (tx) => {
    await tx.run('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK_KEY]);
    await tx.run('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
    const applied = new Set((await tx.all<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => r.version));
    const known = new Set(list.map((m) => m.version));
    const unknown = [...applied].filter((v) => !known.has(v));
    if (unknown.length) {
      throw new MigrationError(
        `database has schema version(s) ${unknown.join(', ')} this build does not know; it was written by a newer fleet — upgrade this coordinator`,
      );
    }
    const done: number[] = [];
    for (const m of list) {
      if (applied.has(m.version)) continue;
      try {
        await tx.run(m.sql);
      } catch (err) {
        throw new MigrationError(`migration ${m.version} (${m.name}) failed on PostgreSQL: ${errorMessage(err)}`, { cause: err });
      }
      await tx.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, new Date(now()).toISOString()]);
      done.push(m.version);
    }
    return done;
  });
}
