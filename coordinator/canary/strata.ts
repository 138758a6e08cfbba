/**
 * Strata of a canary snapshot: devices grouped by hardware model, and by the version they run(control)
 * or updated from (canary) where a model's control runs several versions and every canary's
 * from-version is among them. Each stratum's canaries are compared with its own control. Pure.
 */
import type { CanarySnapshot, DeviceSummary } from '@fleet/protocol/canary';
import { definedProps } from '@fleet/firmware/defined-props';

export interface Stratum {
  /** `rpi4`, or `rpi4@1.2.0` when split by from-version. */
  key: string;
  model: string;
  /** The from-version when split by it. */
  version?: string;
  canary: DeviceSummary[];
  control: DeviceSummary[];
}

/** The version a device is judged as coming from: a canary's from-version, a control's own version. */
const baseVersion = (d: DeviceSummary): string | undefined => (d.cohort === 'control' ? d.firmwareVersion : d.fromVersion);

/** Groups the given devices (default: every device) into strata, largest canary group first. */
export function strataOf(snapshot: CanarySnapshot, byFromVersion: boolean, devices: readonly DeviceSummary[] = snapshot.devices): Stratum[] {
  const byModel = new Map<string, DeviceSummary[]>();
  for (const d of devices) {
    const list = byModel.get(d.hardwareModel);
    if (list) list.push(d);
    else byModel.set(d.hardwareModel, [d]);
  }
  const out: Stratum[] = [];
  for (const [model, ds] of byModel) {
    const controlVersions = new Set(ds.filter((d) => d.cohort === 'control').map((d) => d.firmwareVersion));
    const canaryFrom = ds.filter((d) => d.cohort === 'canary').map(baseVersion);
    const split = byFromVersion && controlVersions.size > 1 && canaryFrom.length > 0 && canaryFrom.every((v) => v !== undefined && controlVersions.has(v));
    const groups = new Map<string, Stratum>();
    for (const d of ds) {
      const version = split ? baseVersion(d) ?? '?' : undefined;
      const key = version !== undefined ? `${model}@${version}` : model;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { key, model, ...definedProps({ version }), canary: [], control: [] }));
      (d.cohort === 'canary' ? g.canary : g.control).push(d);
    }
    out.push(...groups.values());
  }
  return out.sort((a, b) => b.canary.length - a.canary.length || (a.key < b.key ? -1 : 1));
}

/** A sub-population judged on its own: one hardware model, or one from-version across models. */
export interface StratumGroup {
  /** `gateway-x`, or `from 2.0.1`. */
  key: string;
  /** The strata it pools (each compared with its own control). */
  strata: Stratum[];
}

/**
 * The groups judged on their own: each hardware model (when there are several) and each from-version
 * (when strata are split by it), each stratified within. Pooling a from-version across models keeps a
 * regression that hits every model updated from one version from being split into many thin strata.
 */
export function stratumGroups(strata: readonly Stratum[]): StratumGroup[] {
  const compared = strata.filter((s) => s.canary.length > 0 && s.control.length > 0);
  const by = (key: (s: Stratum) => string | undefined): StratumGroup[] => {
    const m = new Map<string, Stratum[]>();
    for (const s of compared) {
      const k = key(s);
      if (k !== undefined) m.set(k, [...(m.get(k) ?? []), s]);
    }
    return m.size >= 2 ? [...m].map(([k, ss]) => ({ key: k, strata: ss })) : [];
  };
  const size = (g: StratumGroup): number => g.strata.reduce((a, s) => a + s.canary.length, 0);
  return [...by((s) => s.model), ...by((s) => (s.version !== undefined ? `from ${s.version}` : undefined))].sort((a, b) => size(b) - size(a) || (a.key < b.key ? -1 : 1));
}
