/**
 * Label values that cannot grow without bound. A label fed from data (a gate rule names a metric, and
 * devices name their custom metrics) keeps the first `max` distinct values it sees and folds the rest
 * into `other`, so a scrape never turns into thousands of series. Pure.
 */

/** Label values: lower-case letters, digits and `-_:.`, at most 64 characters. */
export function cleanLabel(value: string): string {
  const v = value.toLowerCase().replace(/[^a-z0-9_:.-]+/g, '-').replace(/^-+|-+$/g, '');
  return v.length === 0 ? 'none' : v.slice(0, 64);
}

export class BoundedLabel {
  private readonly seen = new Set<string>();

  constructor(private readonly max: number) {}

  /** `value` cleaned, or `other` once `max` distinct values have been used. */
  of(value: string): string {
    const v = cleanLabel(value);
    if (this.seen.has(v)) return v;
    if (this.seen.size >= this.max) return 'other';
    this.seen.add(v);
    return v;
  }
}

/**
 * The family of a gate rule, without the place it applies to: `critical:crashes[gateway-x]` and
 * `critical:crashes@last-8%` are both `critical:crashes`; the combination's
 * `most-cautious: hard-gates=Abort (hard-limit:trial-failures)` is `hard-limit:trial-failures`.
 */
export function ruleFamily(rule: string): string {
  const combined = /^most-cautious: [^=]+=\w+ \((.*)\)$/.exec(rule);
  const inner = combined ? combined[1]! : rule;
  const head = inner.split(/[\s[@(;,]/, 1)[0] ?? inner;
  return head.length > 0 ? head : inner.slice(0, 32);
}
