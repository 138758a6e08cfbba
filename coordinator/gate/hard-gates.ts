/**
 * Hard gates: fixed limits that no other analyzer can relax. Install failure share, trial failures and
 * fall-backs, devices silent after installing (against control silence, Fisher's exact test), and data
 * sufficiency (which can only hold a wave at Monitor). Pure.
 *
 * The checks are plain functions over counts so that the engine's early abort and the canary helper's
 * statistical judge (its layer 1) reuse exactly these rules. See
 * docs/canary-judge.md, layers 1 and 2.
 */
import type { CanarySnapshot, DeviceSummary, Evidence, Recommendation, Verdict } from '@fleet/protocol/canary';
import type { UpdateReason } from '@fleet/protocol/reasons';
import type { UpdateState } from '@fleet/protocol/update-state';
import type { AnalyzerContext, AnalyzerOutcome, GateAnalyzer, GatePolicy } from './analyzer.js';
import { fisherGreater } from '../stats/counts.js';

/** Significance for the silent-device comparison against control. */
export const SILENT_ALPHA = 0.01;

/** Reasons that mean the new image came up badly on the device (a trial failure or fall-back). */
export const TRIAL_FAILURE_REASONS: readonly UpdateReason[] = [
  'trial-boot-failed',
  'health-check-failed',
  'broker-unreachable',
  'trial-timeout',
];
/**
 * Reasons that say a trial was cut short before it decided (a power loss or reset after the new
 * slot came up): not evidence against the image, so never a trial failure (the any-one hard limit).
 * The agent reports it with `rebooting` while it retries the trial (in progress); any other state
 * carrying it counts as an install failure (the share limit). A second interruption of the same
 * trial is reported as `trial-boot-failed`.
 */
export const INCONCLUSIVE_TRIAL_REASONS: readonly UpdateReason[] = ['trial-interrupted'];
/** Reasons a device refuses a manifest because it is not meant for it: neither success nor failure. */
export const INELIGIBLE_REASONS: readonly UpdateReason[] = [
  'wrong-hardware',
  'version-not-installable',
  'missing-tags',
  'below-security-floor',
  'superseded',
  'busy',
];

export type DeviceOutcome = 'ineligible' | 'in-progress' | 'succeeded' | 'install-failure' | 'trial-failure' | 'no-report';

/** How one device's update state counts for the gates. A coordinator-ordered rollback is not a failure. */
export function classifyUpdate(state: UpdateState | undefined, reason: UpdateReason | undefined): DeviceOutcome {
  if (state === undefined || state === 'idle') return 'no-report';
  if (reason !== undefined && TRIAL_FAILURE_REASONS.includes(reason) && (state === 'rolled-back' || state === 'failed' || state === 'rolling-back')) {
    return 'trial-failure';
  }
  switch (state) {
    case 'committed':
      return 'succeeded';
    case 'already-installed':
      return 'ineligible';
    case 'rejected':
      return reason !== undefined && INELIGIBLE_REASONS.includes(reason) ? 'ineligible' : 'install-failure';
    case 'failed':
      return reason !== undefined && INELIGIBLE_REASONS.includes(reason) ? 'ineligible' : 'install-failure';
    case 'rolled-back':
    case 'rolling-back':
      // Ordered by the coordinator or an operator: says nothing about the image.
      return reason === 'rollback-command' || reason === undefined ? 'ineligible' : 'install-failure';
    case 'downloading':
    case 'verifying':
    case 'installing':
    case 'rebooting':
    case 'trial':
      return 'in-progress';
  }
}

/** The counts every hard gate works from. */
export interface HardGateCounts {
  /** Canary devices in the snapshot (the wave's devices), ineligible ones excluded. */
  canary: number;
  /** Canary devices that reported (a status, or telemetry in the window). */
  reporting: number;
  /**
   * Canary devices with an outcome to judge (reported, or silent): the denominator of the install
   * failure share. Default `canary`. Members that never reported do not dilute the share.
   */
  judged?: number;
  /** Failed installs, refused signatures, and silent devices (silence past the deadline is failure). */
  installFailures: number;
  trialFailures: number;
  /** Canary devices silent after installing. */
  silentCanary: number;
  control: number;
  silentControl: number;
}

function isReporting(d: DeviceSummary): boolean {
  return d.samples > 0 || (d.update !== undefined && d.update.state !== 'idle');
}

/** Derives the counts from a canary snapshot. */
export function countSnapshot(snapshot: CanarySnapshot): HardGateCounts {
  const c: HardGateCounts = { canary: 0, reporting: 0, judged: 0, installFailures: 0, trialFailures: 0, silentCanary: 0, control: 0, silentControl: 0 };
  for (const d of snapshot.devices) {
    if (d.cohort === 'control') {
      c.control++;
      if (d.silent) c.silentControl++;
      continue;
    }
    const outcome = classifyUpdate(d.update?.state, d.update?.reason);
    if (outcome === 'ineligible') continue;
    c.canary++;
    if (isReporting(d)) c.reporting++;
    if (isReporting(d) || d.silent) c.judged = (c.judged ?? 0) + 1;
    if (outcome === 'trial-failure') {
      c.trialFailures++;
      c.installFailures++;
    } else if (outcome === 'install-failure') {
      c.installFailures++;
    } else if (d.silent) {
      // Silent after installing (or silent past the deadline without a report): failure for the gate.
      c.silentCanary++;
      c.installFailures++;
    }
  }
  return c;
}

const share = (k: number, n: number): number => (n > 0 ? k / n : 0);

/** Any trial boot failure or fall-back aborts (when the policy says so). */
export function checkTrialFailures(c: HardGateCounts, policy: GatePolicy): Evidence {
  const breach = policy.abortOnTrialFailure && c.trialFailures > 0;
  return {
    check: 'trial-failures',
    result: breach ? 'critical' : 'pass',
    values: { trialFailures: c.trialFailures, canary: c.canary, abortOnTrialFailure: policy.abortOnTrialFailure },
    ...(breach ? { note: `${c.trialFailures} device(s) failed the trial boot or fell back to the old slot` } : {}),
  };
}

/** Install failures (including silence past the deadline) above the allowed share abort. */
export function checkInstallFailures(c: HardGateCounts, policy: GatePolicy): Evidence {
  const judged = c.judged ?? c.canary;
  const s = share(c.installFailures, judged);
  const breach = c.installFailures > 0 && s > policy.maxInstallFailureShare;
  return {
    check: 'install-failures',
    result: breach ? 'critical' : 'pass',
    values: { installFailures: c.installFailures, judged, canary: c.canary, share: s, maxShare: policy.maxInstallFailureShare },
    ...(breach ? { note: `${c.installFailures} of ${judged} devices failed to install (${(s * 100).toFixed(1)}%)` } : {}),
  };
}

/**
 * Devices silent after installing: at least `maxSilentDevices` and `maxSilentShare` of the canaries,
 * and (when there is a control cohort) significantly more than the control's silence (Fisher, one-sided).
 */
export function checkSilentDevices(c: HardGateCounts, policy: GatePolicy): Evidence {
  const s = share(c.silentCanary, c.canary);
  const p = c.control > 0 ? fisherGreater(c.silentCanary, c.canary - c.silentCanary, c.silentControl, c.control - c.silentControl) : null;
  const breach =
    c.silentCanary >= policy.maxSilentDevices && s >= policy.maxSilentShare && (p === null || p < SILENT_ALPHA);
  return {
    check: 'silent-after-install',
    result: breach ? 'critical' : 'pass',
    values: {
      silentCanary: c.silentCanary,
      canary: c.canary,
      share: s,
      silentControl: c.silentControl,
      control: c.control,
      controlShare: share(c.silentControl, c.control),
      fisherP: p,
    },
    ...(breach ? { note: `${c.silentCanary} device(s) went silent after installing (control: ${c.silentControl} of ${c.control})` } : {}),
  };
}

/** Fewer reporting canaries than the policy's minimum (capped by the wave's size) holds at Monitor. */
export function checkSufficiency(c: HardGateCounts, policy: GatePolicy): Evidence {
  const needed = Math.min(policy.minReportingDevices, c.canary);
  const ok = c.reporting >= needed;
  return {
    check: 'sufficiency',
    result: ok ? 'pass' : 'nodata',
    values: { reporting: c.reporting, needed, canary: c.canary },
    ...(ok ? {} : { note: `only ${c.reporting} of the ${needed} canary devices needed have reported` }),
  };
}

/** Runs every hard check and turns them into one verdict. */
export function hardGateVerdict(c: HardGateCounts, policy: GatePolicy): Verdict {
  const critical = [checkTrialFailures(c, policy), checkInstallFailures(c, policy), checkSilentDevices(c, policy)];
  const sufficiency = checkSufficiency(c, policy);
  const evidence = [...critical, sufficiency];
  const breached = critical.filter((e) => e.result === 'critical');
  let recommendation: Recommendation = 'Proceed';
  let rule = 'hard-limits:pass';
  if (breached.length > 0) {
    recommendation = 'Abort';
    rule = `hard-limit:${breached[0]!.check}`;
  } else if (sufficiency.result !== 'pass') {
    recommendation = 'Monitor';
    rule = 'sufficiency:min-reporting-devices';
  }
  const issues = evidence.filter((e) => e.result !== 'pass' && e.note).map((e) => e.note!);
  return {
    recommendation,
    riskLevel: recommendation === 'Abort' ? 'Critical' : recommendation === 'Monitor' ? 'Medium' : 'Low',
    issues,
    rule,
    evidence,
  };
}

/** The hard gates as a GateAnalyzer (`hard-gates`, role `hard`). */
export const hardGatesAnalyzer: GateAnalyzer = {
  name: 'hard-gates',
  role: 'hard',
  analyze(snapshot: CanarySnapshot, ctx: AnalyzerContext): Promise<AnalyzerOutcome> {
    // Pure and fast: latency is reported as 0 rather than measured with a real clock.
    return Promise.resolve({ ok: true, verdict: hardGateVerdict(countSnapshot(snapshot), ctx.policy), latencyMs: 0 });
  },
};
