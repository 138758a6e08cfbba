/**
 * Stores for tests: a fresh PostgreSQL database per call in the run's server (postgres-global-setup.ts),
 * dropped when the test finishes, and `STORE_KINDS` to run a suite against SQLite and PostgreSQL alike
 * (`describe.each(STORE_KINDS)('… on %s', (kind) => …)`).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject, onTestFinished } from 'vitest';
import type { Sql } from '../../coordinator/store/sql.js';
import { openPostgresStore, openSqliteStore } from '../../coordinator/store/open-store.js';

/** The run's PostgreSQL server (superuser URL). Only in the integration and e2e tiers. */
export function postgresServerUrl(): string {
  const url = inject('postgresUrl');
  if (!url) throw new Error('no PostgreSQL server in this test tier: PostgreSQL tests belong to the integration or e2e tier');
  return url;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: postgresServerUrl() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * The URL of a new empty database, dropped (with its connections) when the current test finishes —
 * or, with `{ keep: true }`, left for the server's removal at the end of the run (a database shared
 * by a file's tests, or by daemons that outlive one test).
 */
export async function freshPostgresUrl(options: { keep?: boolean } = {}): Promise<string> {
  const name = `fleet_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  if (!options.keep) onTestFinished(() => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined));
  const url = new URL(postgresServerUrl());
  url.pathname = `/${name}`;
  return url.toString();
}

export type StoreKind = 'sqlite' | 'postgres';
export const STORE_KINDS: readonly StoreKind[] = ['sqlite', 'postgres'];

/** A migrated, empty store of `kind`, closed when the current test finishes. */
export async function openTestStore(kind: StoreKind): Promise<Sql> {
  const store = kind === 'sqlite' ? openSqliteStore(':memory:') : await openPostgresStore(await freshPostgresUrl());
  onTestFinished(() => store.close());
  return store;
}

/**
 * Opens a durable store of `kind` (a file in a new directory, or a new database), as often as called:
 * every call a new connection to the same data, as another process or a restart sees it. The
 * directory or database goes when the current test finishes; the connections are the caller's.
 */
export async function durableStoreOpener(kind: StoreKind): Promise<() => Promise<Sql>> {
  if (kind === 'postgres') {
    const url = await freshPostgresUrl();
    return () => openPostgresStore(url);
  }
  const dir = mkdtempSync(join(tmpdir(), 'fleet-store-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return () => Promise.resolve(openSqliteStore(join(dir, 'fleet.db')));
}
