/**
 * Fisher's exact test, one-sided (is the first group's event share greater?), on a 2×2 table. Pure.
 * Used by the silent-device hard gate; exported for the statistical judge.
 */

const logFactCache: number[] = [0];

/** ln(n!) exactly summed up to 10,000 (cached), Stirling's series beyond. */
export function logFactorial(n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`logFactorial needs a non-negative integer, got ${n}`);
  if (n < 10_000) {
    for (let i = logFactCache.length; i <= n; i++) logFactCache.push(logFactCache[i - 1]! + Math.log(i));
    return logFactCache[n]!;
  }
  // Stirling with the 1/(12n) − 1/(360n³) corrections: error < 1e-12 at n ≥ 10,000.
  return n * Math.log(n) - n + 0.5 * Math.log(2 * Math.PI * n) + 1 / (12 * n) - 1 / (360 * n ** 3);
}

function logHypergeom(a: number, b: number, c: number, d: number): number {
  const n = a + b + c + d;
  return (
    logFactorial(a + b) + logFactorial(c + d) + logFactorial(a + c) + logFactorial(b + d) -
    logFactorial(n) - logFactorial(a) - logFactorial(b) - logFactorial(c) - logFactorial(d)
  );
}

/**
 * One-sided p-value P(X ≥ a) for the table [[a, b], [c, d]] with fixed margins, where a = events in
 * group 1 (e.g. silent canaries), b = non-events in group 1, c and d the same for group 2 (control).
 */
export function fisherGreater(a: number, b: number, c: number, d: number): number {
  for (const x of [a, b, c, d]) {
    if (!Number.isInteger(x) || x < 0) throw new RangeError(`Fisher's test needs non-negative integer counts, got ${x}`);
  }
  const row1 = a + b;
  const col1 = a + c;
  const maxA = Math.min(row1, col1);
  let p = 0;
  for (let x = a; x <= maxA; x++) {
    p += Math.exp(logHypergeom(x, row1 - x, col1 - x, d + (x - a)));
  }
  return Math.min(1, p);
}
