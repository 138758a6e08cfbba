/**
 * Thresholds of the statistical judge: which continuous metrics are compared and how (direction of
 * harm, effect measure, allowed and critical bounds), how rare counts are tested, strata, time slots,
 * scoring groups and verdict bands. Pure data with the defaults docs/canary-judge.md explains
 * (Kayenta's confidence 0.98 and tolerance 0.25; alpha 0.01, abort alpha 0.001; score ≥ 95 Proceed,
 * ≥ 75 Monitor). Rate thresholds are compared with the lower confidence bound of the rate ratio, not
 * its point estimate, so a verdict does not turn on the third decimal of a noisy ratio.
 */
import type { ContinuousMetric, EventCounter } from '@fleet/protocol/canary';

/** Which per-device summary a check compares. `drain` is the negated slope (battery). */
export type MetricStat = 'mean' | 'p99' | 'slope' | 'drain';

export interface MetricCheck {
  metric: ContinuousMetric;
  stat: MetricStat;
  /** Scoring group (weights in `groupWeights`). */
  group: string;
  /** Harm is an increase of the compared value (after `drain` negation, more drain is an increase). */
  direction: 'increase' | 'decrease';
  /** `ratio`: mean(canary)/mean(control) of the per-device values; `difference`: Hodges-Lehmann shift. */
  effect: 'ratio' | 'difference';
  /** Harm needs the effect at or beyond this bound (e.g. 1.10 for +10 %, or 0.083 MB/h). */
  allowed: number;
  /** An effect at or beyond this bound is Critical (aborts). Absent: never critical. */
  critical?: number;
  /** A critical metric that is not Pass scores the whole run 0 (Kayenta). Default false. */
  criticalMetric?: boolean;
}

export interface CounterCheck {
  counter: EventCounter;
  /**
   * High when the rate ratio's lower confidence bound (at the test's share of `alpha`) is at least
   * this; Critical when its bound at the share of `abortAlpha` is at least `criticalRatio`.
   */
  highRatio: number;
  criticalRatio: number;
  /** Control rate per device-hour above which the fleet itself breaches its SLO (fleet-wide incident). */
  controlSloPerH?: number;
}

export interface JudgeConfig {
  /**
   * Family-wise significance for a count to be High (hold at Monitor), split over the counters
   * (Bonferroni: alpha / counters each) and within a counter over its tests (`testShares`); also the
   * device-level Fisher test's significance.
   */
  alpha: number;
  /**
   * Family-wise significance for a count to be Critical (Abort), split over the counters; the
   * anytime-valid e-value aborts at counters / abortAlpha. Stricter than `alpha` because a rollback of a
   * healthy release is costly while a Monitor only extends the soak, during which a real regression
   * keeps accumulating evidence.
   */
  abortAlpha: number;
  /** Kayenta's Mann-Whitney confidence and tolerance. */
  confidence: number;
  tolerance: number;
  /** Beta-binomial mixture prior concentration c (a = c·p0, b = c·(1 − p0)). */
  eValueConcentration: number;
  /** Top-device share of canary events above which a non-significant device-level test flags instead. */
  topDeviceShare: number;
  /** Expected canary events (at the control's rate, all counters) below which evidence is thin. */
  minExpectedEvents: number;
  /**
   * Hours a device must have been observed for its slope (leak, drain) to count. A fresh boot into the
   * new firmware ramps memory up as caches fill; over a short window that warm-up looks like a leak.
   */
  minSlopeHours: number;
  /** Devices per cohort a metric needs to be compared (fewer: NoData). */
  minDevicesPerMetric: number;
  /**
   * Reboots each installed canary device makes for the update itself (the A/B switch), discounted from
   * its reboot count. Default 0: the telemetry store re-baselines counters at a firmware-version change,
   * so the update's reboot (and anything else during download and install) is never in a canary's
   * counts. Set 1 only for snapshots from a source whose counter differences span the install.
   */
  updateRebootsPerInstall: number;
  /** Canary devices a new error signature must appear on (never in control) to hold the wave. */
  newSignatureDevices: number;
  /**
   * How a counter's alpha is shared (weighted Bonferroni): the stratified whole-window test, the
   * per-stratum tests (split over the strata) and the onset tests on the window's last slots (split
   * over the segments). Shares of a part that does not run go to the whole-window test.
   */
  testShares: { pooled: number; strata: number; onset: number };
  /** Split strata by from-version too where a model's control runs several versions. Default true. */
  strataByFromVersion: boolean;
  /** Most strata judged on their own (the largest by canary devices); the rest count in the pooled test only. */
  maxStrata: number;
  /**
   * Onset segments: the window's last fraction of slots compared on their own (canary against
   * control over the same slots), so a regression that began mid-soak is not averaged away.
   */
  onsetFractions: number[];
  /** Fewest slots a snapshot needs for the onset tests. */
  minOnsetSlots: number;
  /**
   * A metric the control reports (on at least this share of its devices that report metrics) and
   * canaries stopped reporting (on at most half that share, Fisher p < alpha) is lost: Monitor.
   */
  lostMetricControlShare: number;
  /** Score bands. */
  passScore: number;
  marginalScore: number;
  counters: CounterCheck[];
  metrics: MetricCheck[];
  groupWeights: Record<string, number>;
}

const MB_PER_DAY = 1 / 24;

export const DEFAULT_JUDGE_CONFIG: JudgeConfig = {
  alpha: 0.01,
  abortAlpha: 0.001,
  confidence: 0.98,
  tolerance: 0.25,
  eValueConcentration: 2,
  topDeviceShare: 0.5,
  minExpectedEvents: 5,
  minSlopeHours: 4,
  minDevicesPerMetric: 3,
  updateRebootsPerInstall: 0,
  newSignatureDevices: 2,
  testShares: { pooled: 0.6, strata: 0.25, onset: 0.15 },
  strataByFromVersion: true,
  maxStrata: 6,
  onsetFractions: [0.5, 0.25, 0.1],
  minOnsetSlots: 4,
  lostMetricControlShare: 0.5,
  passScore: 95,
  marginalScore: 75,
  // Lower confidence bounds: "at least 1.1× the control's rate" (at the test's share of alpha) holds
  // the wave; "at least 1.25×" (at its share of abortAlpha) rolls it back. A true ×2 on enough exposure
  // clears 1.25 with room instead of hovering at the threshold; a true ×1.2 can only hold.
  counters: [
    { counter: 'crashes', highRatio: 1.1, criticalRatio: 1.25, controlSloPerH: 0.02 },
    { counter: 'reboots', highRatio: 1.1, criticalRatio: 1.25, controlSloPerH: 0.02 },
    { counter: 'agentRestarts', highRatio: 1.1, criticalRatio: 1.25, controlSloPerH: 0.05 },
    { counter: 'errors', highRatio: 1.1, criticalRatio: 1.25 },
  ],
  metrics: [
    { metric: 'cpuPct', stat: 'mean', group: 'cpu', direction: 'increase', effect: 'ratio', allowed: 1.1, critical: 1.5 },
    { metric: 'cpuPct', stat: 'p99', group: 'cpu', direction: 'increase', effect: 'ratio', allowed: 1.25, critical: 1.5 },
    { metric: 'memUsedMb', stat: 'mean', group: 'memory', direction: 'increase', effect: 'ratio', allowed: 1.1, critical: 1.5 },
    // A leak: growth beyond 2 MB/day is High, beyond 10 MB/day Critical.
    { metric: 'memUsedMb', stat: 'slope', group: 'memory', direction: 'increase', effect: 'difference', allowed: 2 * MB_PER_DAY, critical: 10 * MB_PER_DAY },
    { metric: 'powerW', stat: 'mean', group: 'power', direction: 'increase', effect: 'ratio', allowed: 1.05, critical: 1.2 },
    { metric: 'batteryPct', stat: 'drain', group: 'power', direction: 'increase', effect: 'ratio', allowed: 1.05, critical: 1.2 },
    { metric: 'temperatureC', stat: 'mean', group: 'thermal', direction: 'increase', effect: 'difference', allowed: 3, critical: 10 },
    { metric: 'bootTimeS', stat: 'mean', group: 'boot', direction: 'increase', effect: 'ratio', allowed: 1.2, critical: 2 },
  ],
  groupWeights: { events: 35, cpu: 15, memory: 15, power: 15, thermal: 10, boot: 10 },
};
