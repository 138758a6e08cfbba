/**
 * Multi-row INSERT statements: one statement per up to 256 rows instead of one per row, for every write
 * of many rows at once (a telemetry flush, a wave's device progress, a turn's statuses, a wave's
 * retained manifests). On PostgreSQL every statement is a round trip, so a flush of 1,000 devices' rows
 * costs a handful of round trips instead of thousands. Rows of one statement must not share a conflict
 * key when the tail is an upsert (PostgreSQL refuses to update one row twice in a statement). Batches are
 * cut into power-of-two sizes so a table has at most nine statement texts (prepared once each by
 * SQLite's statement cache), whatever the number of rows. Pure SQL building plus one I/O helper.
 */
import type { SqlQueries, SqlValue } from './sql.js';

const MAX_ROWS = 256;

/** `INSERT INTO table (cols) VALUES (?, …), (?, …) [tail]` for `rows` rows, cached per shape. */
export class MultiRowInsert {
  private readonly texts = new Map<number, string>();
  private readonly row: string;

  constructor(
    private readonly head: string,
    readonly columns: number,
    private readonly tail = '',
  ) {
    this.row = `(${Array.from({ length: columns }, () => '?').join(', ')})`;
  }

  text(rows: number): string {
    let t = this.texts.get(rows);
    if (t === undefined) {
      t = `${this.head} VALUES ${Array.from({ length: rows }, () => this.row).join(', ')}${this.tail ? ` ${this.tail}` : ''}`;
      this.texts.set(rows, t);
    }
    return t;
  }

  /** Runs the insert for `params` (`columns` values per row, rows back to back). */
  async run(tx: SqlQueries, params: readonly SqlValue[]): Promise<void> {
    const total = params.length / this.columns;
    let done = 0;
    while (done < total) {
      const left = total - done;
      const rows = left >= MAX_ROWS ? MAX_ROWS : 2 ** Math.floor(Math.log2(left));
      await tx.run(this.text(rows), params.slice(done * this.columns, (done + rows) * this.columns));
      done += rows;
    }
  }
}
