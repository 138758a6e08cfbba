/**
 * Write-behind of in-memory records, one key at a time. A PostgreSQL pool may run two statements
 * about one device on two connections in either order, so an older full-row write could land after
 * a newer one; here each key has at most one write running and one waiting, and the waiting one
 * writes the record as it is when it starts (so it also carries every change made while it waited).
 * Pure control flow over the `write` functions it is given.
 */

interface Slot {
  /** The last write started or queued for the key. */
  tail: Promise<void>;
  /** A write not started yet: a later change rides on it. */
  queued: Promise<void> | undefined;
}

export class KeyedWrites {
  private readonly slots = new Map<string, Slot>();

  /**
   * Runs `write` for `key` after the key's running write, or joins the one already waiting. Resolves
   * when a write that started after this call has finished (rejects with its error).
   */
  schedule(key: string, write: () => Promise<unknown>): Promise<void> {
    const slot = this.slots.get(key);
    if (slot?.queued) return slot.queued;
    const after = slot?.tail ?? Promise.resolve();
    const entry: Slot = slot ?? { tail: after, queued: undefined };
    const run: Promise<void> = after
      .catch(() => undefined)
      .then(async () => {
        entry.queued = undefined;
        await write();
      });
    entry.queued = run;
    entry.tail = run;
    this.slots.set(key, entry);
    run
      .finally(() => {
        if (this.slots.get(key) === entry && entry.tail === run) this.slots.delete(key);
      })
      .catch(() => undefined);
    return run;
  }

  /** Whether `key` has a write running or waiting. */
  has(key: string): boolean {
    return this.slots.has(key);
  }

  /** Keys with a write running or waiting. */
  get pending(): number {
    return this.slots.size;
  }

  /** Resolves when every write scheduled so far has settled (errors are the schedulers' to handle). */
  async idle(): Promise<void> {
    while (this.slots.size > 0) await Promise.allSettled([...this.slots.values()].map((s) => s.tail));
  }
}
