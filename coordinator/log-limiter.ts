/**
 * Rate-limited logging: at most one line per key per interval, the next line saying how many were
 * held back, so a flood (a device sending 50,000 messages a second, a wrong-password loop) costs a
 * log line every few seconds instead of one per message. Bounded: past `maxKeys` the table starts
 * over. Pure apart from the injected time.
 */
export class LogLimiter {
  private readonly last = new Map<string, { at: number; held: number }>();

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number,
    private readonly maxKeys = 10_000,
  ) {}

  /**
   * Whether to log for `key` now: undefined to hold the line back, otherwise how many lines were held
   * back since the last one (0 the first time).
   */
  admit(key: string): number | undefined {
    const now = this.now();
    const e = this.last.get(key);
    if (e && now - e.at < this.intervalMs) {
      e.held++;
      return undefined;
    }
    if (!e && this.last.size >= this.maxKeys) this.last.clear();
    this.last.set(key, { at: now, held: 0 });
    return e?.held ?? 0;
  }
}
