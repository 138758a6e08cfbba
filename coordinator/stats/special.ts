/**
 * Special functions the canary statistics need, from stdlib's maintained ports of Boost and Cephes:
 * log-gamma, log-beta, the regularized incomplete beta and gamma functions (exact binomial and Poisson
 * tails in O(1)), the standard normal CDF and its inverse; plus log-space sums. Pure.
 *
 * The unit tests check these against R's printed results (pnorm, qnorm, lgamma, pbinom, ppois).
 */
import gammaln from '@stdlib/math-base-special-gammaln';
import betainc from '@stdlib/math-base-special-betainc';
import gammainc from '@stdlib/math-base-special-gammainc';
import normalCdf from '@stdlib/stats-base-dists-normal-cdf';
import normalQuantile from '@stdlib/stats-base-dists-normal-quantile';

/** ln Γ(x) for x > 0. */
export function lgamma(x: number): number {
  return gammaln(x);
}

/** ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b). */
export function lbeta(a: number, b: number): number {
  return gammaln(a) + gammaln(b) - gammaln(a + b);
}

/** ln C(n, k). */
export function lchoose(n: number, k: number): number {
  if (k < 0 || k > n) return -Infinity;
  return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1);
}

/** Regularized incomplete beta I_x(a, b); `upper` gives 1 − I_x(a, b) without cancellation. */
export function incompleteBeta(x: number, a: number, b: number, upper = false): number {
  if (x <= 0) return upper ? 1 : 0;
  if (x >= 1) return upper ? 0 : 1;
  return betainc(x, a, b, true, upper);
}

/** Regularized lower incomplete gamma P(s, x); `upper` gives Q(s, x) = 1 − P(s, x). */
export function incompleteGamma(x: number, s: number, upper = false): number {
  if (x <= 0) return upper ? 1 : 0;
  return gammainc(x, s, true, upper);
}

/** Standard normal CDF Φ(x). */
export function pnorm(x: number): number {
  return normalCdf(x, 0, 1);
}

/**
 * Inverse standard normal CDF Φ⁻¹(p): stdlib's quantile (via erfcinv, ~1e-9 relative deep in the
 * tail) refined by one Halley step against the CDF, which brings it to R's qnorm digit for digit.
 */
export function qnorm(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`qnorm needs 0 <= p <= 1, got ${p}`);
  const x = normalQuantile(p, 0, 1);
  if (!Number.isFinite(x)) return x;
  const e = normalCdf(x, 0, 1) - p;
  const u = e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
  return x - u / (1 + (x * u) / 2);
}
