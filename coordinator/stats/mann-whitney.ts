/**
 * Two-sample Mann-Whitney (Wilcoxon rank-sum) test with the normal approximation, continuity and tie
 * correction, and the Hodges-Lehmann location shift with its confidence interval — the same numbers as
 * R's `wilcox.test(x, y, conf.int = TRUE, exact = FALSE, correct = TRUE)`, which Kayenta reproduces.
 * Pure.
 *
 * R finds the interval by root-finding on the standardised rank statistic of (x − d, y) as d moves
 * between min(x) − max(y) and max(x) − min(y). That function is a non-increasing step function of d, so
 * bisection converges to the exact jump point (a pairwise difference), where R's `uniroot` (tol 1e-4)
 * lands within its tolerance. Where the function is exactly zero over an interval (the estimate with an
 * even number of pairs) the midpoint is returned, which is the textbook Hodges-Lehmann median.
 *
 * Each evaluation merges the two sorted samples in O(n + m), so large control cohorts stay cheap.
 */
import { pnorm, qnorm } from './special.js';

export interface MannWhitneyResult {
  /** R's W: rank sum of x minus nx(nx+1)/2 (pairs with x > y, ties counting one half). */
  w: number;
  /** Standardised statistic after continuity correction. */
  z: number;
  /** Two-sided p-value. */
  pValue: number;
  /** Hodges-Lehmann estimate of the shift x − y. */
  estimate: number;
  /** Two-sided confidence interval for the shift at `confidence`. */
  ciLower: number;
  ciUpper: number;
  confidence: number;
  nx: number;
  ny: number;
}

/** U (pairs x_i − d > y_j plus half the ties) and Σ(t³ − t) over tie groups of the combined sample. */
function rankStats(xs: readonly number[], ys: readonly number[], d: number): { u: number; ties: number } {
  let i = 0;
  let j = 0;
  let u = 0;
  let ties = 0;
  let yBelow = 0; // y values strictly below the current x value
  while (i < xs.length || j < ys.length) {
    const xv = i < xs.length ? xs[i]! - d : Infinity;
    const yv = j < ys.length ? ys[j]! : Infinity;
    const v = Math.min(xv, yv);
    let cx = 0;
    let cy = 0;
    while (i < xs.length && xs[i]! - d === v) {
      cx++;
      i++;
    }
    while (j < ys.length && ys[j] === v) {
      cy++;
      j++;
    }
    u += cx * (yBelow + cy / 2);
    yBelow += cy;
    const t = cx + cy;
    if (t > 1) ties += t * t * t - t;
  }
  return { u, ties };
}

function sigmaOf(nx: number, ny: number, ties: number): number {
  const n = nx + ny;
  return Math.sqrt(((nx * ny) / 12) * (n + 1 - ties / (n * (n - 1))));
}

/** Finds where a non-increasing step function crosses zero (midpoint of a flat zero stretch). */
function stepRoot(f: (d: number) => number, lo: number, hi: number): number {
  const fLo = f(lo);
  const fHi = f(hi);
  if (fLo <= 0) return lo;
  if (fHi >= 0) return hi;
  const bisect = (pred: (v: number) => boolean): number => {
    let a = lo;
    let b = hi;
    for (let k = 0; k < 200 && b - a > 1e-12 * Math.max(1, Math.abs(a), Math.abs(b)); k++) {
      const m = a + (b - a) / 2;
      if (m <= a || m >= b) break;
      if (pred(f(m))) a = m;
      else b = m;
    }
    return a + (b - a) / 2;
  };
  const last = bisect((v) => v > 0); // end of the positive part
  const first = bisect((v) => v >= 0); // start of the negative part
  return (last + first) / 2;
}

/**
 * Mann-Whitney test of x against y (two-sided) with the Hodges-Lehmann shift and its confidence
 * interval. Requires at least one value on each side and not every value identical (callers treat
 * those cases as NoData and Pass, as Kayenta does).
 */
export function mannWhitney(x: readonly number[], y: readonly number[], confidence = 0.95): MannWhitneyResult {
  const nx = x.length;
  const ny = y.length;
  if (nx === 0 || ny === 0) throw new RangeError('mannWhitney needs at least one value in each sample');
  const xs = [...x].sort((a, b) => a - b);
  const ys = [...y].sort((a, b) => a - b);

  const base = rankStats(xs, ys, 0);
  const sigma = sigmaOf(nx, ny, base.ties);
  const dz0 = base.u - (nx * ny) / 2;
  const z = sigma > 0 ? (dz0 - Math.sign(dz0) * 0.5) / sigma : 0;
  const pValue = sigma > 0 ? Math.min(1, 2 * Math.min(pnorm(z), pnorm(-z))) : 1;

  const muMin = xs[0]! - ys[ny - 1]!;
  const muMax = xs[nx - 1]! - ys[0]!;
  const wdiff = (correct: boolean, zq: number) => (d: number): number => {
    const { u, ties } = rankStats(xs, ys, d);
    const dz = u - (nx * ny) / 2;
    const s = sigmaOf(nx, ny, ties);
    if (!(s > 0)) return dz > 0 ? Infinity : dz < 0 ? -Infinity : 0;
    const corr = correct ? Math.sign(dz) * 0.5 : 0;
    return (dz - corr) / s - zq;
  };
  const alpha = 1 - confidence;
  const zUpper = qnorm(1 - alpha / 2);
  const ciLower = stepRoot(wdiff(true, zUpper), muMin, muMax);
  const ciUpper = stepRoot(wdiff(true, -zUpper), muMin, muMax);
  const estimate = stepRoot(wdiff(false, 0), muMin, muMax);
  return { w: base.u, z, pValue, estimate, ciLower, ciUpper, confidence, nx, ny };
}
