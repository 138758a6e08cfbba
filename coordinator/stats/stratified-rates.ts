/**
 * Rate comparison across strata (hardware models, from-versions): the exact conditional test of a
 * common rate ratio, its Mantel-Haenszel estimate and exact confidence bounds, and the product of the
 * strata's mixture e-values. Pure.
 *
 * Within stratum s, given its n_s = k_e,s + k_c,s events, the canary's count is Binomial(n_s, p_s(θ))
 * with p_s(θ) = θ·E_e,s / (θ·E_e,s + E_c,s) when the canary's rate is θ times the control's. The
 * strata are independent, so the sum of canary counts has the distribution of a sum of binomials,
 * computed exactly by convolution (over each binomial's support to 12 standard deviations, where the
 * mass left out is below 1e-30). This is the exact form of the Mantel-Haenszel test for person-time
 * data: it compares each stratum's canaries with its own control, so a canary wave that happens to hold
 * more of a crash-prone model is not blamed for the model, and a regression on one model is not
 * averaged away by a control made mostly of others. With one stratum it is the plain binomial test.
 *
 * "The rate ratio is at most θ" is rejected at α exactly when the (1 − α) lower confidence bound of the
 * common rate ratio exceeds θ, so a judge that compares a threshold with the lower bound needs one tail
 * at θ, not the bound itself.
 */
import { binomLogPmf, binomLowerTail, binomUpperTail, logEValue } from './counts.js';

export interface RateStratum {
  /** Canary events and exposure (device-hours), control events and exposure. */
  kE: number;
  eE: number;
  kC: number;
  eC: number;
}

/** Strata that carry information: exposure on both sides and at least one event. */
export const informative = (s: RateStratum): boolean => s.eE > 0 && s.eC > 0 && s.kE + s.kC > 0;

const shareAt = (s: RateStratum, theta: number): number => (theta * s.eE) / (theta * s.eE + s.eC);

/** The pmf of a sum of independent binomials, as [offset, probabilities]. */
function sumPmf(ns: readonly number[], ps: readonly number[]): { lo: number; pmf: Float64Array } {
  let lo = 0;
  let pmf = new Float64Array([1]);
  for (let i = 0; i < ns.length; i++) {
    const n = ns[i]!;
    const p = ps[i]!;
    const mu = n * p;
    const sd = Math.sqrt(n * p * (1 - p));
    const a = Math.max(0, Math.floor(mu - 12 * sd - 5));
    const b = Math.min(n, Math.ceil(mu + 12 * sd + 5));
    const part = new Float64Array(b - a + 1);
    for (let k = a; k <= b; k++) part[k - a] = Math.exp(binomLogPmf(k, n, p));
    const out = new Float64Array(pmf.length + part.length - 1);
    for (let x = 0; x < pmf.length; x++) {
      const px = pmf[x]!;
      if (px === 0) continue;
      for (let y = 0; y < part.length; y++) out[x + y]! += px * part[y]!;
    }
    lo += a;
    pmf = out;
  }
  return { lo, pmf };
}

/** P(Σ X_s ≥ k) with X_s ~ Binomial(n_s, p_s) independent. */
export function sumBinomialUpperTail(ns: readonly number[], ps: readonly number[], k: number): number {
  if (ns.length === 1) return binomUpperTail(k, ns[0]!, ps[0]!);
  // Equal shares: the sum is itself binomial.
  if (ps.every((p) => p === ps[0])) return binomUpperTail(k, ns.reduce((s, n) => s + n, 0), ps[0] ?? 0);
  const { lo, pmf } = sumPmf(ns, ps);
  let tail = 0;
  for (let x = Math.max(0, k - lo); x < pmf.length; x++) tail += pmf[x]!;
  return Math.min(1, tail);
}

/** P(Σ X_s ≤ k) with X_s ~ Binomial(n_s, p_s) independent. */
export function sumBinomialLowerTail(ns: readonly number[], ps: readonly number[], k: number): number {
  if (ns.length === 1) return binomLowerTail(k, ns[0]!, ps[0]!);
  if (ps.every((p) => p === ps[0])) return binomLowerTail(k, ns.reduce((s, n) => s + n, 0), ps[0] ?? 0);
  const { lo, pmf } = sumPmf(ns, ps);
  let tail = 0;
  for (let x = 0; x <= Math.min(pmf.length - 1, k - lo); x++) tail += pmf[x]!;
  return Math.min(1, tail);
}

export interface StratifiedRates {
  /** Totals over the informative strata. */
  kE: number;
  kC: number;
  eE: number;
  eC: number;
  strata: number;
  /** Mantel-Haenszel rate ratio; Infinity when only the canary had events, 1 with none. */
  rateRatio: number;
  /** Canary events expected at each stratum's control rate. */
  expectedE: number;
  /** One-sided exact p-value of "the rate ratio is at most 1". */
  pValue: number;
}

/** p-value of "the common rate ratio is at most θ" (exact, conditional on each stratum's events). */
export function ratioPValue(strata: readonly RateStratum[], theta: number): number {
  const used = strata.filter(informative);
  if (!used.length) return 1;
  const kE = used.reduce((s, x) => s + x.kE, 0);
  return sumBinomialUpperTail(used.map((s) => s.kE + s.kC), used.map((s) => shareAt(s, theta)), kE);
}

/** The stratified comparison at θ = 1 with the Mantel-Haenszel estimate. */
export function compareStratifiedRates(strata: readonly RateStratum[]): StratifiedRates {
  const used = strata.filter(informative);
  const sum = (f: (s: RateStratum) => number) => used.reduce((a, s) => a + f(s), 0);
  const num = sum((s) => (s.kE * s.eC) / (s.eE + s.eC));
  const den = sum((s) => (s.kC * s.eE) / (s.eE + s.eC));
  return {
    kE: sum((s) => s.kE),
    kC: sum((s) => s.kC),
    eE: sum((s) => s.eE),
    eC: sum((s) => s.eC),
    strata: used.length,
    rateRatio: den > 0 ? num / den : num > 0 ? Infinity : 1,
    expectedE: sum((s) => (s.kC * s.eE) / s.eC),
    pValue: ratioPValue(used, 1),
  };
}

/**
 * Exact one-sided confidence bounds of the common rate ratio: `lower` is the θ where
 * P_θ(Σ X ≥ k_e) = α (so the data reject every θ below it at α), `upper` the mirror. 0 and Infinity
 * where the data cannot bound it.
 */
export function ratioBounds(strata: readonly RateStratum[], alphaLower: number, alphaUpper = alphaLower): { lower: number; upper: number } {
  const used = strata.filter(informative);
  if (!used.length) return { lower: 0, upper: Infinity };
  const ns = used.map((s) => s.kE + s.kC);
  const kE = used.reduce((s, x) => s + x.kE, 0);
  const kAll = ns.reduce((a, b) => a + b, 0);
  const at = (theta: number) => used.map((s) => shareAt(s, theta));
  const solve = (f: (logTheta: number) => number): number => {
    // f increases in log θ; bisection over θ in [1e-6, 1e6].
    let lo = Math.log(1e-6);
    let hi = Math.log(1e6);
    if (f(lo) >= 0) return 0;
    if (f(hi) <= 0) return Infinity;
    for (let i = 0; i < 50; i++) {
      const mid = (lo + hi) / 2;
      if (f(mid) < 0) lo = mid;
      else hi = mid;
    }
    return Math.exp((lo + hi) / 2);
  };
  const lower = kE === 0 ? 0 : solve((lt) => sumBinomialUpperTail(ns, at(Math.exp(lt)), kE) - alphaLower);
  const upper = kE === kAll ? Infinity : solve((lt) => alphaUpper - sumBinomialLowerTail(ns, at(Math.exp(lt)), kE));
  return { lower, upper };
}

/**
 * ln of the product of the strata's beta-binomial mixture e-values for "the canary's share of events
 * exceeds its share of exposure": under no change in any stratum the product is an e-value too.
 */
export function logStratifiedEValue(strata: readonly RateStratum[], concentration = 2): number {
  return strata.filter(informative).reduce((s, x) => s + logEValue(x.kE, x.kC, x.eE / (x.eE + x.eC), concentration), 0);
}
