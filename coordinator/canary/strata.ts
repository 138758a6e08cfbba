/**
 * Strata of a canary snapshot: devices grouped by hardware model, and by the version they run(control)
 * or updated from (canary) where a model's control runs several versions and every canary's
 * from-version is among them. Each stratum's canaries are compared with its own control. Pure.
 */
import type { CanarySnapshot, DeviceSummary } from '../../protocol/canary.js';

export interface Stratum {
  /** `rpi4`, or `rpi4@1.2.0` when split by from-version. */
  key: string;
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
      const key = split ? `${model}@${baseVersion(d) ?? '?'}` : model;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { key, canary: [], control: [] }));
      (d.cohort === 'canary' ? g.canary : g.control).push(d);
    }
    out.push(...groups.values());
  }
  return out.sort((a, b) => b.canary.length - a.canary.length || (a.key < b.key ? -1 : 1));
}
