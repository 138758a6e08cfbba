/**
 * Layer 3 of the statistical judge: rare counts (crashes, reboots, agent restarts, errors) as rates by
 * exposure. Pure.
 *
 * Per counter: the exact conditional binomial test and rate ratio (High at p < alpha/counters and
 * RR ≥ 1.5; Critical at p < abortAlpha/counters and RR ≥ 2); Fisher's exact test on devices with at least one event plus the top device's
 * share of canary events, so that one pathological device is flagged instead of aborting a good
 * release; and the beta-binomial mixture e-value, which aborts early and stays valid however often the
 * gate looks. A control rate above the counter's SLO marks a fleet-wide incident (Monitor, never Abort,
 * unless the canary is significantly worse than that control).
 */
import type { CanarySnapshot, DeviceSummary, EventCounter, Evidence } from '../../protocol/canary.js';
import type { CounterCheck, JudgeConfig } from './judge-config.js';
import { compareRates, fisherExact, poissonUpperTail, rateRatioInterval, sequentialAbort } from '../stats/counts.js';

export type CounterOutcome = 'pass' | 'high' | 'critical' | 'flag' | 'suggestive' | 'nodata';

export interface CounterResult {
  counter: string;
  outcome: CounterOutcome;
  evidence: Evidence;
  issue?: string;
  /** The control cohort itself breaches this counter's SLO. */
  controlBreach: boolean;
  /** Canary events expected at the control's rate. */
  expectedE: number;
}

const sig = (x: number): number | string => (Number.isFinite(x) ? Number(x.toPrecision(6)) : String(x));

const INSTALLED: ReadonlySet<string> = new Set(['rebooting', 'trial', 'committed', 'rolling-back', 'rolled-back']);

/**
 * A device's count for a counter, less `updateRebootsPerInstall` reboots on canary devices that
 * installed. The telemetry store already leaves the install out (it re-baselines at the version
 * change), so the default discount is 0; it remains for snapshots whose counts span the install.
 */
export function countedEvents(d: DeviceSummary, counter: EventCounter, updateRebootsPerInstall: number): number {
  const n = d.events[counter];
  if (counter !== 'reboots' || updateRebootsPerInstall <= 0 || d.cohort !== 'canary' || !d.update || !INSTALLED.has(d.update.state)) return n;
  return Math.max(0, n - updateRebootsPerInstall);
}

function judgeCounter(canary: readonly DeviceSummary[], control: readonly DeviceSummary[], check: CounterCheck, cfg: JudgeConfig): CounterResult {
  // Bonferroni over the counters judged at this gate.
  const m = Math.max(1, cfg.counters.length);
  const alphaHigh = cfg.alpha / m;
  const alphaAbort = cfg.abortAlpha / m;
  const c = check.counter;
  const ev = (d: DeviceSummary): number => countedEvents(d, c, cfg.updateRebootsPerInstall);
  const rawE = canary.reduce((s, d) => s + d.events[c], 0);
  const kE = canary.reduce((s, d) => s + ev(d), 0);
  const kC = control.reduce((s, d) => s + ev(d), 0);
  const eE = canary.reduce((s, d) => s + d.exposureH, 0);
  const eC = control.reduce((s, d) => s + d.exposureH, 0);
  const rates = compareRates(kE, eE, kC, eC);
  const affectedE = canary.filter((d) => ev(d) > 0);
  const affectedC = control.filter((d) => ev(d) > 0).length;
  const fisher = fisherExact(affectedE.length, canary.length - affectedE.length, affectedC, control.length - affectedC);
  const top = affectedE.reduce<DeviceSummary | undefined>((best, d) => (!best || ev(d) > ev(best) ? d : best), undefined);
  const topShare = top && kE > 0 ? ev(top) / kE : 0;
  const seq = sequentialAbort(kE, kC, rates.p0, alphaAbort, cfg.eValueConcentration);
  const controlRate = eC > 0 ? kC / eC : 0;
  // The control breaches its SLO only when its rate is significantly above it (exact Poisson test), so
  // a few unlucky control events on little exposure do not hold a healthy wave.
  const sloP = check.controlSloPerH !== undefined && eC > 0 ? poissonUpperTail(kC, check.controlSloPerH * eC) : 1;
  const controlBreach = check.controlSloPerH !== undefined && controlRate > check.controlSloPerH && sloP < cfg.alpha;

  const values: Evidence['values'] = {
    canaryEvents: kE,
    ...(rawE !== kE ? { updateRebootsDiscounted: rawE - kE } : {}),
    canaryExposureH: sig(eE),
    controlEvents: kC,
    controlExposureH: sig(eC),
    canaryRatePerH: eE > 0 ? sig(kE / eE) : null,
    controlRatePerH: eC > 0 ? sig(controlRate) : null,
    rateRatio: sig(rates.rateRatio),
    ...(() => {
      const ci = rateRatioInterval(kE, kC, eE, eC, 0.95);
      return { rateRatioCi95Lower: sig(ci.lower), rateRatioCi95Upper: sig(ci.upper) };
    })(),
    p0: sig(rates.p0),
    pValue: sig(rates.pValue),
    expectedCanaryEvents: sig(rates.expectedE),
    alphaHigh: sig(alphaHigh),
    alphaAbort: sig(alphaAbort),
    eValue: sig(seq.eValue),
    eValueThreshold: sig(1 / alphaAbort),
    sequentialAbort: seq.abort,
    canaryDevicesAffected: affectedE.length,
    controlDevicesAffected: affectedC,
    deviceFisherP: sig(fisher.pGreater),
    topDevice: top?.deviceId ?? null,
    topDeviceShare: sig(topShare),
    controlSloPerH: check.controlSloPerH ?? null,
    controlSloP: sig(sloP),
    controlBreach,
  };
  const base = { counter: c, controlBreach, expectedE: rates.expectedE };
  if (eE <= 0 || eC <= 0) {
    return { ...base, outcome: 'nodata', evidence: { check: c, result: 'nodata', values, note: 'no exposure in one cohort' } };
  }
  const significant = rates.pValue < alphaHigh && rates.rateRatio >= check.highRatio;
  if (!significant && !seq.abort) {
    // Suggestive (significant before the multiplicity correction): hold the wave a little longer
    // rather than proceed on it; a real regression keeps accumulating evidence during the soak.
    if (rates.pValue < cfg.alpha && rates.rateRatio >= check.highRatio) {
      return {
        ...base,
        outcome: 'suggestive',
        evidence: { check: c, result: 'flag', values, note: 'suggestive: significant only before the correction for several counters' },
        issue: `canary ${c} rate is ${rates.rateRatio.toFixed(2)}× the control's (p = ${sig(rates.pValue)}, suggestive; not yet conclusive at ${sig(alphaHigh)}); extend the soak`,
      };
    }
    return { ...base, outcome: 'pass', evidence: { check: c, result: 'pass', values } };
  }

  // One device behind most of the excess, and no more devices affected than control would explain.
  if (fisher.pGreater >= cfg.alpha && topShare >= cfg.topDeviceShare && top) {
    return {
      ...base,
      outcome: 'flag',
      evidence: { check: c, result: 'flag', values, note: `device ${top.deviceId} holds ${(topShare * 100).toFixed(0)}% of canary ${c}` },
      issue: `one canary device, ${top.deviceId}, produced ${ev(top)} of ${kE} canary ${c} (${(topShare * 100).toFixed(0)}%); other devices look normal, so it is flagged for inspection rather than aborting`,
    };
  }
  const critical = seq.abort || (rates.pValue < alphaAbort && rates.rateRatio >= check.criticalRatio);
  const rr = Number.isFinite(rates.rateRatio) ? `${rates.rateRatio.toFixed(2)}×` : 'new (control had none)';
  const why = seq.abort && !significant ? `anytime-valid e-value ${sig(seq.eValue)} ≥ ${sig(1 / alphaAbort)}` : `p = ${sig(rates.pValue)}`;
  return {
    ...base,
    outcome: critical ? 'critical' : 'high',
    evidence: { check: c, result: critical ? 'critical' : 'high', values },
    issue: `canary ${c} rate is ${rr} the control's (${kE} in ${eE.toFixed(1)} device-hours vs ${kC} in ${eC.toFixed(1)}; ${why}; ${affectedE.length} devices affected)`,
  };
}

/** Judges every configured counter. */
export function countsLayer(snapshot: CanarySnapshot, cfg: JudgeConfig): CounterResult[] {
  const canary = snapshot.devices.filter((d) => d.cohort === 'canary');
  const control = snapshot.devices.filter((d) => d.cohort === 'control');
  return cfg.counters.map((check) => judgeCounter(canary, control, check, cfg));
}
