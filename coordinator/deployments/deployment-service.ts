/**
 * Deployments for the coordinator: the engine runner wired to its shell — the repository on the store
 * (all of deployment persistence, SQLite or PostgreSQL), the effect sink (retained manifests, signed commands, audit), the
 * registry as wave directory, gate snapshots built from telemetry (each stored by the digest its
 * decision records) — creation (factory, creation warnings), device traffic for the engine, and the
 * views the admin API and embedders read. Ghosts (devices never provisioned where provisioning is
 * required) never reach the engine: their hellos are left out and their statuses recorded as
 * anomalies. I/O shell.
 */
import type { Logger } from 'pino';
import type { Clock } from '@fleet/protocol/clock';
import type { CanarySnapshot } from '@fleet/protocol/canary';
import type { HelloMessage, StatusMessage } from '@fleet/protocol/messages';
import type { SigningKey } from '@fleet/firmware/keys';
import { definedProps } from '@fleet/firmware/defined-props';
import { EngineRunner } from '../engine/engine-runner.js';
import type { DecisionRecord } from '../gate/decision.js';
import type { GateAnalyzer } from '../gate/analyzer.js';
import { hardGatesAnalyzer } from '../gate/hard-gates.js';
import { allDevices } from '../engine/device-progress.js';
import { currentManifest } from '../engine/manifest-renewal.js';
import type { AuditEntry, DeploymentCore, DeploymentRequest, DeploymentState, DeviceProgress, OperatorAction } from '../engine/types.js';
import type { Sql, SqlQueries } from '../store/sql.js';
import type { AuditLog } from '../store/audit-log.js';
import type { Counters } from '../metrics.js';
import type { DeviceRegistry } from '../registry/device-registry.js';
import type { AnomalyLog } from '../registry/anomaly-log.js';
import type { FirmwareService } from '../artifacts/firmware-service.js';
import type { SnapshotBuilder } from '../telemetry/snapshot-builder.js';
import type { Publisher } from '../broker/publisher.js';
import { prepareDeployment } from './deployment-factory.js';
import { creationWarnings } from './creation-warnings.js';
import type { FreshnessCounters } from './freshness-counters.js';
import { SqlDeploymentRepository } from './deployment-repo.js';
import { CoordinatorEffectSink } from './effect-sink.js';
import { RegistryWaveDirectory } from './wave-directory.js';
import { GateSnapshots } from './gate-snapshots.js';
import { deploymentView, type DeploymentView } from './deployment-view.js';

export type { DeploymentView } from './deployment-view.js';

export interface DeploymentServiceDeps {
  sql: Sql;
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
  /** Every change of a deployment, as the API shows it (the console's live feed). */
  onChange?: (view: DeploymentView) => void;
  /** Where statuses for updates a device was never offered are recorded. */
  anomalies?: Pick<AnomalyLog, 'record'>;
  /**
   * Replicated coordinators (cluster/replication.ts): only the leader runs the engine. Commands are
   * refused on a follower (503 naming the leader) and device traffic is not fed to its engine (the
   * leader reads it from the shared inbox). Default: this coordinator always leads.
   */
  leadership?: { readonly isLeader: boolean; requireLeader(): Promise<void>; readonly guard: (tx: SqlQueries) => Promise<void> };
}

export class DeploymentService {
  private runner: EngineRunner;

  private constructor(
    private readonly deps: DeploymentServiceDeps,
    private readonly repo: SqlDeploymentRepository,
    private readonly makeRunner: () => EngineRunner,
  ) {
    this.runner = makeRunner();
  }

  /** Builds the repository, the effect sink, gate snapshots and the runner (not started: `start()`). */
  static create(deps: DeploymentServiceDeps): DeploymentService {
    const repo = new SqlDeploymentRepository(deps.sql, deps.leadership?.guard);
    const sink = new CoordinatorEffectSink({
      publisher: deps.publisher,
      key: deps.key,
      auditLog: deps.auditLog,
      logger: deps.logger,
      counters: deps.counters,
      now: () => deps.clock.now(),
      commandSeq: () => deps.freshness.next('command'),
      ...definedProps({ onAudit: deps.onAudit, onDecision: deps.onDecision, anomalies: deps.anomalies }),
    });
    const gateSnapshots = new GateSnapshots({
      registry: deps.registry,
      builder: deps.snapshots,
      silentAfterMs: deps.silentAfterMs,
      ...definedProps({ warmUpMs: deps.warmUpMs }),
    });
    const analyzersFor = deps.analyzersFor ?? ((): readonly GateAnalyzer[] => [hardGatesAnalyzer]);
    const makeRunner = (): EngineRunner => new EngineRunner({
      repo,
      sink,
      clock: deps.clock,
      directory: new RegistryWaveDirectory(deps.registry),
      logger: deps.logger,
      analyzersFor: (spec, wave) => analyzersFor(spec, wave),
      renewManifest: (core) => deps.firmware.renewDeploymentManifest(currentManifest(core), core.spec.id),
      ...(deps.onChange ? { onCommitted: (core: DeploymentCore) => deps.onChange!(deploymentView(core)) } : {}),
      snapshotFor: (state: DeploymentState, wave: number, now: number): Promise<CanarySnapshot> => gateSnapshots.build(state, wave, now, allDevices(state)),
      keepSnapshot: (s) => repo.saveSnapshot(s.digest, s.deploymentId, s.wave, s.takenAt, s.snapshot),
    });
    return new DeploymentService(deps, repo, makeRunner);
  }

  /** Loads and resumes every live deployment. */
  start(): Promise<void> {
    return this.runner.start();
  }

  stop(): Promise<void> {
    return this.runner.stop();
  }

  /**
   * A replica that stopped leading: its engine stops (timers, queued work) and a fresh one, not
   * started, answers reads from the store until `start()` when this replica leads again.
   */
  async stopEngine(): Promise<void> {
    const old = this.runner;
    this.runner = this.makeRunner();
    await old.stop();
  }

  private get following(): boolean {
    return this.deps.leadership !== undefined && !this.deps.leadership.isLeader;
  }

  // ---- commands ---------------------------------------------------------------------------

  async create(request: DeploymentRequest, actor: string): Promise<DeploymentView> {
    await this.deps.leadership?.requireLeader();
    // A damaged image (truncated or altered on disk) is never deployed: it would fail on every device.
    await this.deps.firmware.requireIntact(request.firmwareVersion);
    const now = this.deps.clock.now();
    const { spec, warnings: manifestWarnings } = await prepareDeployment(request, { firmware: this.deps.firmware, now: () => now, random: this.deps.random }, actor);
    const { smallWaves, other: floors } = creationWarnings(spec, this.deps.registry);
    const other = [...manifestWarnings, ...floors];
    const core = await this.runner.create(spec, actor);
    for (const warning of smallWaves) this.deps.logger.warn({ deploymentId: spec.id, warning }, 'deployment created with a small canary wave');
    for (const warning of other) this.deps.logger.warn({ deploymentId: spec.id, warning }, 'deployment created: read this warning');
    const warnings = [...smallWaves, ...other];
    return { ...deploymentView(core), ...(warnings.length ? { warnings } : {}) };
  }

  async act(deploymentId: string, action: OperatorAction, actor: string): Promise<DeploymentView> {
    await this.deps.leadership?.requireLeader();
    const core = await this.runner.act(deploymentId, action, actor);
    return deploymentView(core);
  }

  // ---- device traffic -----------------------------------------------------------------------

  /** Feeds a hello to the engine (not a ghost's: it is in no wave). */
  hello(m: HelloMessage): void {
    if (this.following || !this.deps.registry.isTracked(m.deviceId)) return;
    this.runner.onHello(m);
  }

  /**
   * Feeds a status to the engine with the model the registry knows the device as (the engine counts
   * it only for an update the device was offered). The runner queues it per deployment and persists it
   * before any effect; the coordinator has already stored it in the status inbox, which is replayed on
   * start. A ghost's status is an anomaly, never an input.
   */
  status(m: StatusMessage): Promise<void> {
    this.feedStatus(m);
    return this.noteRefusal(m);
  }

  /**
   * A device refused a signed manifest or command as stale, replayed, unbound or below its floor:
   * counted by reason (`device.refusals.<reason>` in GET /v1/metrics) and logged with the device and
   * the deployment it came under. Under a deployment this coordinator never created, someone else
   * offered it (a replay on the broker).
   */
  private async noteRefusal(m: StatusMessage): Promise<void> {
    if (m.reason !== 'stale-manifest' && m.reason !== 'unbound-rollback' && m.reason !== 'below-security-floor' && m.reason !== 'replayed') return;
    // Only for the log and a counter: a store that cannot answer must not hold the status's PUBACK.
    const known = this.runner.getLive(m.deploymentId) !== undefined || (await this.repo.load(m.deploymentId).catch(() => undefined)) !== undefined;
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
    if (this.following) return;
    const registry = this.deps.registry;
    if (!registry.isTracked(m.deviceId)) {
      const known = registry.get(m.deviceId) !== undefined;
      this.deps.anomalies?.record(m.deviceId, 'unoffered-status', `status ${m.state} for ${m.deploymentId} ignored: ${known ? 'a ghost (never provisioned) is in no wave' : 'unknown device'}`);
      return;
    }
    this.runner.onStatus(m, registry.hardwareModelOf(m.deviceId));
  }

  presence(deviceId: string, online: boolean): void {
    if (this.following) return;
    this.runner.onPresence(deviceId, online);
  }

  // ---- queries ------------------------------------------------------------------------------

  async view(deploymentId: string): Promise<DeploymentView | undefined> {
    const state = await this.runner.get(deploymentId);
    return state ? deploymentView(state.core, await this.repo.decisions(deploymentId)) : undefined;
  }

  async list(limit = 100): Promise<DeploymentView[]> {
    const live = new Map(this.runner.liveDeployments().map((c) => [c.spec.id, c]));
    return (await this.repo.list({ limit })).map((c) => deploymentView(live.get(c.spec.id) ?? c));
  }

  decisions(deploymentId: string): Promise<DecisionRecord[]> {
    return this.repo.decisions(deploymentId);
  }

  async devices(deploymentId: string, wave?: number): Promise<DeviceProgress[]> {
    const state = await this.runner.get(deploymentId);
    if (!state) return [];
    const all = allDevices(state);
    return wave === undefined ? all : all.filter((d) => d.wave === wave);
  }

  /** The canary snapshot a decision judged, by the decision's inputs digest. */
  snapshot(digest: string): Promise<CanarySnapshot | undefined> {
    return this.repo.snapshot(digest);
  }

  /** One device's progress in every deployment that tracked it, newest first. */
  deviceHistory(deviceId: string): Promise<(DeviceProgress & { deploymentId: string })[]> {
    return this.repo.deviceHistory(deviceId);
  }

  /** Resolves when every queued engine event and gate has been handled (tests, the simulator). */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  /** Deployments held in memory (active, and the newest completed one per model). */
  liveDeployments(): DeploymentCore[] {
    return this.runner.liveDeployments();
  }

  /** The engine runner's own counters (steps, gate runs, effect failures, statuses for unknown deployments). */
  engineCounters(): EngineRunner['counters'] {
    return this.runner.counters;
  }

  summary(): Record<string, unknown> {
    const byPhase: Record<string, number> = {};
    for (const c of this.runner.liveDeployments()) byPhase[c.phase] = (byPhase[c.phase] ?? 0) + 1;
    return { live: byPhase, runner: { ...this.runner.counters } };
  }
}
