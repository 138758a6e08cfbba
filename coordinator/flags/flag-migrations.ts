/**
 * The flag store's tables (migration versions 200–209; add to coordinator/store/migration-list.ts).
 * `flags` holds current definitions; `flag_changes` is the append-only history every change writes in
 * the same transaction (who, when, before, after), alongside an `audit_log` entry. SQLite's list, and
 * PostgreSQL's (the same tables at today's shape).
 */
import type { Migration, PostgresMigration } from '../store/migrations.js';

export const FLAG_MIGRATIONS: readonly Migration[] = [
  {
    version: 200,
    name: 'flags',
    up(db) {
      db.exec(`
        CREATE TABLE flags (
          name TEXT PRIMARY KEY,
          definition_json TEXT NOT NULL,
          version INTEGER NOT NULL,
          updated_at INTEGER NOT NULL,
          updated_by TEXT NOT NULL
        );
        CREATE TABLE flag_changes (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          at INTEGER NOT NULL,
          actor TEXT NOT NULL,
          name TEXT NOT NULL,
          action TEXT NOT NULL,
          before_json TEXT,
          after_json TEXT
        );
        CREATE INDEX flag_changes_name ON flag_changes (name, id);
      `);
    },
  },
];

export const FLAG_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 200,
    name: 'flags',
    sql: `
      CREATE TABLE flags (
        name TEXT PRIMARY KEY,
        definition_json TEXT NOT NULL,
        version BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        updated_by TEXT NOT NULL
      );
      CREATE TABLE flag_changes (
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        name TEXT NOT NULL,
        action TEXT NOT NULL,
        before_json TEXT,
        after_json TEXT
      );
      CREATE INDEX flag_changes_name ON flag_changes (name, id);
    `,
  },
];
