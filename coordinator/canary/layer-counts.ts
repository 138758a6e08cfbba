/**
 * Layer 3 of the statistical judge: rare counts (crashes, reboots, agent restarts, errors) as rates by
 * exposure. Pure.
 *
 * Per counter, tests that each get a share of the counter's alpha (weighted Bonferroni, `testShares`):
 * - the whole window, stratified (exact conditional test of a common rate ratio over the strata, the
 *   exact Mantel-Haenszel test): each model's canaries against that model's control;
 * - each hardware model and each from-version on its own, stratified within (a regression confined to
 *   one model of three is not diluted by the two healthy ones), and
 * - the window's last slots on their own (onset: a crash storm that began an hour ago, or a rate that
 *   rises during the soak, compared with the control over the same slots).
 * A test is High when the rate ratio's lower confidence bound at its share of `alpha` reaches
 * `highRatio`, Critical when the bound at its share of `abortAlpha` reaches `criticalRatio` — bounds,
 * not point estimates. The anytime-valid e-value (the product of the strata's beta-binomial mixture
 * e-values) also aborts the whole-window test early. In every test, Fisher's exact test on devices with
 * at least one event plus the top device's share flag one pathological device instead of aborting. A
 * control rate above the counter's SLO marks a fleet-wide incident (Monitor, never Abort, unless the
 * canary is significantly worse than that control).
 */
import type { CanarySnapshot, DeviceSummary, EventCounter, Evidence } from '@fleet/protocol/canary';
import type { CounterCheck, JudgeConfig } from './judge-config.js';
import { fisherExact, poissonUpperTail } from '../stats/counts.js';
import { compareStratifiedRates, logStratifiedEValue, ratioBounds, ratioPValue, type RateStratum } from '../stats/stratified-rates.js';
import { stratumGroups, strataOf, type Stratum } from './strata.js';
import { onsetSegments, segmentEvents, segmentExposure, type Segment } from './series.js';

export type CounterOutcome = 'pass' | 'high' | 'critical' | 'flag' | 'suggestive' | 'nodata';

export interface CounterResult {
  counter: EventCounter;
  outcome: CounterOutcome;
  /** The whole-window evidence first, then strata and onset segments. */
  evidence: Evidence[];
  issue?: string;
  /** The control cohort itself breaches this counter's SLO. */
  controlBreach: boolean;
  /** Canary events expected at the control's rates (stratified). */
  expectedE: number;
  /** Where the deciding test looked: a stratum key, an onset segment. */
  stratum?: string;
  segment?: string;
  /** Canary devices with at least one of these events (for the signature escalation). */
  affectedCanary: string[];
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

/** How a test reads a device: whole window, or the slots of an onset segment. */
interface View {
  events: (d: DeviceSummary) => number;
  exposure: (d: DeviceSummary) => number;
}

interface TestSpec {
  name: string;
  strata: readonly Stratum[];
  view: View;
  alphaHigh: number;
  alphaAbort: number;
  sequential: boolean;
  stratum?: string;
  segment?: Segment;
}

interface TestResult {
  outcome: Exclude<CounterOutcome, 'suggestive'>;
  evidence: Evidence;
  issue?: string;
  expectedE: number;
  affectedCanary: string[];
  rates: ReturnType<typeof compareStratifiedRates>;
  pAtOne: number;
}

function runTest(t: TestSpec, check: CounterCheck, cfg: JudgeConfig): TestResult {
  const c = check.counter;
  const { events: ev, exposure: ex } = t.view;
  const strata: RateStratum[] = t.strata.map((s) => ({
    kE: s.canary.reduce((a, d) => a + ev(d), 0),
    eE: s.canary.reduce((a, d) => a + ex(d), 0),
    kC: s.control.reduce((a, d) => a + ev(d), 0),
    eC: s.control.reduce((a, d) => a + ex(d), 0),
  }));
  const canary = t.strata.flatMap((s) => s.canary);
  const control = t.strata.flatMap((s) => s.control);
  const rates = compareStratifiedRates(strata);
  const kE = strata.reduce((a, s) => a + s.kE, 0);
  const kC = strata.reduce((a, s) => a + s.kC, 0);
  const eE = strata.reduce((a, s) => a + s.eE, 0);
  const eC = strata.reduce((a, s) => a + s.eC, 0);
  const worse = rates.rateRatio > 1;
  const pHigh = worse ? ratioPValue(strata, check.highRatio) : 1;
  const pCritical = worse ? ratioPValue(strata, check.criticalRatio) : 1;
  const lower = worse && pHigh < 0.5 ? ratioBounds(strata, t.alphaHigh, 1).lower : null;
  const logE = t.sequential ? logStratifiedEValue(strata, cfg.eValueConcentration) : 0;
  const eAbort = t.sequential && worse && logE >= Math.log(1 / t.alphaAbort);
  const affected = canary.filter((d) => ev(d) > 0);
  const affectedC = control.filter((d) => ev(d) > 0).length;
  const fisher = fisherExact(affected.length, canary.length - affected.length, affectedC, control.length - affectedC);
  const top = affected.reduce<DeviceSummary | undefined>((best, d) => (!best || ev(d) > ev(best) ? d : best), undefined);
  const topShare = top && kE > 0 ? ev(top) / kE : 0;
  const values: Evidence['values'] = {
    ...(t.stratum !== undefined ? { stratum: t.stratum } : { strata: rates.strata }),
    ...(t.segment ? { segment: t.segment.name, segmentStartsAtH: sig(t.segment.startsAtH) } : {}),
    canaryEvents: kE,
    ...(() => {
      const raw = t.segment ? kE : canary.reduce((a, d) => a + d.events[c], 0);
      return raw !== kE ? { updateRebootsDiscounted: raw - kE } : {};
    })(),
    canaryExposureH: sig(eE),
    controlEvents: kC,
    controlExposureH: sig(eC),
    canaryRatePerH: eE > 0 ? sig(kE / eE) : null,
    controlRatePerH: eC > 0 ? sig(kC / eC) : null,
    rateRatio: sig(rates.rateRatio),
    rateRatioLowerBound: lower === null ? null : sig(lower),
    lowerBoundConfidence: sig(1 - t.alphaHigh),
    highRatio: check.highRatio,
    criticalRatio: check.criticalRatio,
    pValue: sig(rates.pValue),
    pAtHighRatio: sig(pHigh),
    pAtCriticalRatio: sig(pCritical),
    alphaHigh: sig(t.alphaHigh),
    alphaAbort: sig(t.alphaAbort),
    expectedCanaryEvents: sig(rates.expectedE),
    ...(t.sequential ? { eValue: sig(Math.exp(Math.min(logE, 700))), eValueThreshold: sig(1 / t.alphaAbort), sequentialAbort: eAbort } : {}),
    canaryDevicesAffected: affected.length,
    controlDevicesAffected: affectedC,
    deviceFisherP: sig(fisher.pGreater),
    topDevice: top?.deviceId ?? null,
    topDeviceShare: sig(topShare),
  };
  const base = { expectedE: rates.expectedE, affectedCanary: affected.map((d) => d.deviceId), rates, pAtOne: rates.pValue };
  if (!(eE > 0 && eC > 0)) return { ...base, outcome: 'nodata', evidence: { check: t.name, result: 'nodata', values, note: 'no exposure in one cohort' } };
  const high = pHigh < t.alphaHigh;
  const critical = (pCritical < t.alphaAbort && high) || (eAbort && high);
  if (!high) return { ...base, outcome: 'pass', evidence: { check: t.name, result: 'pass', values } };
  const where = `${t.stratum !== undefined ? ` on ${t.stratum}` : ''}${t.segment ? ` in the window's ${t.segment.name} (from ${t.segment.startsAtH.toFixed(1)} h)` : ''}`;
  // One device behind most of the excess, and no more devices affected than control would explain.
  if (fisher.pGreater >= cfg.alpha && topShare >= cfg.topDeviceShare && top) {
    return {
      ...base,
      outcome: 'flag',
      evidence: { check: t.name, result: 'flag', values, note: `device ${top.deviceId} holds ${(topShare * 100).toFixed(0)}% of canary ${c}${where}` },
      issue: `one canary device, ${top.deviceId}, produced ${ev(top)} of ${kE} canary ${c}${where} (${(topShare * 100).toFixed(0)}%); other devices look normal, so it is flagged for inspection rather than aborting`,
    };
  }
  const rr = Number.isFinite(rates.rateRatio) ? `${rates.rateRatio.toFixed(2)}×` : 'new (control had none)';
  const bound = lower === null ? '' : `, at least ${lower.toFixed(2)}× with ${sig((1 - t.alphaHigh) * 100)}% confidence`;
  const why = eAbort && !(pCritical < t.alphaAbort) ? `anytime-valid e-value ${sig(Math.exp(Math.min(logE, 700)))} ≥ ${sig(1 / t.alphaAbort)}` : `lower bound ≥ ${critical ? check.criticalRatio : check.highRatio}×`;
  return {
    ...base,
    outcome: critical ? 'critical' : 'high',
    evidence: { check: t.name, result: critical ? 'critical' : 'high', values },
    issue: `canary ${c} rate${where} is ${rr} the control's${bound} (${kE} in ${eE.toFixed(1)} device-hours vs ${kC} in ${eC.toFixed(1)}; ${why}; ${affected.length} devices affected)`,
  };
}

const RANK: Record<CounterOutcome, number> = { nodata: 0, pass: 1, suggestive: 2, flag: 3, high: 4, critical: 5 };

function judgeCounter(snapshot: CanarySnapshot, strata: readonly Stratum[], check: CounterCheck, cfg: JudgeConfig): CounterResult {
  const c = check.counter;
  const alphaHigh = cfg.alpha / Math.max(1, cfg.counters.length);
  const alphaAbort = cfg.abortAlpha / Math.max(1, cfg.counters.length);
  const perStratum = stratumGroups(strata).slice(0, cfg.maxStrata);
  const segments = onsetSegments(snapshot, cfg.onsetFractions, cfg.minOnsetSlots);
  const shares = cfg.testShares;
  const pooledShare = 1 - (perStratum.length ? shares.strata : 0) - (segments.length ? shares.onset : 0);
  const whole: View = { events: (d) => countedEvents(d, c, cfg.updateRebootsPerInstall), exposure: (d) => d.exposureH };
  const tests: TestSpec[] = [
    { name: c, strata, view: whole, alphaHigh: alphaHigh * pooledShare, alphaAbort: alphaAbort * pooledShare, sequential: true },
    ...perStratum.map((g) => ({
      name: `${c}[${g.key}]`, strata: g.strata, view: whole, stratum: g.key,
      alphaHigh: (alphaHigh * shares.strata) / perStratum.length, alphaAbort: (alphaAbort * shares.strata) / perStratum.length, sequential: false,
    })),
    ...segments.map((seg) => ({
      name: `${c}@${seg.name}`, strata, segment: seg, sequential: false,
      view: { events: (d: DeviceSummary) => segmentEvents(d, c, seg.from), exposure: (d: DeviceSummary) => segmentExposure(d, seg.from) },
      alphaHigh: (alphaHigh * shares.onset) / segments.length, alphaAbort: (alphaAbort * shares.onset) / segments.length,
    })),
  ];
  const results = tests.map((t) => ({ t, r: runTest(t, check, cfg) }));
  const main = results[0]!.r;
  // The control breaches its SLO only when its rate is significantly above it (exact Poisson test), so
  // a few unlucky control events on little exposure do not hold a healthy wave.
  const kC = main.rates.kC;
  const eC = main.rates.eC;
  const controlRate = eC > 0 ? kC / eC : 0;
  const sloP = check.controlSloPerH !== undefined && eC > 0 ? poissonUpperTail(kC, check.controlSloPerH * eC) : 1;
  const controlBreach = check.controlSloPerH !== undefined && controlRate > check.controlSloPerH && sloP < cfg.alpha;
  main.evidence.values = { ...main.evidence.values, controlSloPerH: check.controlSloPerH ?? null, controlSloP: sig(sloP), controlBreach };

  let decider = results[0]!;
  for (const x of results.slice(1)) if (RANK[x.r.outcome] > RANK[decider.r.outcome]) decider = x;
  // Name the sub-population when only some fail as badly as the whole window does: "crashes[m3]"
  // tells the operator where to look; when every model fails alike, the whole window is the finding.
  const top = RANK[decider.r.outcome];
  if (decider === results[0] && top >= RANK.high) {
    const groups = results.filter((x) => x.t.stratum !== undefined);
    const failing = groups.filter((x) => RANK[x.r.outcome] === top);
    const models = new Set(groups.map((x) => x.t.stratum));
    if (failing.length > 0 && failing.length < models.size) {
      decider = failing.reduce((a, b) => (b.r.rates.rateRatio > a.r.rates.rateRatio ? b : a));
    }
  }
  let outcome: CounterOutcome = decider.r.outcome;
  let issue = decider.r.issue;
  // Suggestive: a test significant at the counter's full alpha (not its share) without a bound past
  // the threshold. Hold the wave a little longer rather than proceed on it; a real regression keeps
  // accumulating evidence during the soak.
  if (outcome === 'pass') {
    const hint = results.find((x) => x.r.pAtOne < alphaHigh && x.r.rates.rateRatio > 1);
    if (hint) {
      outcome = 'suggestive';
      decider = hint;
      hint.r.evidence.result = 'flag';
      hint.r.evidence.note = 'suggestive: significant, but the rate ratio is not yet bounded above the threshold';
      const where = `${hint.t.stratum !== undefined ? ` on ${hint.t.stratum}` : ''}${hint.t.segment ? ` in the window's ${hint.t.segment.name}` : ''}`;
      issue = `canary ${c} rate${where} is ${hint.r.rates.rateRatio.toFixed(2)}× the control's (p = ${sig(hint.r.pAtOne)}, suggestive; not yet conclusive); extend the soak`;
    }
  }
  return {
    counter: c,
    outcome,
    evidence: results.map((x) => x.r.evidence),
    ...(issue ? { issue } : {}),
    controlBreach,
    expectedE: main.expectedE,
    ...(decider.t.stratum !== undefined && outcome !== 'pass' ? { stratum: decider.t.stratum } : {}),
    ...(decider.t.segment && outcome !== 'pass' ? { segment: decider.t.segment.name } : {}),
    affectedCanary: main.affectedCanary,
  };
}

/** Judges every configured counter. */
export function countsLayer(snapshot: CanarySnapshot, cfg: JudgeConfig): CounterResult[] {
  const strata = strataOf(snapshot, cfg.strataByFromVersion);
  return cfg.counters.map((check) => judgeCounter(snapshot, strata, check, cfg));
}
