/**
 * The stratified rate test against brute-force enumeration and against the single-stratum binomial
 * test it generalises; Poisson and binomial tails against R's printed values.
 */
import { describe, expect, it } from 'vitest';
import { binomLogPmf, binomUpperTail, poissonUpperTail, rateRatioInterval } from '../../coordinator/stats/counts.js';
import {
  compareStratifiedRates,
  logStratifiedEValue,
  ratioBounds,
  ratioPValue,
  sumBinomialLowerTail,
  sumBinomialUpperTail,
} from '../../coordinator/stats/stratified-rates.js';
import { logEValue } from '../../coordinator/stats/counts.js';

describe('tails from the incomplete beta and gamma functions', () => {
  it('matches R ppois and pbinom', () => {
    // 1 - ppois(4, 2) = 1 - 7 e^-2
    expect(poissonUpperTail(5, 2)).toBeCloseTo(1 - 7 * Math.exp(-2), 14);
    expect(poissonUpperTail(0, 2)).toBe(1);
    // pbinom(2, 1000, 0.01, lower.tail = FALSE) = 1 - (0.99^1000 + 1000·0.01·0.99^999 + 499500·0.0001·0.99^998)
    const byHand = 1 - (0.99 ** 1000 + 1000 * 0.01 * 0.99 ** 999 + 499500 * 1e-4 * 0.99 ** 998);
    expect(binomUpperTail(3, 1000, 0.01)).toBeCloseTo(byHand, 13);
  });
});

describe('sum of binomials', () => {
  const brute = (ns: number[], ps: number[], k: number): number => {
    let dist = [1];
    ns.forEach((n, i) => {
      const next = new Array<number>(dist.length + n).fill(0);
      dist.forEach((p, x) => {
        for (let y = 0; y <= n; y++) next[x + y]! += p * Math.exp(binomLogPmf(y, n, ps[i]!));
      });
      dist = next;
    });
    return dist.slice(k).reduce((a, b) => a + b, 0);
  };

  it('equals enumeration', () => {
    const ns = [7, 12, 30];
    const ps = [0.1, 0.4, 0.05];
    for (const k of [0, 3, 6, 10, 20]) expect(sumBinomialUpperTail(ns, ps, k)).toBeCloseTo(brute(ns, ps, k), 12);
    expect(sumBinomialLowerTail(ns, ps, 5)).toBeCloseTo(1 - brute(ns, ps, 6), 12);
  });

  it('is the single binomial test for one stratum or equal shares', () => {
    expect(sumBinomialUpperTail([20], [0.3], 11)).toBe(binomUpperTail(11, 20, 0.3));
    expect(sumBinomialUpperTail([8, 12], [0.3, 0.3], 11)).toBeCloseTo(binomUpperTail(11, 20, 0.3), 14);
  });
});

describe('stratified rate comparison', () => {
  it('does not blame the canary for its model mix', () => {
    // Model A crashes 10x as often as model B; the canary is mostly A, the control mostly B; within
    // each model the canary's rate equals the control's.
    const strata = [
      { kE: 40, eE: 400, kC: 20, eC: 200 },
      { kE: 1, eE: 100, kC: 18, eC: 1800 },
    ];
    const pooled = compareStratifiedRates([{ kE: 41, eE: 500, kC: 38, eC: 2000 }]);
    expect(pooled.pValue).toBeLessThan(1e-6);
    const stratified = compareStratifiedRates(strata);
    expect(stratified.rateRatio).toBeCloseTo(1, 1);
    expect(stratified.pValue).toBeGreaterThan(0.2);
    expect(stratified.expectedE).toBeCloseTo(40 + 1, 6);
  });

  it('finds a regression on one model of three that pooling dilutes', () => {
    const healthy = { kE: 5, eE: 500, kC: 50, eC: 5000 };
    const bad = { kE: 20, eE: 500, kC: 50, eC: 5000 };
    expect(ratioPValue([bad], 1)).toBeLessThan(1e-5);
    const bounds = ratioBounds([bad], 0.001);
    expect(bounds.lower).toBeGreaterThan(1.5);
    expect(ratioBounds([healthy, healthy, bad], 0.001).lower).toBeLessThan(bounds.lower);
  });

  it('bounds invert the test: p(θ = lower) = α', () => {
    const s = [{ kE: 30, eE: 200, kC: 60, eC: 1000 }, { kE: 12, eE: 100, kC: 40, eC: 900 }];
    const { lower, upper } = ratioBounds(s, 0.01);
    expect(ratioPValue(s, lower)).toBeCloseTo(0.01, 6);
    expect(ratioPValue(s, lower * 0.98)).toBeLessThan(0.01);
    expect(upper).toBeGreaterThan(compareStratifiedRates(s).rateRatio);
    // One stratum: the exact Clopper-Pearson bound.
    const one = { kE: 30, eE: 200, kC: 60, eC: 1000 };
    expect(ratioBounds([one], 0.025).lower).toBeCloseTo(rateRatioInterval(30, 60, 200, 1000, 0.95).lower, 6);
    expect(ratioBounds([{ kE: 0, eE: 10, kC: 5, eC: 10 }], 0.01).lower).toBe(0);
  });

  it('multiplies the strata e-values', () => {
    const a = { kE: 9, eE: 100, kC: 10, eC: 1000 };
    const b = { kE: 2, eE: 50, kC: 30, eC: 500 };
    expect(logStratifiedEValue([a, b])).toBeCloseTo(logEValue(9, 10, 100 / 1100) + logEValue(2, 30, 50 / 550), 12);
    expect(logStratifiedEValue([{ kE: 0, eE: 0, kC: 3, eC: 10 }])).toBe(0);
  });
});
