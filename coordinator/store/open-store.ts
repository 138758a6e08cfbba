/**
 * Opening the coordinator's store: a SQLite file (the default, in the data directory) or a PostgreSQL
 * database (`--store postgres://…`), migrated to this build's schema either way. I/O shell.
 */
import { openDatabase } from './db.js';
import { applyPostgresMigrations, type Migration, type PostgresMigration } from './migrations.js';
import { ALL_MIGRATIONS, ALL_POSTGRES_MIGRATIONS } from './migration-list.js';
import { PostgresSql, type PostgresOptions } from './postgres-sql.js';
import { SqliteSql } from './sqlite-sql.js';

/** True for a `postgres://` or `postgresql://` URL (the `store` setting); anything else is SQLite's. */
export function isPostgresUrl(store: string | undefined): store is string {
  return store !== undefined && /^postgres(ql)?:\/\//.test(store);
}

/** A SQLite store at `path` (`:memory:` for tests), migrated (SQLite migrations run synchronously). */
export function openSqliteStore(path: string, migrations: readonly Migration[] = ALL_MIGRATIONS): SqliteSql {
  return new SqliteSql(openDatabase(path, { migrations }), path);
}

/** A PostgreSQL store at `url`, migrated; two coordinators starting at once migrate one after the other. */
export async function openPostgresStore(
  url: string,
  options: PostgresOptions & { migrations?: readonly PostgresMigration[] } = {},
): Promise<PostgresSql> {
  const store = await PostgresSql.open(url, options);
  try {
    await applyPostgresMigrations(store, options.migrations ?? ALL_POSTGRES_MIGRATIONS);
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
