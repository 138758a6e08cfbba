/**
 * The coordinator's rollout service: the engine runner wired to the shell — SQLite repository, the
 * effect sink (retained manifests, signed commands, audit), the registry as wave directory, gate
 * snapshots built from telemetry (each stored by the digest its decision records) — plus the views the
 * admin API and embedders read. Ghosts (devices never provisioned where provisioning is required)
 * never reach the engine: their hellos are left out and their statuses recorded as anomalies. I/O shell.
 */
import type { Logger } from 'pino';
import type { Clock } from '../../protocol/clock.js';
import type { CanarySnapshot } from '../../protocol/canary.js';
import type { HelloMessage, StatusMessage } from '../../protocol/messages.js';
import type { SigningKey } from '../../firmware/keys.js';
import { EngineRunner } from '../engine/engine-runner.js';
import { BUCKET_COUNT } from '../../protocol/bucket.js';
import { FleetError } from '../../protocol/errors.js';
import { SqliteDeploymentRepository } from '../engine/deployment-repo-sqlite.js';
import type { DecisionRecord } from '../gate/decision.js';
import type { GateAnalyzer } from '../gate/analyzer.js';
import { hardGatesAnalyzer } from '../gate/hard-gates.js';
import { inputsDigest } from '../gate/run-gate.js';
import { allDevices } from '../engine/device-progress.js';
import { explainNoMatch, smallWaveWarnings, waveOfBucketIn, type KnownDevice } from '../engine/wave-plan.js';
import { planWarnings } from '../canary/soak-planner.js';
import type {
  AuditEntry,
  DeploymentCore,
  DeploymentRequest,
  DeploymentSpec,
  DeploymentState,
  DeviceProgress,
  OperatorAction,
} from '../engine/types.js';
import type { Db } from '../store/db.js';
import type { AuditLog } from '../store/audit-log.js';
import type { Counters } from '../metrics.js';
import type { DeviceRegistry } from '../registry/device-registry.js';
import type { FirmwareService } from '../artifacts/firmware-service.js';
import type { SnapshotBuilder } from '../telemetry/snapshot-builder.js';
import { prepareDeployment } from '../deployments/deployment-factory.js';
import { floorWarnings } from '../deployments/floor-warnings.js';
import type { FreshnessCounters } from '../deployments/freshness-counters.js';
import { matchesTarget } from '../registry/device-registry.js';
import { CoordinatorEffectSink } from './effect-sink.js';
import { RegistryWaveDirectory } from './wave-directory.js';
import { GateSnapshots } from './gate-snapshots.js';
import type { Publisher } from './publisher.js';
import type { AnomalyLog } from '../registry/anomaly-log.js';

/** A deployment whose target matches no known device. */
export class NoEligibleDevicesError extends FleetError {
  constructor(message: string) {
    super('no-eligible-devices', message);
  }
}

export interface RolloutServiceDeps {
  db: Db;
  clock: Clock;
  logger: Logger;
  registry: DeviceRegistry;
  publisher: Publisher;
  key: SigningKey;
  auditLog: AuditLog;
  counters: Counters;
  firmware: FirmwareService;
  snapshots: SnapshotBuilder;
  silentAfterMs: number;
  /** Warm-up after each canary's commit left out of its continuous metrics (default 5 minutes). */
  warmUpMs?: number;
  /** Gate analyzers for one wave (flag-driven in the coordinator); default: the hard gates. */
  analyzersFor: ((spec: { id: string }, wave: number) => readonly GateAnalyzer[]) | undefined;
  random: () => number;
  /** Issues the seq of every signed command. */
  freshness: FreshnessCounters;
  onAudit?: (entry: AuditEntry) => void;
  /** Called after each recorded decision. */
  onDecision?: (decision: DecisionRecord) => void;
  /** Where statuses for updates a device was never offered are recorded. */
  anomalies?: Pick<AnomalyLog, 'record'>;
}

/** A deployment as the admin API shows it (the CLI's DeploymentView). */
export interface DeploymentView {
  id: string;
  firmwareVersion: string;
  description?: string;
  phase: DeploymentCore['phase'];
  current: number;
  paused: boolean;
  pause?: DeploymentCore['pause'];
  waitingFor: DeploymentCore['waitingFor'];
  target: DeploymentCore['spec']['target'];
  artifact: DeploymentCore['spec']['artifact'];
  bucketOffset: number;
  waves: {
    index: number;
    percent: number;
    status: string;
    soakMs: number;
    deadlineMs: number;
    requiresApproval: boolean;
    approved: boolean;
    /** Who approved it: `operator:<user>`. */
    approvedBy?: string;
    startedAt?: number;
    deadlineAt?: number;
    completedAt?: number;
    soakEndsAt?: number;
    verdict?: string;
    decisionId?: string;
    monitorCount: number;
    counts: Record<string, number>;
  }[];
  rollback?: DeploymentCore['rollback'];
  abortReason?: string;
  /** Who aborted it: `operator:<user>`, or `gate`. */
  abortedBy?: string;
  createdAt: number;
  createdBy?: string;
  updatedAt: number;
  revision: number;
  decisions?: DecisionRecord[];
  /**
   * At creation only: canary waves too small to judge (wave-plan.ts smallWaveWarnings), what the
   * firmware does to the devices' security floors (floor-warnings.ts), an offline-signed manifest
   * that devices may refuse as stale.
   */
  warnings?: string[];
}

export function deploymentView(core: DeploymentCore, decisions?: DecisionRecord[]): DeploymentView {
  const spec = core.spec;
  return {
    id: spec.id,
    firmwareVersion: spec.firmwareVersion,
    ...(spec.description !== undefined ? { description: spec.description } : {}),
    phase: core.phase,
    current: core.current,
    paused: core.pause !== undefined,
    ...(core.pause ? { pause: core.pause } : {}),
    waitingFor: core.waitingFor,
    target: spec.target,
    artifact: spec.artifact,
    bucketOffset: spec.bucketOffset,
    waves: core.waves.map((w) => {
      const ws = spec.waves[w.index]!;
      return {
        index: w.index,
        percent: ws.percent,
        status: w.status,
        soakMs: ws.soakMs,
        deadlineMs: ws.deadlineMs,
        requiresApproval: ws.requiresApproval,
        approved: w.approvedBy !== undefined || core.approvals.includes(w.index),
        ...(w.approvedBy !== undefined ? { approvedBy: w.approvedBy } : {}),
        ...(w.startedAt !== undefined ? { startedAt: w.startedAt } : {}),
        ...(w.deadlineAt !== undefined ? { deadlineAt: w.deadlineAt } : {}),
        ...(w.completedAt !== undefined ? { completedAt: w.completedAt } : {}),
        ...(w.soakEndsAt !== undefined ? { soakEndsAt: w.soakEndsAt } : {}),
        ...(w.verdict !== undefined ? { verdict: w.verdict } : {}),
        ...(w.decisionId !== undefined ? { decisionId: w.decisionId } : {}),
        monitorCount: w.monitorCount,
        counts: { ...w.counts },
      };
    }),
    ...(core.rollback ? { rollback: core.rollback } : {}),
    ...(core.abortReason !== undefined ? { abortReason: core.abortReason } : {}),
    ...(core.abortedBy !== undefined ? { abortedBy: core.abortedBy } : {}),
    createdAt: spec.createdAt,
    ...(spec.createdBy !== undefined ? { createdBy: spec.createdBy } : {}),
    updatedAt: core.updatedAt,
    revision: core.revision,
    ...(decisions ? { decisions } : {}),
  };
}

export class RolloutService {
  private constructor(
    private readonly deps: RolloutServiceDeps,
    readonly repo: SqliteDeploymentRepository,
    readonly runner: EngineRunner,
  ) {}

  static create(deps: RolloutServiceDeps): Promise<RolloutService> {
    const repo = new SqliteDeploymentRepository(deps.db);
    const sink = new CoordinatorEffectSink({
      publisher: deps.publisher,
      key: deps.key,
      auditLog: deps.auditLog,
      logger: deps.logger,
      counters: deps.counters,
      now: () => deps.clock.now(),
      commandSeq: () => deps.freshness.next('command'),
      ...(deps.onAudit ? { onAudit: deps.onAudit } : {}),
      ...(deps.onDecision ? { onDecision: deps.onDecision } : {}),
      ...(deps.anomalies ? { anomalies: deps.anomalies } : {}),
    });
    const gateSnapshots = new GateSnapshots({
      registry: deps.registry,
      builder: deps.snapshots,
      silentAfterMs: deps.silentAfterMs,
      ...(deps.warmUpMs !== undefined ? { warmUpMs: deps.warmUpMs } : {}),
    });
    const saveSnapshot = deps.db.prepare(
      'INSERT OR IGNORE INTO gate_snapshots (digest, deployment_id, wave, taken_at, snapshot_json) VALUES (?, ?, ?, ?, ?)',
    );
    const analyzersFor = deps.analyzersFor ?? ((): readonly GateAnalyzer[] => [hardGatesAnalyzer]);
    const runner = new EngineRunner({
      repo,
      sink,
      clock: deps.clock,
      directory: new RegistryWaveDirectory(deps.registry),
      logger: deps.logger,
      analyzersFor: (spec, wave) => analyzersFor(spec, wave),
      snapshotFor: (state: DeploymentState, wave: number, now: number): CanarySnapshot => {
        const snapshot = gateSnapshots.build(state, wave, now, allDevices(state));
        saveSnapshot.run(inputsDigest(snapshot), state.core.spec.id, wave, now, JSON.stringify(snapshot));
        return snapshot;
      },
    });
    return Promise.resolve(new RolloutService(deps, repo, runner));
  }

  /** Loads and resumes every live deployment. */
  start(): Promise<void> {
    return this.runner.start();
  }

  stop(): Promise<void> {
    return this.runner.stop();
  }

  // ---- commands ---------------------------------------------------------------------------

  async create(request: DeploymentRequest, actor: string): Promise<DeploymentView> {
    // A damaged image (truncated or altered on disk) is never deployed: it would fail on every device.
    await this.deps.firmware.requireIntact(request.firmwareVersion);
    const now = this.deps.clock.now();
    const { spec, warnings: manifestWarnings } = prepareDeployment(
      request,
      {
        firmware: this.deps.firmware,
        now: () => now,
        random: this.deps.random,
        newId: (version) => `d-${new Date(now).toISOString().slice(0, 10).replace(/-/g, '')}-${version.replace(/[^A-Za-z0-9.-]/g, '')}-${Math.floor(this.deps.random() * 0xffffff).toString(16).padStart(6, '0')}`,
      },
      actor,
    );
    const small = this.checkTargetDevices(spec);
    const other = [...manifestWarnings, ...this.floorWarnings(spec)];
    const core = await this.runner.create(spec, actor);
    for (const warning of small) this.deps.logger.warn({ deploymentId: spec.id, warning }, 'deployment created with a small canary wave');
    for (const warning of other) this.deps.logger.warn({ deploymentId: spec.id, warning }, 'deployment created: read this warning');
    const warnings = [...small, ...other];
    return { ...deploymentView(core), ...(warnings.length ? { warnings } : {}) };
  }

  /** What the firmware does to the known target devices' security floors (floor-warnings.ts). */
  private floorWarnings(spec: DeploymentSpec): string[] {
    const securityVersion = spec.manifest.signed['securityVersion'];
    if (typeof securityVersion !== 'number') return [];
    const target = { hardware: spec.target.hardwareModels, versionRange: spec.target.versionRange, tags: spec.target.tags };
    const floors: number[] = [];
    for (const d of this.deps.registry.all()) if (matchesTarget(d, target)) floors.push(d.securityFloor);
    return floorWarnings(spec.firmwareVersion, securityVersion, floors);
  }

  /**
   * A deployment that matches no known device would pass every wave as empty and leave its manifest
   * retained for whoever connects later, judged by no canary at all: refuse it. A device is known once
   * it has said hello (its version decides whether it is in the target). Canary waves too small to
   * judge are warned about.
   */
  private checkTargetDevices(spec: DeploymentSpec): string[] {
    const directory = new RegistryWaveDirectory(this.deps.registry);
    const everyBucket = Array.from({ length: BUCKET_COUNT }, (_, b) => b);
    const known = directory.members(spec, everyBucket);
    if (known.length > 0) {
      // Each known device counted in its own wave: one pass over the registry, not one per wave.
      const sizes = spec.waves.map(() => 0);
      for (const m of known) {
        const wave = waveOfBucketIn(spec, m.bucket);
        if (wave >= 0) sizes[wave]!++;
      }
      return [...smallWaveWarnings(spec, sizes, known.length), ...planWarnings(spec, sizes, known.length)];
    }
    // Ghosts (connected without credentials) never take part in a rollout: they are not counted.
    const said: KnownDevice[] = [];
    for (const d of this.deps.registry.all()) {
      if (!d.ghost && d.hardwareModel !== undefined && d.firmwareVersion !== undefined) said.push({ deviceId: d.deviceId, hardwareModel: d.hardwareModel, firmwareVersion: d.firmwareVersion, tags: d.tags });
    }
    throw new NoEligibleDevicesError(explainNoMatch(spec, said));
  }

  async act(deploymentId: string, action: OperatorAction, actor: string): Promise<DeploymentView> {
    const core = await this.runner.act(deploymentId, action, actor);
    return deploymentView(core);
  }

  // ---- device traffic -----------------------------------------------------------------------

  /** Feeds a hello to the engine (not a ghost's: it is in no wave). */
  hello(m: HelloMessage): void {
    if (!this.deps.registry.isTracked(m.deviceId)) return;
    this.runner.onHello(m);
  }

  /**
   * Feeds a status to the engine with the model the registry knows the device as (the engine counts
   * it only for an update the device was offered). The runner queues it per deployment and persists it
   * before any effect; the coordinator has already stored it in the status inbox, which is replayed on
   * start. A ghost's status is an anomaly, never an input.
   */
  status(m: StatusMessage): Promise<void> {
    this.noteRefusal(m);
    this.feedStatus(m);
    return Promise.resolve();
  }

  /**
   * A device refused a signed manifest or command as stale, replayed, unbound or below its floor:
   * counted by reason (`device.refusals.<reason>` in GET /v1/metrics) and logged with the device and
   * the deployment it came under. Under a deployment this coordinator never created, someone else
   * offered it (a replay on the broker).
   */
  private noteRefusal(m: StatusMessage): void {
    if (m.reason !== 'stale-manifest' && m.reason !== 'unbound-rollback' && m.reason !== 'below-security-floor' && m.reason !== 'replayed') return;
    const known = this.runner.get(m.deploymentId) !== undefined;
    this.deps.counters.inc(`device.refusals.${m.reason}`);
    if (!known) this.deps.counters.inc('device.refusals.unknown-deployment');
    this.deps.logger.warn(
      { deviceId: m.deviceId, deploymentId: m.deploymentId, reason: m.reason, state: m.state, detail: m.detail, knownDeployment: known },
      known ? 'a device refused what this deployment sent it' : 'a device refused a manifest under a deployment this coordinator never created (replayed on the broker?)',
    );
  }

  /** A status from the inbox after a restart; duplicates are ignored by the engine (sequence numbers). */
  replayStatus(m: StatusMessage): void {
    this.feedStatus(m);
  }

  private feedStatus(m: StatusMessage): void {
    const registry = this.deps.registry;
    if (!registry.isTracked(m.deviceId)) {
      const known = registry.get(m.deviceId) !== undefined;
      this.deps.anomalies?.record(m.deviceId, 'unoffered-status', `status ${m.state} for ${m.deploymentId} ignored: ${known ? 'a ghost (never provisioned) is in no wave' : 'unknown device'}`);
      return;
    }
    this.runner.onStatus(m, registry.hardwareModelOf(m.deviceId));
  }

  presence(deviceId: string, online: boolean): void {
    this.runner.onPresence(deviceId, online);
  }

  // ---- queries ------------------------------------------------------------------------------

  view(deploymentId: string): DeploymentView | undefined {
    const state = this.runner.get(deploymentId);
    return state ? deploymentView(state.core, this.repo.decisions(deploymentId)) : undefined;
  }

  list(limit = 100): DeploymentView[] {
    const live = new Map(this.runner.liveDeployments().map((c) => [c.spec.id, c]));
    return this.repo.list({ limit }).map((c) => deploymentView(live.get(c.spec.id) ?? c));
  }

  decisions(deploymentId: string): DecisionRecord[] {
    return this.repo.decisions(deploymentId);
  }

  devices(deploymentId: string, wave?: number): DeviceProgress[] {
    const state = this.runner.get(deploymentId);
    if (!state) return [];
    const all = allDevices(state);
    return wave === undefined ? all : all.filter((d) => d.wave === wave);
  }

  /** The canary snapshot a decision judged, by the decision's inputs digest. */
  snapshot(digest: string): CanarySnapshot | undefined {
    const row = this.deps.db.prepare('SELECT snapshot_json FROM gate_snapshots WHERE digest = ?').get(digest) as { snapshot_json: string } | undefined;
    return row ? (JSON.parse(row.snapshot_json) as CanarySnapshot) : undefined;
  }

  /** One device's progress in every deployment that tracked it, newest first. */
  deviceHistory(deviceId: string): (DeviceProgress & { deploymentId: string })[] {
    const rows = this.deps.db
      .prepare('SELECT deployment_id, progress_json FROM deployment_devices WHERE device_id = ? ORDER BY updated_at DESC LIMIT 50')
      .all(deviceId) as { deployment_id: string; progress_json: string }[];
    return rows.map((r) => ({ ...(JSON.parse(r.progress_json) as DeviceProgress), deploymentId: r.deployment_id }));
  }

  /** Resolves when every queued engine event and gate has been handled (tests, the simulator). */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  summary(): Record<string, unknown> {
    const byPhase: Record<string, number> = {};
    for (const c of this.runner.liveDeployments()) byPhase[c.phase] = (byPhase[c.phase] ?? 0) + 1;
    return { live: byPhase, runner: { ...this.runner.counters } };
  }
}
