/**
 * The two ways the simulator reaches a coordinator: embedded in this process (the default: its own
 * broker, SQLite store and artifact server in a fresh data directory, on the run's accelerated clock),
 * or a running one over its admin API (`--broker` with `--url`/`--token`). I/O shell.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Clock } from '@fleet/protocol/clock';
import { FleetError } from '@fleet/protocol/errors';
import { loadTrustStore, type TrustStore } from '@fleet/firmware/trust-store';
import { createCoordinator, AdminClient, hardGatesAnalyzer, type Coordinator, type DecisionRecord, type DeviceProgress, type GateAnalyzer } from '@fleet/coordinator';
import type { CoordinatorHandle, CreateDeploymentInput, DeploymentView } from './coordinator-handle.js';
import type { DecisionView, ProgressView, WaveRecord } from './report.js';
import { SimulationError } from './errors.js';
import { definedProps } from '@fleet/firmware/defined-props';

interface CoordinatorDeploymentView {
  id: string;
  phase: string;
  current: number;
  pause?: { cause: string; reason?: string | undefined } | undefined;
  abortReason?: string | undefined;
  waves: { index: number; percent: number; status: string; startedAt?: number | undefined; completedAt?: number | undefined; verdict?: string | undefined; counts: Record<string, number> }[];
  rollback?: { startedAt: number; completedAt?: number | undefined; exposed: number; confirmed: number; unreachable: number } | undefined;
}

function toView(v: CoordinatorDeploymentView): DeploymentView {
  const waves: WaveRecord[] = v.waves.map((w) => ({
    index: w.index,
    percent: w.percent,
    status: w.status,
    ...definedProps({ startedAt: w.startedAt, completedAt: w.completedAt, verdict: w.verdict }),
    counts: {
      tracked: w.counts['tracked'] ?? 0,
      committed: w.counts['committed'] ?? 0,
      failed: w.counts['failed'] ?? 0,
      trialFailures: w.counts['trialFailures'] ?? 0,
      timedOut: w.counts['timedOut'] ?? 0,
      inProgress: w.counts['inProgress'] ?? 0,
      offline: w.counts['offline'] ?? 0,
      ineligible: w.counts['ineligible'] ?? 0,
    },
  }));
  return {
    id: v.id,
    phase: v.phase,
    current: v.current,
    paused: v.pause ? { cause: v.pause.cause, ...definedProps({ reason: v.pause.reason }) } : null,
    ...definedProps({ abortReason: v.abortReason }),
    waves,
    ...(v.rollback ? { rollback: { startedAt: v.rollback.startedAt, exposed: v.rollback.exposed, confirmed: v.rollback.confirmed, unreachable: v.rollback.unreachable, ...definedProps({ completedAt: v.rollback.completedAt }) } } : {}),
  };
}

function toDecision(d: DecisionRecord): DecisionView {
  return {
    wave: d.wave,
    at: d.at,
    source: d.source,
    recommendation: d.final.recommendation,
    riskLevel: d.final.riskLevel,
    rule: d.final.rule,
    issues: d.final.issues,
    analyzers: d.analyzers.map((a) => ({
      name: a.name,
      ok: a.ok,
      ...(a.verdict ? { recommendation: a.verdict.recommendation, rule: a.verdict.rule } : {}),
      ...(a.error ? { error: a.error.message } : {}),
    })),
  };
}

function toProgress(p: DeviceProgress): ProgressView {
  return {
    deviceId: p.deviceId,
    wave: p.wave,
    state: p.state,
    timedOut: p.timedOut,
    ...definedProps({ reason: p.reason, detail: p.detail }),
    ...(p.rollback ? { rollback: { status: p.rollback.status } } : {}),
  };
}

function deploymentRequest(input: CreateDeploymentInput) {
  return {
    firmwareVersion: input.firmwareVersion,
    target: { hardwareModels: input.hardwareModels, versionRange: '*', tags: input.tags },
    waves: input.waves.map((w) => ({ percent: w.percent, soakMs: w.soakMs, deadlineMs: w.deadlineMs, minDevicesReporting: w.minDevicesReporting, requiresApproval: false })),
    bucketOffset: input.bucketOffset,
    description: input.description,
    monitor: { maxExtensions: 3, onLimit: input.onMonitorLimit },
    rollback: { auto: true, deadlineMs: input.rollbackDeadlineMs, maxCommandAttempts: 5 },
    maintenanceWindows: [],
    draft: false,
  };
}

/**
 * The gate the simulator pins, if any. With the statistical judge (the default) none: the coordinator's
 * own flag-driven analyzers run (hard gates + statistical judge, AI off), exactly as in production.
 * Without it only the hard gates run: an honest choice for benchmarks of rollout mechanics, whose
 * devices send no telemetry worth judging.
 */
export function gateAnalyzers(statJudge: boolean): readonly GateAnalyzer[] | undefined {
  return statJudge ? undefined : [hardGatesAnalyzer];
}

export class NotSupportedError extends FleetError {
  constructor(message: string) {
    super('not-supported', message);
  }
}

/** An embedded coordinator on the run's clock, in `dataDir`. Restartable on the same directory. */
export async function embeddedCoordinator(
  ctx: { clock: Clock; dataDir: string; logger: Logger },
  options: { statJudge?: boolean; onStart?: (c: Coordinator) => void; maxConcurrentDownloads?: number } = {},
): Promise<CoordinatorHandle> {
  const pinned = gateAnalyzers(options.statJudge !== false);
  // Watchers outlive a restart: each new coordinator's events reach them.
  const watchers = new Set<(deploymentId: string) => void>();
  const tell = (deploymentId: string): void => {
    for (const w of watchers) w(deploymentId);
  };
  const make = (): Promise<Coordinator> =>
    createCoordinator({
      config: {
        env: 'development',
        dataDir: ctx.dataDir,
        // `auto` picks free ports, and a restart on the same data directory reuses them (devices reconnect).
        mqtt: { port: 'auto', host: '127.0.0.1' },
        http: { port: 'auto', host: '127.0.0.1', maxConcurrentDownloads: options.maxConcurrentDownloads ?? 256 },
        // Every device has its own credentials (sha256, quick to issue); cheap scrypt for user passwords.
        allowAnonymousDevices: false,
        credentialCost: 4,
        // Silence is judged on the run's clock, but reconnecting after a reboot takes real time: at
        // ×300 the default 5 minutes would be one real second on a busy machine. 20 simulated minutes.
        telemetry: { silentAfterMs: 20 * 60_000 },
      },
      clock: ctx.clock,
      logger: ctx.logger,
      ...(pinned ? { analyzers: pinned } : {}),
    }).then((co) => {
      co.events.on('deployment', (v) => tell(v.id));
      co.events.on('decision', (d) => tell(d.deploymentId));
      options.onStart?.(co);
      return co;
    });
  let c = await make();
  let restarting: Promise<void> | null = null;
  const current = async (): Promise<Coordinator> => {
    while (restarting) await restarting;
    return c;
  };
  return {
    brokerUrl: c.mqttUrl,
    description: 'embedded',
    // A restart keeps the port (`auto`) and the token (admin.json): the dashboard stays where it was.
    dashboard: { url: `${c.httpUrl}/`, token: c.adminToken },
    trust: async () => loadTrustStore((await current()).trustDir),
    async provision(ids, hardwareModelOf) {
      const co = await current();
      const byModel = new Map<string, string[]>();
      for (const id of ids) byModel.set(hardwareModelOf(id), [...(byModel.get(hardwareModelOf(id)) ?? []), id]);
      const out = new Map<string, string>();
      for (const [model, list] of byModel) {
        for (const p of await co.provisionDevices(list, { hardwareModel: model })) out.set(p.deviceId, p.secret);
      }
      return out;
    },
    async uploadFirmware(version, bytes, hardware) {
      const r = await (await current()).uploadFirmware({ image: Readable.from([bytes]), version, hardware });
      return { sha256: r.sha256, size: r.size };
    },
    async createDeployment(input) {
      const v = await (await current()).createDeployment(deploymentRequest(input), 'simulator');
      return { id: v.id, warnings: v.warnings ?? [] };
    },
    async deployment(id) {
      const v = await (await current()).deployment(id);
      if (!v) throw new FleetError('not-found', `deployment ${id} is not known`);
      return toView(v);
    },
    async decisions(id) {
      return ((await (await current()).deployment(id))?.decisions ?? []).map(toDecision);
    },
    watch(id, onChange) {
      const watcher = (deploymentId: string): void => {
        if (deploymentId === id) onChange();
      };
      watchers.add(watcher);
      return () => watchers.delete(watcher);
    },
    async progress(id) {
      return (await (await current()).deploymentDevices(id)).map(toProgress);
    },
    async abort(id, reason) {
      await (await current()).act(id, { type: 'abort', reason, rollback: true }, 'simulator');
    },
    async onlineDevices(ids) {
      let n = 0;
      for (const d of (await current()).devices({ online: true })) if (ids.has(d.deviceId)) n++;
      return n;
    },
    async hardwareModels(ids) {
      const co = await current();
      const out = new Map<string, string>();
      for (const id of ids) {
        const model = co.device(id)?.hardwareModel;
        if (model !== undefined) out.set(id, model);
      }
      return out;
    },
    restartBroker() {
      return Promise.reject(new NotSupportedError('the embedded coordinator cannot restart its broker alone'));
    },
    async restartCoordinator() {
      if (restarting) return restarting;
      restarting = (async () => {
        await c.stop();
        c = await make();
      })();
      try {
        await restarting;
      } finally {
        restarting = null;
      }
    },
    async stop() {
      await (await current()).stop();
    },
  };
}

/**
 * A running coordinator: devices connect to `url`, everything else goes through the admin API. The
 * devices' trust store is the directory of the coordinator's public key (`--trust`), as on real devices.
 */
export async function remoteCoordinator(opts: { url: string; adminUrl: string | undefined; token: string | undefined; trustDir: string | undefined }): Promise<CoordinatorHandle> {
  if (!opts.adminUrl || !opts.token) {
    throw new NotSupportedError('--broker needs the coordinator\'s admin API too: pass --url and --token (or set FLEET_URL and FLEET_TOKEN)');
  }
  if (!opts.trustDir) {
    throw new NotSupportedError('--broker needs --trust <dir>: the directory holding the coordinator\'s public key (<data-dir>/trust), as on real devices');
  }
  const trust = await loadTrustStore(opts.trustDir);
  const api = new AdminClient(opts.adminUrl.replace(/\/$/, ''), opts.token);
  return remoteHandle(api, opts.url, opts.adminUrl, trust);
}

/** Every device the registry lists (paged), with an optional query such as `online=true`. */
async function listDevices(api: AdminClient, query: string): Promise<{ deviceId: string; hardwareModel: string | null }[]> {
  const out: { deviceId: string; hardwareModel: string | null }[] = [];
  const limit = 10_000;
  for (let offset = 0; ; offset += limit) {
    const page = await api.request<{ total: number; devices: { deviceId: string; hardwareModel: string | null }[] }>(
      'GET',
      `/v1/devices?${query ? `${query}&` : ''}limit=${limit}&offset=${offset}`,
    );
    out.push(...page.devices);
    if (page.devices.length < limit || offset + limit >= page.total) return out;
  }
}

function remoteHandle(api: AdminClient, brokerUrl: string, adminUrl: string, trust: TrustStore): CoordinatorHandle {
  const get = <T>(path: string): Promise<T> => api.request<T>('GET', path);
  return {
    brokerUrl,
    description: `${brokerUrl} (admin ${adminUrl})`,
    trust: () => Promise.resolve(trust),
    async provision(ids, hardwareModelOf) {
      const out = new Map<string, string>();
      const byModel = new Map<string, string[]>();
      for (const id of ids) byModel.set(hardwareModelOf(id), [...(byModel.get(hardwareModelOf(id)) ?? []), id]);
      for (const [model, list] of byModel) {
        for (let i = 0; i < list.length; i += 500) {
          const r = await api.request<{ devices: { deviceId: string; secret: string }[] }>('POST', '/v1/devices/provision', {
            deviceIds: list.slice(i, i + 500),
            hardwareModel: model,
            rotate: true,
          });
          for (const d of r.devices) out.set(d.deviceId, d.secret);
        }
      }
      return out;
    },
    async uploadFirmware(version, bytes, hardware) {
      const q = new URLSearchParams({ version, hardware: hardware.join(',') });
      try {
        const r = await api.request<{ sha256: string; size: number }>('POST', `/v1/firmware?${q.toString()}`, undefined, {
          raw: bytes,
          headers: { 'content-type': 'application/octet-stream' },
        });
        return { sha256: r.sha256, size: r.size };
      } catch (err) {
        if (!(err instanceof FleetError) || err.code !== 'artifact-exists') throw err;
        // Versions are immutable. An earlier run of the same scenario and seed built the same image
        // (images are derived from both): use it. Anything else is not this scenario's release.
        const existing = await get<{ sha256: string; size: number }>(`/v1/firmware/${encodeURIComponent(version)}`);
        const ours = createHash('sha256').update(bytes).digest('hex');
        if (existing.sha256 !== ours) {
          throw new SimulationError('artifact-exists', `firmware ${version} is already on the coordinator with another image; the scenario's releases cannot reuse that version: run it with another --seed, or rename its versions`);
        }
        return { sha256: existing.sha256, size: existing.size };
      }
    },
    async createDeployment(input) {
      const v = await api.request<{ id: string; warnings?: string[] }>('POST', '/v1/deployments', deploymentRequest(input));
      return { id: v.id, warnings: v.warnings ?? [] };
    },
    async deployment(id) {
      return toView(await get<CoordinatorDeploymentView>(`/v1/deployments/${id}`));
    },
    async decisions(id) {
      return (await get<{ decisions: DecisionRecord[] }>(`/v1/deployments/${id}/decisions`)).decisions.map(toDecision);
    },
    async progress(id) {
      const r = await get<DeviceProgress[] | { devices: DeviceProgress[] }>(`/v1/deployments/${id}/devices`);
      return (Array.isArray(r) ? r : r.devices).map(toProgress);
    },
    async abort(id, reason) {
      await api.request('POST', `/v1/deployments/${id}/actions`, { type: 'abort', reason, rollback: true });
    },
    async onlineDevices(ids) {
      let n = 0;
      for (const d of await listDevices(api, 'online=true')) if (ids.has(d.deviceId)) n++;
      return n;
    },
    async hardwareModels(ids) {
      const wanted = new Set(ids);
      const out = new Map<string, string>();
      for (const d of await listDevices(api, '')) if (wanted.has(d.deviceId) && d.hardwareModel) out.set(d.deviceId, d.hardwareModel);
      return out;
    },
    restartBroker: () => Promise.reject(new NotSupportedError('cannot restart a remote broker')),
    restartCoordinator: () => Promise.reject(new NotSupportedError('cannot restart a remote coordinator')),
    stop: () => Promise.resolve(),
  };
}
