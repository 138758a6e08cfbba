/**
 * In-process counters (refused connects, ACL refusals, bad payloads, ingest totals), exposed on the
 * admin API at GET /v1/metrics. Pure data structure.
 */
export class Counters {
  private readonly values = new Map<string, number>();

  inc(name: string, by = 1): void {
    this.values.set(name, (this.values.get(name) ?? 0) + by);
  }

  get(name: string): number {
    return this.values.get(name) ?? 0;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.values].sort(([a], [b]) => (a < b ? -1 : 1)));
  }
}
