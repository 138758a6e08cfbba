/**
 * Telemetry stores for tests, of either kind: SQLite's telemetry.db (a file in a temporary directory)
 * or a fresh PostgreSQL database migrated with every module's migrations (the telemetry tables
 * included). `reopen` closes the store and opens the same data again: a coordinator restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import type { Sql } from '../../coordinator/store/sql.js';
import { openPostgresStore } from '../../coordinator/store/open-store.js';
import { openTelemetrySqlite } from '../../coordinator/telemetry/telemetry-schema.js';
import { freshPostgresUrl, type StoreKind } from './postgres.js';

export interface TelemetryTestStore {
  sql: Sql;
  /** telemetry.db's path, or the PostgreSQL database's URL: what the telemetry thread opens. */
  location: string;
  /** Closes `sql` and opens the same data again (the new handle is also closed at test end). */
  reopen(): Promise<Sql>;
}

/** A migrated, empty telemetry store of `kind`, closed (and removed) when the current test finishes. */
export async function openTelemetryTestStore(kind: StoreKind): Promise<TelemetryTestStore> {
  let open: () => Promise<Sql>;
  let location: string;
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-telemetry-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const path = (location = join(dir, 'telemetry.db'));
    open = () => Promise.resolve(openTelemetrySqlite(path));
  } else {
    const url = (location = await freshPostgresUrl());
    open = () => openPostgresStore(url);
  }
  const opened = async (): Promise<Sql> => {
    const sql = await open();
    onTestFinished(() => sql.close());
    return sql;
  };
  const store: TelemetryTestStore = {
    sql: await opened(),
    location,
    reopen: async () => {
      await store.sql.close();
      store.sql = await opened();
      return store.sql;
    },
  };
  return store;
}
