/**
 * Single-row writes gathered into multi-row statements: rows added in one turn of the event loop (up
 * to `maxRows`) leave together, in one statement, and each `add` resolves (or rejects) with the
 * statement that carried its row. A connect storm's per-device writes (thousands a second, each a
 * round trip to PostgreSQL and a turn of its pool) become a few statements a second. Batches go one
 * at a time, in order. Pure control flow over the `write` it is given (and setImmediate).
 */

export interface RowBatchOptions<R> {
  /** Stores `rows` in one statement. */
  write: (rows: readonly R[]) => Promise<unknown>;
  /** Rows per statement at most (statement parameter limits: 16 columns × 500 rows is 8,000). */
  maxRows: number;
}

interface Pending<R> {
  row: () => R;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class RowBatch<R> {
  private pending: Pending<R>[] = [];
  private scheduled = false;
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly o: RowBatchOptions<R>) {}

  /** `row` is read when its batch leaves (the freshest state). Resolves once it is stored. */
  add(row: () => R): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ row, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const taken = this.pending;
    this.pending = [];
    // One statement at a time: a later batch never overtakes an earlier one.
    this.running = this.running.then(async () => {
      for (let i = 0; i < taken.length; i += this.o.maxRows) {
        const chunk = taken.slice(i, i + this.o.maxRows);
        try {
          await this.o.write(chunk.map((p) => p.row()));
          for (const p of chunk) p.resolve();
        } catch (err) {
          for (const p of chunk) p.reject(err);
        }
      }
    });
  }

  /** Resolves when every row added so far has been written (or failed). */
  async idle(): Promise<void> {
    while (this.pending.length > 0 || this.scheduled) await new Promise((resolve) => setImmediate(resolve));
    await this.running;
  }
}
