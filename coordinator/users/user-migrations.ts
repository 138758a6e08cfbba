/**
 * Tables of named users (schema versions 500–599): users with their role, password and API token
 * hashes, and web sessions, for SQLite and (the same tables at today's shape) PostgreSQL. Listed in
 * coordinator/store/migration-list.ts. Pure data (SQL run by the store).
 */
import type { Migration, PostgresMigration } from '../store/migrations.js';

export const USER_MIGRATIONS: readonly Migration[] = [
  {
    version: 500,
    name: 'users',
    up(db) {
      // Sessions name their user without a foreign key: the built-in admin has no row of its own.
      db.exec(`
        CREATE TABLE users (
          name TEXT PRIMARY KEY,
          role TEXT NOT NULL,
          password_hash TEXT,
          token_hash TEXT UNIQUE,
          token_issued_at INTEGER,
          created_at INTEGER NOT NULL,
          created_by TEXT NOT NULL,
          password_changed_at INTEGER,
          last_login_at INTEGER
        );
        CREATE TABLE user_sessions (
          id_hash TEXT PRIMARY KEY,
          user_name TEXT NOT NULL,
          created_at INTEGER NOT NULL,
          last_seen_at INTEGER NOT NULL,
          expires_at INTEGER NOT NULL,
          source TEXT
        );
        CREATE INDEX user_sessions_user ON user_sessions (user_name);
      `);
    },
  },
];

export const USER_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 500,
    name: 'users',
    sql: `
      CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password_hash TEXT,
        token_hash TEXT UNIQUE,
        token_issued_at BIGINT,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        password_changed_at BIGINT,
        last_login_at BIGINT
      );
      CREATE TABLE user_sessions (
        id_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_seen_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        source TEXT
      );
      CREATE INDEX user_sessions_user ON user_sessions (user_name);
    `,
  },
];
