/**
 * The PostgreSQL driver of the Sql interface, over a node-postgres pool. Each transaction holds one
 * pooled connection from BEGIN to COMMIT; other statements run on the others. int8 (counts, SUM of
 * integers, millisecond timestamps) and numeric are parsed to numbers, as SQLite returns them.
 * I/O adapter.
 */
import pg from 'pg';
import { errorMessage } from '@fleet/protocol/errors';
import { SqlError, toPostgresPlaceholders, type Sql, type SqlParams, type SqlQueries, type SqlRunResult } from './sql.js';

const INT8 = 20;
const NUMERIC = 1700;

/** One parser table for every pool: ours only, never the process-wide pg.types defaults. */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
    if (oid === INT8 || oid === NUMERIC) return (v: string) => (v === null ? null : Number(v));
    return pg.types.getTypeParser(oid, format) as (value: string) => unknown;
  },
};

export interface PostgresOptions {
  /** Pool size. Default 10. */
  maxConnections?: number;
  /** Statement timeout in milliseconds (a stuck query must not hold a status's PUBACK forever). Default 30 s. */
  statementTimeoutMs?: number;
  /** Name shown in pg_stat_activity. */
  applicationName?: string;
}

/** The URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable PostgreSQL URL)';
  }
}

function queries(client: pg.Pool | pg.PoolClient): SqlQueries {
  const query = async <T>(sql: string, params?: SqlParams): Promise<pg.QueryResult<T & pg.QueryResultRow>> =>
    client.query<T & pg.QueryResultRow>(toPostgresPlaceholders(sql), params as unknown[] | undefined);
  return {
    dialect: 'postgres',
    all: async <T>(sql: string, params?: SqlParams) => (await query<T>(sql, params)).rows as T[],
    get: async <T>(sql: string, params?: SqlParams) => (await query<T>(sql, params)).rows[0] as T | undefined,
    run: async (sql: string, params?: SqlParams): Promise<SqlRunResult> => ({ changes: (await query(sql, params)).rowCount ?? 0 }),
  };
}

export class PostgresSql implements Sql {
  readonly dialect = 'postgres' as const;
  readonly location: string;
  private readonly q: SqlQueries;
  private closed = false;

  private constructor(readonly pool: pg.Pool, url: string) {
    this.location = redactUrl(url);
    this.q = queries(pool);
  }

  /** Connects (one round trip to check the server answers); throws SqlError naming the server. */
  static async open(url: string, options: PostgresOptions = {}): Promise<PostgresSql> {
    const pool = new pg.Pool({
      connectionString: url,
      max: options.maxConnections ?? 10,
      statement_timeout: options.statementTimeoutMs ?? 30_000,
      application_name: options.applicationName ?? 'fleet-coordinator',
      // Also how long a statement waits for a free pooled connection: as long as a statement may run.
      connectionTimeoutMillis: options.statementTimeoutMs ?? 30_000,
      types,
    });
    // An idle connection the server dropped emits here; the pool replaces it on next use.
    pool.on('error', () => {});
    const store = new PostgresSql(pool, url);
    try {
      await pool.query('SELECT 1');
    } catch (err) {
      await pool.end().catch(() => {});
      throw new SqlError(`cannot reach PostgreSQL at ${store.location}: ${errorMessage(err)}; check that the server runs and the URL, user and password are right`, { cause: err });
    }
    return store;
  }

  all<T>(sql: string, params?: SqlParams): Promise<T[]> {
    return this.q.all<T>(sql, params);
  }

  get<T>(sql: string, params?: SqlParams): Promise<T | undefined> {
    return this.q.get<T>(sql, params);
  }

  run(sql: string, params?: SqlParams): Promise<SqlRunResult> {
    return this.q.run(sql, params);
  }

  async transaction<T>(fn: (tx: SqlQueries) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(queries(client));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
