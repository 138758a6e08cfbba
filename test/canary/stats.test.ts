/**
 * Numerical checks of the canary statistics against values derived by hand and against R's printed
 * results (binom.test, fisher.test, wilcox.test(exact = FALSE, conf.int = TRUE), pnorm, qnorm).
 */
import { describe, expect, it } from 'vitest';
import { lgamma, pnorm, qnorm } from '../../coordinator/stats/special.js';
import { binomLowerTail, binomUpperTail, compareRates, fisherExact, logEValue, rateRatioInterval, sequentialAbort } from '../../coordinator/stats/counts.js';
import { mannWhitney } from '../../coordinator/stats/mann-whitney.js';

describe('special functions', () => {
  it('matches R pnorm/qnorm', () => {
    expect(pnorm(-1.96)).toBeCloseTo(0.024997895148220435, 14);
    expect(pnorm(-3)).toBeCloseTo(0.0013498980316300946, 15);
    expect(pnorm(0)).toBe(0.5);
    expect(pnorm(8.5)).toBeCloseTo(1, 15);
    expect(qnorm(0.975)).toBeCloseTo(1.959963984540054, 12);
    expect(qnorm(0.99)).toBeCloseTo(2.326347874040841, 12);
    expect(qnorm(0.01)).toBeCloseTo(-2.326347874040841, 12);
    expect(qnorm(1e-10)).toBeCloseTo(-6.361340902404056, 9);
  });

  it('lgamma agrees with log factorials and Γ(1/2) = √π', () => {
    expect(lgamma(10)).toBeCloseTo(Math.log(362880), 12);
    expect(lgamma(101)).toBeCloseTo(363.73937555556347, 9);
    expect(lgamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
  });
});

describe('binomial and rate comparison', () => {
  it('binom.test(7, 10, 0.3, "greater") = 0.01059208 (sum of four exact terms)', () => {
    const byHand = 120 * 0.3 ** 7 * 0.7 ** 3 + 45 * 0.3 ** 8 * 0.7 ** 2 + 10 * 0.3 ** 9 * 0.7 + 0.3 ** 10;
    expect(binomUpperTail(7, 10, 0.3)).toBeCloseTo(byHand, 14);
    expect(binomUpperTail(7, 10, 0.3)).toBeCloseTo(0.01059208, 8);
    expect(binomUpperTail(0, 10, 0.3)).toBe(1);
    expect(binomUpperTail(11, 10, 0.3)).toBe(0);
  });

  it('binom.test(10, 10, 0.5, "greater") = 2^-10', () => {
    expect(binomUpperTail(10, 10, 0.5)).toBeCloseTo(1 / 1024, 15);
  });

  it('compares rates by exposure: equal rates give a large p, a 3x rate a tiny one', () => {
    const same = compareRates(10, 100, 100, 1000);
    expect(same.p0).toBeCloseTo(100 / 1100, 12);
    expect(same.rateRatio).toBeCloseTo(1, 12);
    expect(same.expectedE).toBeCloseTo(10, 12);
    expect(same.pValue).toBeGreaterThan(0.4);
    const worse = compareRates(30, 100, 100, 1000);
    expect(worse.rateRatio).toBeCloseTo(3, 12);
    expect(worse.pValue).toBeLessThan(1e-5);
    expect(compareRates(3, 10, 0, 100).rateRatio).toBe(Infinity);
  });

  it('reproduces the power table: RR 3 at equal exposure, 11 expected canary events detect at alpha 0.01 most of the time', () => {
    // k_e = 33 (11 x 3) vs k_c = 11 with equal exposure: P(Bin(44, .5) >= 33) is about 0.0005.
    expect(compareRates(33, 100, 11, 100).pValue).toBeLessThan(0.01);
  });
});

describe('rate ratio interval', () => {
  it('inverts the exact binomial tails (Clopper-Pearson) and contains the estimate', () => {
    // binom.test(5, 10)$conf.int = 0.187086 .. 0.812914; equal exposure makes RR = π/(1 − π).
    const r = rateRatioInterval(5, 5, 10, 10);
    expect(r.lower).toBeCloseTo(0.187086 / (1 - 0.187086), 4);
    expect(r.upper).toBeCloseTo(0.812914 / (1 - 0.812914), 3);
    expect(binomUpperTail(5, 10, 0.187086)).toBeCloseTo(0.025, 5);
    expect(binomLowerTail(5, 10, 0.812914)).toBeCloseTo(0.025, 5);
    const w = rateRatioInterval(30, 20, 100, 1000);
    expect(w.lower).toBeLessThan(15);
    expect(w.upper).toBeGreaterThan(15);
    expect(rateRatioInterval(0, 0, 1, 1)).toEqual({ lower: 0, upper: Infinity });
  });
});

describe('Fisher exact test', () => {
  it('matches R on the tea-tasting table', () => {
    const r = fisherExact(3, 1, 1, 3);
    expect(r.pGreater).toBeCloseTo(0.2428571, 7); // (16 + 1) / 70
    expect(r.pTwoSided).toBeCloseTo(0.4857143, 7); // 34 / 70
    expect(r.oddsRatio).toBe(9);
  });

  it('is one for a table with no affected devices', () => {
    expect(fisherExact(0, 10, 0, 100).pGreater).toBe(1);
  });

  it('P(all 3 affected devices among 5 canaries out of 50) = C(5,3)/C(50,3)', () => {
    expect(fisherExact(3, 2, 0, 45).pGreater).toBeCloseTo(10 / 19600, 12);
  });
});

describe('beta-binomial mixture e-value', () => {
  it('equals one with no events and grows with a lopsided canary share', () => {
    expect(logEValue(0, 0, 0.1)).toBeCloseTo(0, 12);
    // By hand, k_e = 1, k_c = 0, p0 = 0.5, c = 2 (a = b = 1): B(2,1)/B(1,1) / 0.5 = 0.5/1/0.5 = 1.
    expect(Math.exp(logEValue(1, 0, 0.5))).toBeCloseTo(1, 12);
    // k_e = 2, k_c = 0: B(3,1)/B(1,1)/0.25 = (1/3)/0.25 = 4/3.
    expect(Math.exp(logEValue(2, 0, 0.5))).toBeCloseTo(4 / 3, 12);
    expect(sequentialAbort(20, 5, 0.1, 0.01).abort).toBe(true);
    expect(sequentialAbort(3, 27, 0.1, 0.01).abort).toBe(false);
    // More canary events than expected but far from conclusive: no abort.
    expect(sequentialAbort(4, 20, 0.1, 0.01).abort).toBe(false);
  });
});

describe('Mann-Whitney with Hodges-Lehmann', () => {
  it('wilcox.test(1:5, 6:10, exact = FALSE, conf.int = TRUE): W = 0, p = 0.01219, estimate -5', () => {
    const r = mannWhitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]);
    expect(r.w).toBe(0);
    // z = (0 - 12.5 + 0.5) / sqrt(25 * 11 / 12)
    expect(r.z).toBeCloseTo(-12 / Math.sqrt(275 / 12), 12);
    expect(r.pValue).toBeCloseTo(0.01219, 5); // R prints 0.01219
    expect(r.estimate).toBeCloseTo(-5, 9);
    // R prints the interval -8 .. -2 (pairwise differences where the corrected z crosses 1.96).
    expect(r.ciLower).toBeCloseTo(-8, 6);
    expect(r.ciUpper).toBeCloseTo(-2, 6);
  });

  it('R help example (x 10 values, y 5): W = 35, two-sided normal p = 0.2446', () => {
    const x = [0.8, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46];
    const y = [1.15, 0.88, 0.9, 0.74, 1.21];
    const r = mannWhitney(x, y);
    expect(r.w).toBe(35);
    const sigma = Math.sqrt((50 / 12) * 16);
    expect(r.z).toBeCloseTo(9.5 / sigma, 12);
    expect(r.pValue).toBeCloseTo(2 * pnorm(-9.5 / sigma), 12);
    expect(r.pValue).toBeCloseTo(0.2446, 4);
    // The estimate is the median of the 50 pairwise differences.
    const diffs = x.flatMap((a) => y.map((b) => a - b)).sort((a, b) => a - b);
    expect(r.estimate).toBeCloseTo((diffs[24]! + diffs[25]!) / 2, 9);
    expect(r.ciLower).toBeLessThan(r.estimate);
    expect(r.ciUpper).toBeGreaterThan(r.estimate);
  });

  it('applies the tie correction', () => {
    const r = mannWhitney([1, 2, 2, 3], [2, 3, 3, 4]);
    // Combined ranks: 1:1, 2:(2,3,4)->3, 3:(5,6,7)->6, 4:8. x ranks 1+3+3+6 = 13; W = 13 - 10 = 3.
    expect(r.w).toBe(3);
    const ties = 2 * (27 - 3);
    const sigma = Math.sqrt((16 / 12) * (9 - ties / (8 * 7)));
    expect(r.z).toBeCloseTo((3 - 8 + 0.5) / sigma, 12);
  });

  it('is fast on a large control cohort', () => {
    const x = Array.from({ length: 500 }, (_, i) => (i * 7919) % 1000);
    const y = Array.from({ length: 10_000 }, (_, i) => (i * 104729) % 1000 + 0.5);
    const r = mannWhitney(x, y);
    expect(Math.abs(r.estimate)).toBeLessThan(50);
    expect(r.pValue).toBeGreaterThan(0.01);
  });
});
