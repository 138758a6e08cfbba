/**
 * Exact tests for rare counts: the conditional binomial test on two Poisson rates, Fisher's exact test
 * on a 2×2 table, and the beta-binomial mixture e-value for anytime-valid early abort. Pure.
 *
 * Under "no change", canary events k_e over exposure E_e and control events k_c over E_c satisfy
 * k_e | (k_e + k_c) ~ Binomial(k_e + k_c, p0) with p0 = E_e / (E_e + E_c) — the conditional test for
 * comparing two Poisson rates, exact at any count. Tails come from the regularized incomplete beta
 * function, so a test costs the same at 5 events as at 50,000.
 */
import { incompleteBeta, incompleteGamma, lbeta, lchoose } from './special.js';

/** ln P(X = k) for X ~ Binomial(n, p). */
export function binomLogPmf(k: number, n: number, p: number): number {
  if (k < 0 || k > n) return -Infinity;
  if (p === 0) return k === 0 ? 0 : -Infinity;
  if (p === 1) return k === n ? 0 : -Infinity;
  return lchoose(n, k) + k * Math.log(p) + (n - k) * Math.log1p(-p);
}

/** P(X ≥ k) for X ~ Binomial(n, p): R's `binom.test(k, n, p, alternative = "greater")$p.value`. */
export function binomUpperTail(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  // P(X ≥ k) = I_p(k, n − k + 1).
  return incompleteBeta(p, k, n - k + 1);
}

/** P(X ≤ k) for X ~ Binomial(n, p). */
export function binomLowerTail(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n) return 1;
  return incompleteBeta(p, k + 1, n - k, true);
}

export interface RateComparison {
  /** Canary and control events and exposures (device-hours). */
  kE: number;
  eE: number;
  kC: number;
  eC: number;
  /** Canary share of exposure: the binomial success probability under no change. */
  p0: number;
  /** Rate ratio (k_e/E_e)/(k_c/E_c); Infinity when the control had no events but the canary did. */
  rateRatio: number;
  /** One-sided exact conditional p-value P(Bin(k_e + k_c, p0) ≥ k_e). */
  pValue: number;
  /** Canary events expected at the control's rate: k_c · E_e / E_c. */
  expectedE: number;
}

/** The exact conditional binomial comparison of two event rates (canary worse = small p). */
export function compareRates(kE: number, eE: number, kC: number, eC: number): RateComparison {
  const p0 = eE / (eE + eC);
  const rateE = eE > 0 ? kE / eE : 0;
  const rateC = eC > 0 ? kC / eC : 0;
  const rateRatio = rateC > 0 ? rateE / rateC : rateE > 0 ? Infinity : 1;
  const pValue = eE > 0 && eC > 0 ? binomUpperTail(kE, kE + kC, p0) : 1;
  const expectedE = eC > 0 ? (kC * eE) / eC : 0;
  return { kE, eE, kC, eC, p0, rateRatio, pValue, expectedE };
}

/**
 * Exact (Clopper-Pearson) confidence interval for the rate ratio, from the interval for the binomial
 * share π = k_e/(k_e + k_c): RR = π/(1 − π) · (E_c/E_e). Bounds found by bisection on the exact tails.
 */
export function rateRatioInterval(kE: number, kC: number, eE: number, eC: number, confidence = 0.95): { lower: number; upper: number } {
  const n = kE + kC;
  if (n === 0 || !(eE > 0 && eC > 0)) return { lower: 0, upper: Infinity };
  const a = (1 - confidence) / 2;
  const solve = (f: (p: number) => number): number => {
    let lo = 0;
    let hi = 1;
    for (let i = 0; i < 60; i++) {
      const mid = (lo + hi) / 2;
      if (f(mid) < 0) lo = mid;
      else hi = mid;
    }
    return (lo + hi) / 2;
  };
  // P(X ≥ k_e | π_L) = a (increasing in π); P(X ≤ k_e | π_U) = a (decreasing in π).
  const piL = kE === 0 ? 0 : solve((p) => binomUpperTail(kE, n, p) - a);
  const piU = kE === n ? 1 : solve((p) => a - binomLowerTail(kE, n, p));
  const toRR = (pi: number) => (pi >= 1 ? Infinity : (pi / (1 - pi)) * (eC / eE));
  return { lower: toRR(piL), upper: toRR(piU) };
}

/** P(X ≥ k) for X ~ Poisson(lambda): R's `poisson.test(k, T, r, alternative = "greater")$p.value` with lambda = r·T. */
export function poissonUpperTail(k: number, lambda: number): number {
  if (k <= 0) return 1;
  if (!(lambda > 0)) return 0;
  // P(X ≥ k) = P(k, λ), the regularized lower incomplete gamma function.
  return incompleteGamma(lambda, k);
}

/** ln of the beta-binomial mixture e-value for "canary share of events exceeds p0". */
export function logEValue(kE: number, kC: number, p0: number, concentration = 2): number {
  if (!(p0 > 0 && p0 < 1)) return 0;
  const a = concentration * p0;
  const b = concentration * (1 - p0);
  return lbeta(a + kE, b + kC) - lbeta(a, b) - kE * Math.log(p0) - kC * Math.log1p(-p0);
}

/**
 * Anytime-valid early abort (after Lindon et al.): the e-value of the counts so far reaches 1/α and
 * the canary's share of events exceeds its share of exposure. Valid however often it is checked,
 * provided cohorts stay fixed within the wave.
 */
export function sequentialAbort(kE: number, kC: number, p0: number, alpha: number, concentration = 2): { eValue: number; abort: boolean } {
  const logE = logEValue(kE, kC, p0, concentration);
  const n = kE + kC;
  const abort = n > 0 && kE / n > p0 && logE >= Math.log(1 / alpha);
  return { eValue: Math.exp(Math.min(logE, 700)), abort };
}

export interface FisherResult {
  /** One-sided: P(canary has at least this many affected devices) — R's `alternative = "greater"`. */
  pGreater: number;
  /** Two-sided as R computes it (sum of table probabilities not above the observed one). */
  pTwoSided: number;
  /** Sample odds ratio (a·d)/(b·c); Infinity when b·c = 0 and a·d > 0, NaN when both are 0. */
  oddsRatio: number;
}

/** Fisher's exact test on [[a, b], [c, d]] (rows: canary, control; columns: affected, not). */
export function fisherExact(a: number, b: number, c: number, d: number): FisherResult {
  for (const x of [a, b, c, d]) {
    if (!Number.isInteger(x) || x < 0) throw new RangeError(`Fisher's test needs non-negative integer counts, got ${x}`);
  }
  const r1 = a + b;
  const c1 = a + c;
  const n = a + b + c + d;
  const lo = Math.max(0, r1 - (n - c1));
  const hi = Math.min(r1, c1);
  const logDen = lchoose(n, r1);
  const logP = (x: number) => lchoose(c1, x) + lchoose(n - c1, r1 - x) - logDen;
  const obs = logP(a);
  let greater = 0;
  let twoSided = 0;
  // R: relErr = 1 + 1e-7; sum d[d <= d[x] * relErr]
  const cut = obs + Math.log1p(1e-7);
  for (let x = lo; x <= hi; x++) {
    const lp = logP(x);
    const p = Math.exp(lp);
    if (x >= a) greater += p;
    if (lp <= cut) twoSided += p;
  }
  const ad = a * d;
  const bc = b * c;
  return { pGreater: Math.min(1, greater), pTwoSided: Math.min(1, twoSided), oddsRatio: bc > 0 ? ad / bc : ad > 0 ? Infinity : NaN };
}

/** One-sided Fisher p-value P(X ≥ a) for [[a, b], [c, d]] (e.g. silent canaries against silent control). */
export function fisherGreater(a: number, b: number, c: number, d: number): number {
  return fisherExact(a, b, c, d).pGreater;
}
