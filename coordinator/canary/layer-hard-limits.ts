/**
 * Layer 1 of the statistical judge: hard limits, final. Pure.
 *
 * The rules are the gate's own (coordinator/gate/hard-gates.ts: trial failures and fall-backs, install
 * failures above the policy's share, devices silent after installing against control silence by
 * Fisher's exact test), reused here so there is exactly one definition; this layer adds which devices
 * fired each rule, so the verdict names them.
 */
import type { CanarySnapshot, DeviceSummary, Evidence } from '@fleet/protocol/canary';
import type { GatePolicy } from '../gate/analyzer.js';
import {
  checkInstallFailures,
  checkSilentDevices,
  checkSufficiency,
  checkTrialFailures,
  classifyUpdate,
  countSnapshot,
} from '../gate/hard-gates.js';

export interface LayerResult {
  evidence: Evidence[];
  /** Human statements, most important first. */
  issues: string[];
  /** The first rule that fired (Abort for hard limits), if any. */
  rule?: string;
}

const ids = (ds: readonly DeviceSummary[], max = 5): string =>
  ds.slice(0, max).map((d) => d.deviceId).join(', ') + (ds.length > max ? ` and ${ds.length - max} more` : '');

/** Evaluates the hard limits. `rule` is set when the wave must abort. */
export function hardLimitsLayer(snapshot: CanarySnapshot, policy: GatePolicy): LayerResult {
  const counts = countSnapshot(snapshot);
  const canary = snapshot.devices.filter((d) => d.cohort === 'canary');
  const byOutcome = (o: ReturnType<typeof classifyUpdate>) => canary.filter((d) => classifyUpdate(d.update?.state, d.update?.reason) === o);
  const devices: Record<string, DeviceSummary[]> = {
    'trial-failures': byOutcome('trial-failure'),
    'install-failures': [...byOutcome('install-failure'), ...byOutcome('trial-failure')],
    'silent-after-install': canary.filter((d) => d.silent),
  };
  const evidence = [checkTrialFailures(counts, policy), checkInstallFailures(counts, policy), checkSilentDevices(counts, policy)].map((e) => {
    const ds = devices[e.check] ?? [];
    return ds.length ? { ...e, values: { ...e.values, devices: ids(ds, 10) } } : e;
  });
  const fired = evidence.filter((e) => e.result === 'critical');
  const issues = fired.map((e) => {
    const ds = devices[e.check] ?? [];
    return `${e.note ?? e.check}${ds.length ? `: ${ids(ds)}` : ''}`;
  });
  return { evidence, issues, ...(fired[0] ? { rule: `hard-limit:${fired[0].check}` } : {}) };
}

/** The gate's reporting-device sufficiency check, shared with layer 2. */
export function reportingSufficiency(snapshot: CanarySnapshot, policy: GatePolicy): Evidence {
  return checkSufficiency(countSnapshot(snapshot), policy);
}
