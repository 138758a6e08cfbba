/**
 * The coordinator's state read for each scrape (fleet-metrics.ts MetricSources): counters, the MQTT
 * connections, the registry summarised (never per device), the telemetry queue, downloads, every
 * deployment by phase, the live deployments' waves, rollback outcomes and the engine's own counters.
 * Reads only; nothing here changes state. I/O shell.
 */
import type { Counters } from '../metrics.js';
import type { DeploymentCore } from '../engine/types.js';
import type { Sql } from '../store/sql.js';
import { DeploymentStats } from './deployment-stats.js';
import type { LiveDeploymentSample, MetricSources } from './fleet-metrics.js';

/** Distinct (model, version) series at most; the smallest rest are folded into version `other`. */
const MAX_VERSION_SERIES = 200;

export interface MetricSourceParts {
  sql: Sql;
  counters: Counters;
  connectedDevices: () => ReadonlySet<string> | undefined;
  devices: () => Iterable<{ hardwareModel: string | undefined; firmwareVersion: string | undefined; online: boolean }>;
  devicesWithAnomalies: () => number;
  telemetry: { readonly pending: number; readonly written: number };
  downloads: { readonly activeDownloads: number };
  liveDeployments: () => readonly DeploymentCore[];
  engineCounters: () => Readonly<Record<string, number>>;
}

export function coordinatorMetricSources(p: MetricSourceParts): MetricSources {
  const stats = new DeploymentStats(p.sql);
  return {
    counters: () => p.counters.snapshot(),
    connections: () => p.connectedDevices()?.size,
    devices: () => summariseDevices(p.devices(), p.devicesWithAnomalies()),
    telemetry: () => ({ pending: p.telemetry.pending, written: p.telemetry.written }),
    activeDownloads: () => p.downloads.activeDownloads,
    deploymentsByPhase: () => stats.byPhase(),
    liveDeployments: () => p.liveDeployments().map(liveSample),
    rollbackDevices: () => stats.rollbackDevices(),
    engine: () => p.engineCounters(),
  };
}

function liveSample(c: DeploymentCore): LiveDeploymentSample {
  return {
    id: c.spec.id,
    phase: c.phase,
    current: c.current,
    waves: c.waves.map((w) => ({ index: w.index, percent: c.spec.waves[w.index]?.percent ?? 0, counts: w.counts })),
  };
}

function summariseDevices(
  all: Iterable<{ hardwareModel: string | undefined; firmwareVersion: string | undefined; online: boolean }>,
  withAnomalies: number,
): ReturnType<MetricSources['devices']> {
  let known = 0;
  let online = 0;
  const byVersion = new Map<string, { model: string; version: string; count: number }>();
  for (const d of all) {
    known++;
    if (d.online) online++;
    const model = d.hardwareModel ?? 'unknown';
    const version = d.firmwareVersion ?? 'unknown';
    const key = `${model}\u0000${version}`;
    const entry = byVersion.get(key);
    if (entry) entry.count++;
    else byVersion.set(key, { model, version, count: 1 });
  }
  const sorted = [...byVersion.values()].sort((a, b) => b.count - a.count);
  const kept = sorted.slice(0, MAX_VERSION_SERIES);
  const rest = new Map<string, number>();
  for (const e of sorted.slice(MAX_VERSION_SERIES)) rest.set(e.model, (rest.get(e.model) ?? 0) + e.count);
  for (const [model, count] of rest) kept.push({ model, version: 'other', count });
  return { known, online, withAnomalies, byVersion: kept };
}
