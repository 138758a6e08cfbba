/**
 * Layer 1 of the statistical judge: hard limits, final. Pure.
 *
 * Trial-boot failures and fallbacks, install failures above the policy's share, and canary devices gone
 * silent after installing (at least `maxSilentDevices` and `maxSilentShare`, and more often than
 * control devices went silent over the same window by Fisher's exact test) abort the wave.
 */
import type { CanarySnapshot, DeviceSummary, Evidence } from '../../protocol/canary.js';
import type { UpdateReason, } from '../../protocol/reasons.js';
import type { UpdateState } from '../../protocol/update-state.js';
import type { GatePolicy } from '../gate/analyzer.js';
import { fisherExact } from './stats/counts.js';

export interface LayerResult {
  evidence: Evidence[];
  /** Human statements, most important first. */
  issues: string[];
  /** The first rule that fired (Abort for hard limits), if any. */
  rule?: string;
}

const TRIAL_REASONS: readonly UpdateReason[] = ['trial-boot-failed', 'health-check-failed', 'broker-unreachable', 'trial-timeout'];
const INSTALLED: readonly UpdateState[] = ['rebooting', 'trial', 'committed', 'rolling-back', 'rolled-back'];

function isTrialFailure(d: DeviceSummary): boolean {
  const u = d.update;
  if (!u) return false;
  if (u.reason && TRIAL_REASONS.includes(u.reason)) return true;
  // A fallback the device did not explain is still a fallback; an ordered rollback is not.
  return u.state === 'rolled-back' && u.reason !== 'rollback-command' && u.reason !== 'superseded';
}

const ids = (ds: readonly DeviceSummary[], max = 5): string =>
  ds.slice(0, max).map((d) => d.deviceId).join(', ') + (ds.length > max ? ` and ${ds.length - max} more` : '');

/** Evaluates the hard limits. `rule` is set when the wave must abort. */
export function hardLimitsLayer(snapshot: CanarySnapshot, policy: GatePolicy, alpha: number): LayerResult {
  const canary = snapshot.devices.filter((d) => d.cohort === 'canary');
  const control = snapshot.devices.filter((d) => d.cohort === 'control');
  const evidence: Evidence[] = [];
  const issues: string[] = [];
  let rule: string | undefined;

  const trial = canary.filter(isTrialFailure);
  const trialFires = policy.abortOnTrialFailure && trial.length > 0;
  evidence.push({
    check: 'trial-failures',
    result: trialFires ? 'critical' : 'pass',
    values: { devices: trial.length, canaryDevices: canary.length, abortOnTrialFailure: policy.abortOnTrialFailure },
    ...(trial.length ? { note: ids(trial) } : {}),
  });
  if (trialFires) {
    rule ??= 'hard-limit:trial-failures';
    issues.push(`${trial.length} canary device(s) failed their trial boot or fell back: ${ids(trial)}`);
  }

  const withUpdate = canary.filter((d) => d.update);
  const failed = withUpdate.filter((d) => d.update?.state === 'failed');
  const failShare = withUpdate.length ? failed.length / withUpdate.length : 0;
  const failFires = failShare > policy.maxInstallFailureShare;
  evidence.push({
    check: 'install-failures',
    result: failFires ? 'critical' : 'pass',
    values: { devices: failed.length, ofDevices: withUpdate.length, share: Number(failShare.toFixed(4)), maxShare: policy.maxInstallFailureShare },
  });
  if (failFires) {
    rule ??= 'hard-limit:install-failures';
    issues.push(`${failed.length} of ${withUpdate.length} canary installs failed (${(failShare * 100).toFixed(1)}% > ${policy.maxInstallFailureShare * 100}%)`);
  }

  const silentCanary = canary.filter((d) => d.silent && (!d.update || INSTALLED.includes(d.update.state)));
  const silentControl = control.filter((d) => d.silent);
  const silentShare = canary.length ? silentCanary.length / canary.length : 0;
  const fisher = fisherExact(silentCanary.length, canary.length - silentCanary.length, silentControl.length, control.length - silentControl.length);
  // Without control devices there is nothing to compare against; the counts alone decide.
  const beyondControl = control.length === 0 || fisher.pGreater < alpha;
  const silentFires = silentCanary.length >= policy.maxSilentDevices && silentShare >= policy.maxSilentShare && beyondControl;
  evidence.push({
    check: 'silent-after-install',
    result: silentFires ? 'critical' : silentCanary.length > 0 ? 'flag' : 'pass',
    values: {
      canarySilent: silentCanary.length,
      canaryDevices: canary.length,
      controlSilent: silentControl.length,
      controlDevices: control.length,
      share: Number(silentShare.toFixed(4)),
      fisherP: Number(fisher.pGreater.toPrecision(6)),
      maxSilentDevices: policy.maxSilentDevices,
      maxSilentShare: policy.maxSilentShare,
    },
    ...(silentCanary.length ? { note: ids(silentCanary) } : {}),
  });
  if (silentFires) {
    rule ??= 'hard-limit:silent-after-install';
    issues.push(`${silentCanary.length} canary device(s) went silent after installing (${(silentShare * 100).toFixed(1)}%; control ${silentControl.length} of ${control.length}): ${ids(silentCanary)}`);
  }
  return { evidence, issues, ...(rule ? { rule } : {}) };
}
