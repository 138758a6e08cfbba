/**
 * The statistical judge: the default wave-gate analyzer, deterministic and offline. Pure core
 * (`judgeSnapshot`) plus a GateAnalyzer wrapper (`createStatAnalyzer`).
 *
 * Layers (docs/canary-judge.md): 1 hard limits, final → Abort; 2 sufficiency → at most Monitor on thin
 * evidence; 3 rare counts as rates, stratified by model and from-version, per stratum and over the
 * window's last slots (onset), decided on confidence bounds; 4 continuous metrics per device with
 * Kayenta's classifier, likewise per stratum and on the last slots; lost metrics (reported by control,
 * no longer by canaries) hold the wave; 5 a Kayenta-style score (≥ passScore Proceed, ≥ marginalScore
 * Monitor, else Abort; any Critical check aborts) and modifiers that may only make the verdict more
 * cautious: thin data, a flagged pathological device, the control itself breaching an SLO (a fleet-wide
 * incident holds the wave instead of rolling the canary back), a new error signature on several canary
 * devices only — which escalates a significant crash excess on the same devices to Abort.
 */
import type { CanarySnapshot, Evidence, Recommendation, RiskLevel, Verdict } from '@fleet/protocol/canary';
import type { AnalyzerContext, AnalyzerOutcome, GateAnalyzer, GatePolicy } from '../gate/analyzer.js';
import { DEFAULT_JUDGE_CONFIG, type JudgeConfig } from './judge-config.js';
import { hardLimitsLayer, reportingSufficiency } from './layer-hard-limits.js';
import { countsLayer, type CounterResult } from './layer-counts.js';
import { continuousLayer, type MetricResult } from './layer-continuous.js';
import { lostMetricsLayer } from './layer-lost-metrics.js';
import { errorMessage } from '@fleet/protocol/errors';

interface Modifier {
  rule: string;
  issue: string;
}

function sufficiency(snapshot: CanarySnapshot, policy: GatePolicy, counts: readonly CounterResult[], cfg: JudgeConfig): { evidence: Evidence; modifiers: Modifier[] } {
  const canary = snapshot.devices.filter((d) => d.cohort === 'canary');
  const control = snapshot.devices.filter((d) => d.cohort === 'control');
  const gate = reportingSufficiency(snapshot, policy);
  const reporting = Number(gate.values.reporting ?? 0);
  const required = Number(gate.values.needed ?? 0);
  const expected = counts.reduce((s, c) => s + c.expectedE, 0);
  const exposure = canary.reduce((s, d) => s + d.exposureH, 0);
  const modifiers: Modifier[] = [];
  if (gate.result !== 'pass' || reporting === 0) {
    modifiers.push({ rule: 'sufficiency:reporting-devices', issue: `only ${reporting} canary devices reporting (need ${required}); extend the soak` });
  }
  if (control.length === 0) {
    modifiers.push({ rule: 'sufficiency:no-control', issue: 'no control devices to compare against; the canary cannot be judged relative to the fleet' });
  } else if (expected < cfg.minExpectedEvents) {
    modifiers.push({ rule: 'sufficiency:exposure', issue: `too little canary exposure (${exposure.toFixed(1)} device-hours): only ${expected.toFixed(1)} events expected at the control's rates (need ${cfg.minExpectedEvents})` });
  }
  return {
    evidence: {
      check: 'sufficiency',
      result: modifiers.length ? 'flag' : 'pass',
      values: { reportingCanary: reporting, requiredReporting: required, canaryDevices: canary.length, controlDevices: control.length, canaryExposureH: Number(exposure.toFixed(3)), expectedCanaryEvents: Number(expected.toFixed(3)), minExpectedEvents: cfg.minExpectedEvents },
    },
    modifiers,
  };
}

/** Error signatures seen on at least `newSignatureDevices` canaries and never in control, with the devices. */
export function canaryOnlySignatures(snapshot: CanarySnapshot, cfg: JudgeConfig): [string, string[]][] {
  const controlSigs = new Set(snapshot.devices.filter((d) => d.cohort === 'control').flatMap((d) => d.errorSignatures));
  const seen = new Map<string, string[]>();
  for (const d of snapshot.devices) {
    if (d.cohort !== 'canary') continue;
    for (const s of new Set(d.errorSignatures)) if (!controlSigs.has(s)) seen.set(s, [...(seen.get(s) ?? []), d.deviceId]);
  }
  return [...seen].filter(([, ds]) => ds.length >= cfg.newSignatureDevices).sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1));
}

function newSignatures(snapshot: CanarySnapshot, cfg: JudgeConfig): { evidence: Evidence; modifier?: Modifier; found: [string, string[]][] } {
  const found = canaryOnlySignatures(snapshot, cfg);
  const evidence: Evidence = {
    check: 'new-error-signatures',
    result: found.length ? 'flag' : 'pass',
    values: { signatures: found.length, minDevices: cfg.newSignatureDevices, ...Object.fromEntries(found.slice(0, 5).map(([s, ds], i) => [`sig${i + 1}`, `${ds.length} devices: ${s.slice(0, 120)}`])) },
  };
  if (!found.length) return { evidence, found };
  const [sig, ds] = found[0]!;
  return { evidence, found, modifier: { rule: 'new-error-signature', issue: `new error signature on ${ds.length} canary devices, never seen in control: "${sig.slice(0, 120)}"${found.length > 1 ? ` (+${found.length - 1} more)` : ''}` } };
}

/**
 * A crash excess that is significant (High or suggestive) together with a canary-only error signature
 * on at least `newSignatureDevices` of the crashing canaries: the crashes have a new cause, so the wave
 * is rolled back rather than held.
 */
function escalateCrashSignature(counts: CounterResult[], found: readonly [string, string[]][], cfg: JudgeConfig): Evidence | undefined {
  const crashes = counts.find((c) => c.counter === 'crashes');
  if (!crashes || !(crashes.outcome === 'high' || crashes.outcome === 'suggestive')) return undefined;
  const crashing = new Set(crashes.affectedCanary);
  const hit = found.map(([s, ds]) => [s, ds.filter((d) => crashing.has(d))] as const).find(([, ds]) => ds.length >= cfg.newSignatureDevices);
  if (!hit) return undefined;
  crashes.outcome = 'critical';
  crashes.issue = `${crashes.issue ?? 'canary crash rate is above the control\'s'}; ${hit[1].length} of the crashing canaries show an error never seen in control: "${hit[0].slice(0, 120)}"`;
  return { check: 'crash-signature', result: 'critical', values: { signature: hit[0].slice(0, 200), crashingDevicesWithIt: hit[1].length, devices: hit[1].slice(0, 10).join(', ') } };
}

/** Kayenta-style weighted score over groups; undefined when nothing could be scored. */
function score(counts: readonly CounterResult[], metrics: readonly MetricResult[], cfg: JudgeConfig): { score?: number; groups: Record<string, number> } {
  const tally = new Map<string, { pass: number; fail: number }>();
  const add = (group: string, pass: boolean) => {
    const t = tally.get(group) ?? { pass: 0, fail: 0 };
    if (pass) t.pass++;
    else t.fail++;
    tally.set(group, t);
  };
  for (const c of counts) if (c.outcome !== 'nodata') add('events', c.outcome === 'pass' || c.outcome === 'flag' || c.outcome === 'suggestive');
  let criticalMetricFailed = false;
  for (const m of metrics) {
    if (m.result === 'nodata') continue;
    add(m.check.group, m.result === 'pass');
    if (m.check.criticalMetric && m.result !== 'pass') criticalMetricFailed = true;
  }
  const groups: Record<string, number> = {};
  let num = 0;
  let den = 0;
  for (const [g, t] of tally) {
    const s = (100 * t.pass) / (t.pass + t.fail);
    groups[g] = Number(s.toFixed(2));
    const w = cfg.groupWeights[g] ?? 1;
    num += w * s;
    den += w;
  }
  if (den === 0) return { groups };
  return { score: criticalMetricFailed ? 0 : Number((num / den).toFixed(2)), groups };
}

/** Judges a canary snapshot. Pure and deterministic. */
export function judgeSnapshot(snapshot: CanarySnapshot, policy: GatePolicy, cfg: JudgeConfig = DEFAULT_JUDGE_CONFIG): Verdict {
  const hard = hardLimitsLayer(snapshot, policy);
  const counts = countsLayer(snapshot, cfg);
  const suff = sufficiency(snapshot, policy, counts, cfg);
  const metrics = continuousLayer(snapshot, cfg);
  const sigs = newSignatures(snapshot, cfg);
  const escalated = escalateCrashSignature(counts, sigs.found, cfg);
  const lost = lostMetricsLayer(snapshot, cfg);
  const sc = score(counts, metrics, cfg);

  const located = (base: string, x: { stratum?: string; segment?: string }): string => `${base}${x.stratum !== undefined ? `[${x.stratum}]` : ''}${x.segment ? `@${x.segment}` : ''}`;
  const criticals = [
    ...counts.filter((c) => c.outcome === 'critical').map((c) => ({ name: located(escalated && c.counter === 'crashes' ? 'crashes+signature' : c.counter, c), issue: c.issue })),
    ...metrics.filter((m) => m.result === 'critical').map((m) => ({ name: located(m.name, m), issue: m.issue })),
  ];
  const highs = [...counts.filter((c) => c.outcome === 'high').map((c) => c.issue), ...metrics.filter((m) => m.result === 'high' || m.result === 'low').map((m) => m.issue)];

  const modifiers: Modifier[] = [...suff.modifiers];
  const applicable = metrics.filter((m) => m.applicable);
  const nodata = applicable.filter((m) => m.result === 'nodata').length;
  // Metrics compare devices: a canary wave with fewer devices than that needs can never supply them,
  // however long it soaks, so holding it would only run into the Monitor limit (and abort a good
  // release). Counts (rates over exposure) and the hard limits still judge it; metric regressions are
  // left to the next, larger wave. A thin control still holds: it grows with the soak or the fleet.
  const canaryDevices = snapshot.devices.filter((d) => d.cohort === 'canary').length;
  if (applicable.length > 0 && nodata * 2 >= applicable.length && canaryDevices >= cfg.minDevicesPerMetric) {
    modifiers.push({ rule: 'sufficiency:metrics-nodata', issue: `${nodata} of ${applicable.length} metric checks have no data on enough devices` });
  }
  modifiers.push(...lost.issues);
  for (const c of counts) if (c.outcome === 'flag' && c.issue) modifiers.push({ rule: `device-flag:${c.counter}`, issue: c.issue });
  for (const c of counts) if (c.outcome === 'suggestive' && c.issue) modifiers.push({ rule: `suggestive:${c.counter}`, issue: c.issue });
  const breaches = counts.filter((c) => c.controlBreach);
  if (breaches.length) {
    modifiers.push({ rule: 'control-slo', issue: `fleet-wide: control devices also breach the SLO for ${breaches.map((b) => b.counter).join(', ')}; holding the wave rather than blaming the canary` });
  }
  if (sigs.modifier) modifiers.push(sigs.modifier);

  let recommendation: Recommendation;
  let riskLevel: RiskLevel;
  let rule: string;
  const issues: string[] = [];
  if (hard.rule) {
    recommendation = 'Abort';
    riskLevel = 'Critical';
    rule = hard.rule;
    issues.push(...hard.issues);
  } else if (criticals.length) {
    recommendation = 'Abort';
    riskLevel = 'Critical';
    rule = `critical:${criticals[0]!.name}`;
  } else if (sc.score !== undefined && sc.score < cfg.marginalScore) {
    recommendation = 'Abort';
    riskLevel = 'High';
    rule = 'score';
  } else if (sc.score !== undefined && sc.score < cfg.passScore) {
    recommendation = 'Monitor';
    riskLevel = 'Medium';
    rule = 'score';
  } else if (modifiers.length || sc.score === undefined) {
    recommendation = 'Monitor';
    riskLevel = 'Medium';
    rule = modifiers[0]?.rule ?? 'sufficiency:nothing-scored';
  } else {
    recommendation = 'Proceed';
    riskLevel = 'Low';
    rule = 'score';
  }
  if (!hard.rule) issues.push(...criticals.flatMap((c) => (c.issue ? [c.issue] : [])));
  issues.push(...highs.flatMap((h) => (h ? [h] : [])));
  issues.push(...modifiers.map((m) => m.issue));

  const scoreEvidence: Evidence = {
    check: 'score',
    result: recommendation === 'Proceed' ? 'pass' : recommendation === 'Monitor' ? 'flag' : 'critical',
    values: { score: sc.score ?? null, passScore: cfg.passScore, marginalScore: cfg.marginalScore, ...Object.fromEntries(Object.entries(sc.groups).map(([g, s]) => [`group.${g}`, s])) },
  };
  return {
    recommendation,
    riskLevel,
    ...(sc.score !== undefined ? { score: hard.rule || criticals.length ? 0 : sc.score } : {}),
    issues: [...new Set(issues)],
    rule,
    evidence: [...hard.evidence, suff.evidence, ...counts.flatMap((c) => c.evidence), ...(escalated ? [escalated] : []), ...metrics.flatMap((m) => m.evidence), lost.evidence, sigs.evidence, scoreEvidence],
  };
}

export interface StatAnalyzerOptions {
  config?: JudgeConfig;
  /** Monotonic milliseconds for latency; default performance.now. */
  monotonicMs?: () => number;
}

/** The error code of the statistical analyzer abstaining on a snapshot with no control devices. */
export const NO_CONTROL_CODE = 'no-control';

/**
 * The statistical judge as a wave-gate analyzer named `stat`.
 *
 * With no control devices at all (the last wave, 100 %, leaves nobody on the old firmware) it abstains:
 * an error record, never a verdict, so the gate's combination lets the hard gates decide. A Monitor
 * there would repeat until the Monitor limit and no rollout could complete. A control that exists but
 * is too thin still gives Monitor (`judgeSnapshot`'s sufficiency layer).
 */
export function createStatAnalyzer(options: StatAnalyzerOptions = {}): GateAnalyzer {
  const cfg = options.config ?? DEFAULT_JUDGE_CONFIG;
  const mono = options.monotonicMs ?? (() => performance.now());
  return {
    name: 'stat',
    role: 'statistical',
    analyze(snapshot: CanarySnapshot, ctx: AnalyzerContext): Promise<AnalyzerOutcome> {
      const t0 = mono();
      if (!snapshot.devices.some((d) => d.cohort === 'control')) {
        return Promise.resolve({
          ok: false,
          error: { code: NO_CONTROL_CODE, message: 'no devices left on the old firmware to compare against; the hard limits decide this gate' },
          latencyMs: mono() - t0,
        });
      }
      try {
        const verdict = judgeSnapshot(snapshot, ctx.policy, cfg);
        return Promise.resolve({ ok: true, verdict, latencyMs: mono() - t0 });
      } catch (err) {
        return Promise.resolve({ ok: false, error: { code: 'stat-internal', message: errorMessage(err) }, latencyMs: mono() - t0 });
      }
    },
  };
}
