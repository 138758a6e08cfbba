/**
 * The SQLite driver of the Sql interface, over one better-sqlite3 connection. Statements run at once
 * (better-sqlite3 is synchronous) and return settled promises; while a transaction is open, statements
 * from outside it wait for it to end, so nothing joins — or is rolled back with — a transaction it is
 * not part of. I/O adapter.
 */
import type Database from 'better-sqlite3';
import type { Sql, SqlParams, SqlQueries, SqlRunResult } from './sql.js';

export class SqliteSql implements Sql {
  readonly dialect = 'sqlite' as const;
  private readonly statements = new Map<string, Database.Statement>();
  /** Resolves when the open transaction (if any) ends; transactions queue behind each other. */
  private busy: Promise<void> | null = null;
  private readonly direct: SqlQueries;

  constructor(
    /** The connection; the caller opened it and applied SQLite migrations (db.ts). */
    readonly db: Database.Database,
    readonly location: string = db.name,
  ) {
    this.direct = {
      dialect: 'sqlite',
      all: (sql, params) => settle(() => this.statement(sql).all(...(params ?? [])) as never),
      get: (sql, params) => settle(() => this.statement(sql).get(...(params ?? [])) as never),
      run: (sql, params) => settle(() => ({ changes: this.statement(sql).run(...(params ?? [])).changes })),
    };
  }

  all<T>(sql: string, params?: SqlParams): Promise<T[]> {
    return this.busy ? this.busy.then(() => this.all<T>(sql, params)) : this.direct.all<T>(sql, params);
  }

  get<T>(sql: string, params?: SqlParams): Promise<T | undefined> {
    return this.busy ? this.busy.then(() => this.get<T>(sql, params)) : this.direct.get<T>(sql, params);
  }

  run(sql: string, params?: SqlParams): Promise<SqlRunResult> {
    return this.busy ? this.busy.then(() => this.run(sql, params)) : this.direct.run(sql, params);
  }

  async transaction<T>(fn: (tx: SqlQueries) => Promise<T>): Promise<T> {
    while (this.busy) await this.busy;
    let release!: () => void;
    this.busy = new Promise<void>((resolve) => (release = resolve));
    try {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn(this.direct);
        this.db.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    } finally {
      this.busy = null;
      release();
    }
  }

  async close(): Promise<void> {
    while (this.busy) await this.busy;
    if (this.db.open) this.db.close();
  }

  private statement(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }
}

function settle<T>(f: () => T): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
