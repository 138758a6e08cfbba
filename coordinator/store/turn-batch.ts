/**
 * Group commit of keyed rows: keys added in one turn of the event loop are written together by one
 * `flush` (one transaction, multi-row statements) at the end of the turn, and each `add` resolves
 * once its batch is committed (or rejects with the batch's error). Keys added while a flush is in
 * flight (a PostgreSQL round trip) form the next batch. The caller reads each key's row when the
 * flush runs, so a row carries every change made before it. Pure control flow over `flush`.
 */
export class TurnBatch<K> {
  private due = new Set<K>();
  private next: Promise<void> | null = null;
  private flushing: Promise<void> | null = null;

  constructor(private readonly flush: (keys: readonly K[]) => Promise<void>) {}

  add(key: K): Promise<void> {
    this.due.add(key);
    this.next ??= this.schedule();
    return this.next;
  }

  private async schedule(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.flushing) await this.flushing.catch(() => undefined);
    const keys = [...this.due];
    this.due = new Set();
    this.next = null;
    const run = this.flush(keys);
    this.flushing = run;
    try {
      await run;
    } finally {
      this.flushing = null;
    }
  }
}
