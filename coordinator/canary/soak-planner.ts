/**
 * The soak planner: what a canary wave can detect before it starts. For a crash-like counter with a
 * baseline rate, a canary cohort of N devices soaking T hours against a control of M devices, the
 * probability (power) that the judge's whole-window test rolls back a release that multiplies the rate
 * by R — and the soak, or the canary count, that reaches a wanted power. Pure.
 *
 * Exact: the total number of events is Poisson, the canary's share of them binomial; power sums, over
 * every total n, the probability that the canary's count reaches the smallest count the judge calls
 * Critical (lower confidence bound of the rate ratio at its share of abortAlpha ≥ criticalRatio), and
 * likewise for High (Monitor). It assumes one stratum, devices that report throughout the soak and
 * Poisson events (no device is more crash-prone than another), so it is the best case: overdispersed
 * or mixed fleets need more.
 */
import { binomUpperTail } from '../stats/counts.js';
import { DEFAULT_JUDGE_CONFIG, type JudgeConfig } from './judge-config.js';

export interface PlanQuestion {
  canaries: number;
  /** Control devices compared with (the snapshot samples at most 1,000). */
  control: number;
  /** Events per device-day at baseline, e.g. 0.24 crashes. */
  baselinePerDeviceDay: number;
  /** Rate ratio to detect, e.g. 2. */
  ratio: number;
  /** Soak in hours. */
  soakH: number;
}

export interface PlanAnswer {
  /** Probability that the gate aborts (Critical), and that it at least holds (High or Critical). */
  powerAbort: number;
  powerHold: number;
  /** Canary events expected at baseline, and under the regression. */
  expectedBaseline: number;
  expectedRegressed: number;
  /** Significance the whole-window test uses for Critical and High. */
  alphaAbort: number;
  alphaHigh: number;
}

/** The whole-window test's alphas for one counter (the onset tests take their share; one stratum). */
export function plannerAlphas(cfg: JudgeConfig = DEFAULT_JUDGE_CONFIG): { high: number; abort: number } {
  const share = 1 - cfg.testShares.onset;
  const m = Math.max(1, cfg.counters.length);
  return { high: (cfg.alpha / m) * share, abort: (cfg.abortAlpha / m) * share };
}

/** Smallest canary count k of n events with P(Bin(n, p) ≥ k) < alpha, or n + 1. */
function criticalCount(n: number, p: number, alpha: number): number {
  let lo = 0;
  let hi = n + 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (binomUpperTail(mid, n, p) < alpha) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function poissonPmfs(lambda: number): { from: number; p: number[] } {
  const sd = Math.sqrt(lambda);
  const from = Math.max(0, Math.floor(lambda - 10 * sd - 5));
  const to = Math.ceil(lambda + 10 * sd + 5);
  const p: number[] = [];
  let logP = -lambda + from * Math.log(Math.max(lambda, 1e-300)) - logFactorial(from);
  for (let n = from; n <= to; n++) {
    p.push(Math.exp(logP));
    logP += Math.log(lambda) - Math.log(n + 1);
  }
  return { from, p };
}

function logFactorial(n: number): number {
  let s = 0;
  for (let i = 2; i <= n; i++) s += Math.log(i);
  return s;
}

/** Power of one wave's gate against a regression. */
export function planPower(q: PlanQuestion, cfg: JudgeConfig = DEFAULT_JUDGE_CONFIG): PlanAnswer {
  const crash = cfg.counters.find((c) => c.counter === 'crashes') ?? cfg.counters[0]!;
  const { high, abort } = plannerAlphas(cfg);
  const rateH = q.baselinePerDeviceDay / 24;
  const eE = q.canaries * q.soakH;
  const eC = q.control * q.soakH;
  const lamE = q.ratio * rateH * eE;
  const lamC = rateH * eC;
  const p1 = lamE / (lamE + lamC);
  const at = (theta: number) => (theta * eE) / (theta * eE + eC);
  const { from, p } = poissonPmfs(lamE + lamC);
  let powerAbort = 0;
  let powerHold = 0;
  for (let i = 0; i < p.length; i++) {
    const n = from + i;
    if (n === 0 || p[i]! < 1e-15) continue;
    const kA = criticalCount(n, at(crash.criticalRatio), abort);
    const kH = criticalCount(n, at(crash.highRatio), high);
    powerAbort += p[i]! * binomUpperTail(kA, n, p1);
    powerHold += p[i]! * binomUpperTail(Math.min(kA, kH), n, p1);
  }
  return { powerAbort, powerHold, expectedBaseline: rateH * eE, expectedRegressed: lamE, alphaAbort: abort, alphaHigh: high };
}

/** Smallest value in [lo, hi] (doubling then bisection on a monotone predicate), or undefined. */
function smallest(ok: (x: number) => boolean, lo: number, hi: number, integer: boolean): number | undefined {
  let a = lo;
  let b = lo;
  while (!ok(b)) {
    a = b;
    b = b * 2;
    if (b > hi) {
      if (!ok(hi)) return undefined;
      b = hi;
      break;
    }
  }
  for (let i = 0; i < 40 && (integer ? b - a > 1 : b - a > 0.01 * b); i++) {
    const mid = integer ? Math.floor((a + b) / 2) : (a + b) / 2;
    if (ok(mid)) b = mid;
    else a = mid;
  }
  return b;
}

/** The soak (hours, up to 30 days) at which the gate aborts the regression with at least `power`. */
export function soakNeeded(q: Omit<PlanQuestion, 'soakH'>, power: number, cfg: JudgeConfig = DEFAULT_JUDGE_CONFIG): number | undefined {
  return smallest((h) => planPower({ ...q, soakH: h }, cfg).powerAbort >= power, 0.25, 720, false);
}

/** The canary count (up to 100,000) at which a soak of `soakH` aborts the regression with at least `power`. */
export function canariesNeeded(q: Omit<PlanQuestion, 'canaries'>, power: number, cfg: JudgeConfig = DEFAULT_JUDGE_CONFIG): number | undefined {
  return smallest((n) => planPower({ ...q, canaries: n }, cfg).powerAbort >= power, 1, 100_000, true);
}

/** What `deploy create` needs of a deployment to check its canary waves against its plan. */
export interface PlannedDeployment {
  waves: readonly { percent: number; soakMs: number }[];
  judge?: { plan?: { baselinePerDeviceDay: number; ratio: number; power: number } | undefined } | undefined;
}

/**
 * Warnings for canary waves (every wave but the last) whose gate could not roll back the planned
 * regression with the planned probability: `sizes[i]` known devices in wave i, `known` in the target.
 * The gate's canaries are every device of the waves started so far; its control the rest (at most
 * `maxControl`).
 */
export function planWarnings(spec: PlannedDeployment, sizes: readonly number[], known: number, maxControl = 1000, cfg: JudgeConfig = DEFAULT_JUDGE_CONFIG): string[] {
  const plan = spec.judge?.plan;
  if (!plan) return [];
  const out: string[] = [];
  let canaries = 0;
  for (let i = 0; i < spec.waves.length - 1; i++) {
    canaries += sizes[i] ?? 0;
    const control = Math.min(maxControl, known - canaries);
    const soakH = spec.waves[i]!.soakMs / 3_600_000;
    if (canaries === 0 || control <= 0 || soakH <= 0) continue;
    const q = { control, baselinePerDeviceDay: plan.baselinePerDeviceDay, ratio: plan.ratio };
    const p = planPower({ ...q, canaries, soakH }, cfg).powerAbort;
    if (p >= plan.power) continue;
    const soak = soakNeeded({ ...q, canaries }, plan.power, cfg);
    const more = canariesNeeded({ ...q, soakH }, plan.power, cfg);
    out.push(
      `wave ${i + 1} (${canaries} canary devices, ${+soakH.toFixed(2)} h soak) would roll back a ×${plan.ratio} regression of ${plan.baselinePerDeviceDay}/device-day with only ${(p * 100).toFixed(0)} % probability (planned ${(plan.power * 100).toFixed(0)} %): ` +
        `it needs a soak of ${soak === undefined ? 'more than 30 days' : `${+soak.toFixed(1)} h`} or ${more === undefined ? 'more canaries than the control can match' : `${more} canary devices`} (fleet canary plan)`,
    );
  }
  return out;
}
