/**
 * In-process counters (refused connects, ACL refusals, bad payloads, ingest totals, downloads),
 * exposed on the admin API at GET /v1/metrics. Each counts since this process started; the increments
 * not yet stored are kept apart so that counter-totals.ts can add them to the totals that survive a
 * restart. Pure data structure.
 */
export class Counters {
  private readonly values = new Map<string, number>();
  private unstored = new Map<string, number>();

  inc(name: string, by = 1): void {
    this.values.set(name, (this.values.get(name) ?? 0) + by);
    this.unstored.set(name, (this.unstored.get(name) ?? 0) + by);
  }

  get(name: string): number {
    return this.values.get(name) ?? 0;
  }

  /** Every counter since this process started, sorted by name. */
  snapshot(): Record<string, number> {
    return sortedRecord(this.values);
  }

  /** Increments not yet stored (read-only view). */
  pending(): ReadonlyMap<string, number> {
    return this.unstored;
  }

  /** Hands over the increments not yet stored; `restore` them if storing fails. */
  takePending(): Map<string, number> {
    const taken = this.unstored;
    this.unstored = new Map();
    return taken;
  }

  restore(increments: ReadonlyMap<string, number>): void {
    for (const [name, by] of increments) this.unstored.set(name, (this.unstored.get(name) ?? 0) + by);
  }
}

export function sortedRecord(values: Iterable<[string, number]>): Record<string, number> {
  return Object.fromEntries([...values].sort(([a], [b]) => (a < b ? -1 : 1)));
}
