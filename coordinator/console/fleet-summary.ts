/** The fleet's counts by hardware model, firmware version, update state and anomaly kind. Pure. */
import semver from 'semver';
import type { FleetSummary } from '@fleet/protocol/console';

/** What a summary needs of a device record. */
export interface SummaryDevice {
  deviceId: string;
  hardwareModel: string | undefined;
  firmwareVersion: string | undefined;
  online: boolean;
  ghost: boolean;
  update: { state: string } | undefined;
}

/** Newest version first (semver order; versions that are not semver after, by name; unknown last). */
function byVersionDesc(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  const va = semver.valid(a);
  const vb = semver.valid(b);
  if (va && vb) return semver.rcompare(va, vb);
  if (va) return -1;
  if (vb) return 1;
  return a < b ? -1 : 1;
}

function countsOf(map: Map<string | null, number>): { version: string | null; count: number }[] {
  return [...map].map(([version, count]) => ({ version, count })).sort((x, y) => byVersionDesc(x.version, y.version));
}

export function fleetSummary(
  devices: Iterable<SummaryDevice>,
  anomalies: readonly { deviceId: string; kind: string }[],
  at: number,
): FleetSummary {
  let total = 0;
  let online = 0;
  let ghosts = 0;
  const models = new Map<string | null, { total: number; online: number; versions: Map<string | null, number> }>();
  const versions = new Map<string | null, number>();
  const updateStates: Record<string, number> = {};
  for (const d of devices) {
    total++;
    if (d.online) online++;
    if (d.ghost) ghosts++;
    const model = d.hardwareModel ?? null;
    const version = d.firmwareVersion ?? null;
    let m = models.get(model);
    if (!m) models.set(model, (m = { total: 0, online: 0, versions: new Map() }));
    m.total++;
    if (d.online) m.online++;
    m.versions.set(version, (m.versions.get(version) ?? 0) + 1);
    versions.set(version, (versions.get(version) ?? 0) + 1);
    const state = d.update?.state ?? 'none';
    updateStates[state] = (updateStates[state] ?? 0) + 1;
  }
  const kinds = new Map<string, Set<string>>();
  for (const a of anomalies) {
    let s = kinds.get(a.kind);
    if (!s) kinds.set(a.kind, (s = new Set()));
    s.add(a.deviceId);
  }
  const withAnomalies = new Set(anomalies.map((a) => a.deviceId)).size;
  return {
    at,
    devices: { total, online, offline: total - online, ghosts, withAnomalies },
    models: [...models]
      .map(([hardwareModel, m]) => ({ hardwareModel, total: m.total, online: m.online, versions: countsOf(m.versions) }))
      .sort((a, b) => b.total - a.total || String(a.hardwareModel).localeCompare(String(b.hardwareModel))),
    versions: countsOf(versions),
    updateStates,
    anomalies: Object.fromEntries([...kinds].map(([kind, ids]) => [kind, ids.size])),
  };
}
