/**
 * The one interface every repository uses to reach its database, SQLite or PostgreSQL. Asynchronous,
 * because PostgreSQL is a network round trip; the SQLite driver answers at once.
 *
 * Portable SQL (both dialects run the same text):
 * - positional `?` placeholders (translated to `$1…` for PostgreSQL); no named parameters;
 * - lower-case snake_case column names and aliases (PostgreSQL folds unquoted names to lower case);
 * - `INSERT … ON CONFLICT (…) DO UPDATE SET x = excluded.x` / `DO NOTHING` (no `INSERT OR …`),
 *   `RETURNING` instead of last-insert-rowid, `COALESCE` (no `IFNULL`), `LEAST`/`GREATEST` are not
 *   portable (write `CASE`), `LIKE` is case-sensitive in PostgreSQL;
 * - integers (milliseconds, counts) are numbers on both sides (int8 and numeric parsed to numbers);
 *   flags are 0/1 integers, JSON is text, bytes are Buffers.
 * Schema (DDL) differs per dialect and lives in each module's migrations (migrations.ts).
 */
import { FleetError } from '@fleet/protocol/errors';

export type SqlValue = string | number | bigint | Buffer | null;
export type SqlParams = readonly SqlValue[];

export type SqlDialect = 'sqlite' | 'postgres';

export interface SqlRunResult {
  /** Rows inserted, updated or deleted. */
  changes: number;
}

/** Statements, inside or outside a transaction. */
export interface SqlQueries {
  readonly dialect: SqlDialect;
  all<T>(sql: string, params?: SqlParams): Promise<T[]>;
  get<T>(sql: string, params?: SqlParams): Promise<T | undefined>;
  run(sql: string, params?: SqlParams): Promise<SqlRunResult>;
}

export interface Sql extends SqlQueries {
  /**
   * Runs `fn` in one transaction: committed when it resolves, rolled back when it throws (and the
   * error rethrown). Other statements on this store wait for it (SQLite) or run on other connections
   * (PostgreSQL). Use only `tx` inside `fn`, never the store itself: that would wait for the transaction
   * it is part of. No nesting.
   */
  transaction<T>(fn: (tx: SqlQueries) => Promise<T>): Promise<T>;
  /** Closes the connection(s); safe to call twice. */
  close(): Promise<void>;
  /** Where it points, for logs and errors (a file path, or a PostgreSQL URL without its password). */
  readonly location: string;
}

export class SqlError extends FleetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store', message, options);
  }
}

const translated = new Map<string, string>();

/** `?` placeholders to PostgreSQL's `$n`, skipping quoted text. Cached: repositories reuse their SQL. */
export function toPostgresPlaceholders(sql: string): string {
  let out = translated.get(sql);
  if (out !== undefined) return out;
  let n = 0;
  let quote: string | null = null;
  out = '';
  for (const ch of sql) {
    if (quote) {
      if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
    } else if (ch === '?') {
      out += `$${++n}`;
      continue;
    }
    out += ch;
  }
  if (translated.size < 10_000) translated.set(sql, out);
  return out;
}

/** `?, ?, ?` for an IN list of `count` values. */
export function placeholders(count: number): string {
  return Array.from({ length: count }, () => '?').join(', ');
}
