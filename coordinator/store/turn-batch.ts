/**
 * Group commit of keyed rows, and the one order of their writes: keys added in one turn of the event
 * loop are written together by one `flush` (one transaction, multi-row statements) at the end of the
 * turn, and each `add` resolves once its batch is committed (or rejects with the batch's error). One
 * flush runs at a time: keys added while one is in flight (a PostgreSQL round trip) form the next
 * batch, which starts once it has settled. The caller reads each key's row when the flush runs, so a
 * row carries every change made before it, and a key's rows are stored in the order they were read
 * (a pool could otherwise run two writes of one row on two connections in either order).
 * Pure control flow over `flush`.
 */
const NONE: ReadonlySet<never> = new Set();

export class TurnBatch<K> {
  private due = new Set<K>();
  private inFlight: ReadonlySet<K> = NONE;
  private next: Promise<void> | null = null;
  private flushing: Promise<void> | null = null;

  constructor(private readonly flush: (keys: readonly K[]) => Promise<void>) {}

  add(key: K): Promise<void> {
    this.due.add(key);
    this.next ??= this.schedule();
    return this.next;
  }

  /** Whether `key` is due or in the running flush: its stored row may be older than the caller's. */
  has(key: K): boolean {
    return this.due.has(key) || this.inFlight.has(key);
  }

  /** Resolves when every key added so far has been flushed or its flush failed (its adders see the error). */
  async idle(): Promise<void> {
    for (let p = this.next ?? this.flushing; p; p = this.next ?? this.flushing) await p.catch(() => undefined);
  }

  private async schedule(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.flushing) await this.flushing.catch(() => undefined);
    const keys = this.due;
    this.due = new Set();
    this.next = null;
    this.inFlight = keys;
    try {
      const run = this.flush([...keys]);
      this.flushing = run;
      await run;
    } finally {
      this.flushing = null;
      this.inFlight = NONE;
    }
  }
}
