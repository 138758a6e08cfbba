/**
 * The engine runner: the thin shell around the pure engine. It holds the live deployments, feeds them
 * events (device status/hello/presence, timers from the injected Clock, operator actions, gate
 * results), persists every new state through the repository BEFORE carrying out its effects, runs the
 * gate's analyzers and records their decisions. On start it loads every live deployment from the
 * repository and reconciles the outside world with it, so a restart resumes each where it stood.
 *
 * Events for one deployment are processed strictly in order (one queue per deployment). Device events
 * that arrive while the queue is busy are stepped together when their turn comes and persisted in one
 * transaction, before any of their effects: a wave's worth of statuses arriving at once cost a
 * SQLite commit each (the whole deployment row rewritten every time), which held the event loop the
 * devices' own work needed. Each status is durable in the status inbox before it is acknowledged.
 */
import type { Logger } from 'pino';
import type { CanarySnapshot } from '@fleet/protocol/canary';
import type { Clock, TimerHandle } from '@fleet/protocol/clock';
import { FleetError, errorMessage } from '@fleet/protocol/errors';
import type { DeviceMessage, HelloMessage, StatusMessage } from '@fleet/protocol/messages';
import type { Envelope } from '@fleet/protocol/signed';
import type { GateAnalyzer } from '../gate/analyzer.js';
import { combineOutcomes } from '../gate/combine.js';
import type { DecisionRecord } from '../gate/decision.js';
import { hardGatesAnalyzer } from '../gate/hard-gates.js';
import { inputsDigest, runGate } from '../gate/run-gate.js';
import { createDeployment, gatePolicyFor, nextWakeAt, reconcile, step } from './engine.js';
import { snapshotFromProgress } from './snapshot.js';
import {
  ACTIVE_PHASES,
  type DeploymentCore,
  type DeploymentRepository,
  type DeploymentSpec,
  type DeploymentState,
  type EffectSink,
  type EngineEffect,
  type EngineEvent,
  type OperatorAction,
  type StepResult,
  type WaveDirectory,
} from './types.js';
import { definedProps } from '@fleet/firmware/defined-props';

/** Longest single timer: far wake-ups (next week's window) are re-armed in steps of a day. */
const MAX_TIMER_MS = 24 * 3600_000;
/** After an effect failed (broker down), the deployment is reconciled again after this long. */
export const EFFECT_RETRY_MS = 5_000;

export class DeploymentNotFoundError extends FleetError {
  constructor(id: string) {
    super('not-found', `no deployment ${JSON.stringify(id)}; list them with \`fleet deploy list\``);
  }
}

/** An operator action that does not apply in the deployment's state; `code` says why. */
export class DeploymentActionError extends FleetError {}

/** A second active deployment for the same hardware model (they would share rollout topics). */
export class DeploymentConflictError extends FleetError {
  constructor(message: string) {
    super('conflict', message);
  }
}

export interface EngineRunnerOptions {
  repo: DeploymentRepository;
  sink: EffectSink;
  clock: Clock;
  directory: WaveDirectory;
  /** Analyzers for a wave's gate; default: the hard gates alone. */
  analyzersFor?: (spec: DeploymentSpec, wave: number) => readonly GateAnalyzer[];
  /** The canary snapshot for a gate (telemetry, control cohort); default: snapshotFromProgress. */
  snapshotFor?: (state: DeploymentState, wave: number, now: number) => CanarySnapshot | Promise<CanarySnapshot>;
  /**
   * Stores a gate's snapshot under its inputs digest before the gate judges it, so that a decision's
   * digest always finds its snapshot. The runner takes the digest once for both.
   */
  keepSnapshot?: (snapshot: { deploymentId: string; wave: number; takenAt: number; digest: string; snapshot: CanarySnapshot }) => Promise<void>;
  logger?: Logger;
  /** Per-analyzer time limit (default 60 s). */
  analyzerTimeoutMs?: number;
  /**
   * Signs the deployment's current manifest afresh (`renew-manifest`; manifest-renewal.ts). Without
   * it every renewal fails, is recorded, and the current manifest lives out its lifetime.
   */
  renewManifest?: (core: DeploymentCore) => Envelope | Promise<Envelope>;
  /** Told of every new state once it is stored (live views). */
  onCommitted?: (core: DeploymentCore) => void;
}

type Counter = 'statusUnknownDeployment' | 'effectFailures' | 'gateRuns' | 'steps';

export class EngineRunner {
  private readonly live = new Map<string, DeploymentState>();
  private readonly queues = new Map<string, Promise<void>>();
  /** Device events waiting in a deployment's queue as one job, while it can still take more. */
  private readonly batches = new Map<string, EngineEvent[]>();
  private readonly timers = new Map<string, { at: number; handle: TimerHandle }>();
  private readonly retryTimers = new Map<string, TimerHandle>();
  private readonly inflight = new Set<Promise<unknown>>();
  /** Creations, one after another (create). */
  private creating: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private started = false;
  readonly counters: Record<Counter, number> = { statusUnknownDeployment: 0, effectFailures: 0, gateRuns: 0, steps: 0 };

  constructor(private readonly o: EngineRunnerOptions) {}

  /** Creates and starts a runner (loads and reconciles every live deployment). */
  static async create(options: EngineRunnerOptions): Promise<EngineRunner> {
    const runner = new EngineRunner(options);
    await runner.start();
    return runner;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const now = this.o.clock.now();
    for (const state of await this.o.repo.loadLive()) this.live.set(state.core.spec.id, state);
    this.retireSuperseded();
    for (const [id, state] of this.live) {
      this.log('info', { deploymentId: id, phase: state.core.phase, wave: state.core.current }, 'resuming deployment');
      const effects = reconcile(state, now);
      void this.enqueue(id, async () => {
        await this.carryOut(id, effects);
        // Deadlines that passed while the coordinator was down are acted on now.
        await this.apply(id, { type: 'tick' });
      });
    }
    await this.idle();
  }

  /** Stops timers and waits for queued work; safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers.values()) this.o.clock.clearTimeout(t.handle);
    for (const t of this.retryTimers.values()) this.o.clock.clearTimeout(t);
    this.timers.clear();
    this.retryTimers.clear();
    await Promise.allSettled([...this.queues.values(), ...this.inflight]);
  }

  /** Resolves when every queued event and running gate has finished (tests, shutdown). */
  async idle(): Promise<void> {
    for (let i = 0; i < 1000; i++) {
      const pending = [...this.queues.values(), ...this.inflight];
      if (pending.length === 0) return;
      await Promise.allSettled(pending);
    }
  }

  // ----- queries ---------------------------------------------------------------------------

  /** A deployment: the live working copy, or else as stored. */
  async get(deploymentId: string): Promise<DeploymentState | undefined> {
    return this.live.get(deploymentId) ?? (await this.o.repo.load(deploymentId));
  }

  /** The live working copy only (no store read): active deployments and the newest finished per model. */
  getLive(deploymentId: string): DeploymentState | undefined {
    return this.live.get(deploymentId);
  }

  /** Deployments held in memory (active, and the newest completed one per model). */
  liveDeployments(): DeploymentCore[] {
    return [...this.live.values()].map((s) => s.core);
  }

  // ----- commands --------------------------------------------------------------------------

  /**
   * Creates a deployment from a validated spec. Refuses a second active deployment for a hardware
   * model (they would share the model's rollout topics) and a duplicate id.
   */
  async create(spec: DeploymentSpec, actor: string): Promise<DeploymentCore> {
    // One creation at a time: the checks below read the store, and two creations for one model (or
    // one id) must not both pass them.
    const created = this.creating.then(() => this.createNow(spec, actor));
    this.creating = created.catch(() => undefined);
    return created;
  }

  private async createNow(spec: DeploymentSpec, actor: string): Promise<DeploymentCore> {
    if (this.stopped) throw new FleetError('stopped', 'the coordinator is shutting down; retry when it is back');
    if (this.live.has(spec.id) || (await this.o.repo.load(spec.id))) {
      throw new DeploymentConflictError(`a deployment with id ${spec.id} already exists; choose another id`);
    }
    for (const s of this.live.values()) {
      if (!ACTIVE_PHASES.includes(s.core.phase)) continue;
      const shared = s.core.spec.target.hardwareModels.filter((m) => spec.target.hardwareModels.includes(m));
      if (shared.length) {
        throw new DeploymentConflictError(
          `deployment ${s.core.spec.id} is still ${s.core.phase} for ${shared.join(', ')}; wait for it to finish, or abort it first`,
        );
      }
    }
    const id = spec.id;
    let out: DeploymentCore | undefined;
    let failure: unknown;
    await this.enqueue(id, async () => {
      const result = createDeployment(spec, this.o.clock.now(), actor);
      try {
        await this.commit(id, undefined, result);
      } catch (err) {
        failure = err;
        return;
      }
      out = result.state.core;
    });
    if (!out) throw failure instanceof Error ? failure : new FleetError('store', `deployment ${id} was not stored; retry`);
    this.retireSuperseded();
    return out;
  }

  /** Applies an operator action; throws DeploymentActionError (with the engine's code) when refused. */
  async act(deploymentId: string, action: OperatorAction, actor: string): Promise<DeploymentCore> {
    if (!this.live.has(deploymentId)) {
      const stored = await this.o.repo.load(deploymentId);
      if (!stored) throw new DeploymentNotFoundError(deploymentId);
      // A finished deployment (e.g. rolled back with unreachable devices) may still take a rollback.
      if (!this.live.has(deploymentId)) this.live.set(deploymentId, stored);
    }
    let rejected: { code: string; message: string } | undefined;
    await this.enqueue(deploymentId, async () => {
      rejected = await this.apply(deploymentId, { type: 'operator', action, actor });
    });
    if (rejected) throw new DeploymentActionError(rejected.code, rejected.message);
    const after = this.live.get(deploymentId) ?? (await this.o.repo.load(deploymentId));
    if (!after) throw new DeploymentNotFoundError(deploymentId);
    return after.core;
  }

  // ----- device traffic (called by the ingest path after parsing) ---------------------------

  /** Routes a parsed device message; returns the number of deployments it was fed to. */
  handleDeviceMessage(message: DeviceMessage): number {
    switch (message.kind) {
      case 'status':
        return this.onStatus(message);
      case 'hello':
        return this.onHello(message);
      case 'presence':
        return this.onPresence(message.deviceId, message.state === 'online');
      case 'telemetry':
        return 0;
    }
  }

  /**
   * `hardwareModel`: the model the registry knows the device as, for the engine's "offered" check.
   * A status for a deployment not in memory waits in the deployment's queue for the store's answer:
   * a late report for a finished deployment (an unreachable device coming back) is stepped; one for
   * a deployment the store does not know is counted and recorded as an anomaly. Returns 1 when the
   * status was queued (the engine may still drop it), 0 when it was refused at once.
   */
  onStatus(status: StatusMessage, hardwareModel?: string): number {
    const id = status.deploymentId;
    if (!this.live.has(id)) {
      if (this.stopped) return 0;
      void this.enqueue(id, async () => {
        if (this.live.has(id)) return;
        const stored = await this.o.repo.load(id);
        if (stored) this.live.set(id, stored);
        else this.unknownDeployment(status);
      });
    }
    this.feed(id, { type: 'device-status', status, ...definedProps({ hardwareModel }) });
    return 1;
  }

  private unknownDeployment(status: StatusMessage): void {
    this.counters.statusUnknownDeployment++;
    const detail = `status ${status.state} for unknown deployment ${status.deploymentId} ignored`;
    if (this.o.sink.anomaly) this.o.sink.anomaly(status.deviceId, 'unoffered-status', detail);
    else this.log('warn', { deviceId: status.deviceId, deploymentId: status.deploymentId }, 'status for an unknown deployment dropped');
  }

  onHello(hello: HelloMessage): number {
    let n = 0;
    for (const s of this.live.values()) {
      const mine = hello.update?.deploymentId === s.core.spec.id;
      if (mine || s.core.spec.target.hardwareModels.includes(hello.hardwareModel)) {
        this.feed(s.core.spec.id, { type: 'device-hello', hello });
        n++;
      }
    }
    return n;
  }

  onPresence(deviceId: string, online: boolean): number {
    for (const id of this.live.keys()) this.feed(id, { type: 'device-presence', deviceId, online });
    return this.live.size;
  }

  // ----- internals -------------------------------------------------------------------------

  /**
   * Queues a device or internal event. It joins the batch still waiting at the end of the queue, if
   * any: nothing else was queued after that batch, so the order of events is unchanged. A batch waits
   * for the end of the event-loop turn it was started in, so that a free queue still gathers the
   * turn's statuses into one save (each status's PUBACK waits for the status inbox, not for this).
   */
  private feed(id: string, event: EngineEvent): void {
    const waiting = this.batches.get(id);
    if (waiting) {
      waiting.push(event);
      return;
    }
    const batch = [event];
    void this.enqueue(id, async () => {
      // One turn of the event loop first: the statuses of the devices heard in the same turn join.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.batches.get(id) === batch) this.batches.delete(id);
      await this.applyAll(id, batch);
    });
    this.batches.set(id, batch);
  }

  private enqueue(id: string, job: () => Promise<void>): Promise<void> {
    // Anything queued closes the waiting batch: later events must not overtake this job.
    this.batches.delete(id);
    const prev = this.queues.get(id) ?? Promise.resolve();
    const next = prev.then(job).catch((err: unknown) => {
      this.log('error', { deploymentId: id, err }, 'deployment event failed');
    });
    this.queues.set(id, next);
    void next.finally(() => {
      if (this.queues.get(id) === next) this.queues.delete(id);
    });
    return next;
  }

  /** Steps one event, persists, carries out the effects. Returns the rejection of an operator action. */
  private async apply(id: string, event: EngineEvent, now = this.o.clock.now()): Promise<{ code: string; message: string } | undefined> {
    const state = this.live.get(id);
    if (!state) return { code: 'not-found', message: `no live deployment ${id}` };
    const result = step(state, event, now);
    this.counters.steps++;
    if (result.rejected) return result.rejected;
    if (result.state === state) {
      // Nothing changed; what is left to do is recording anomalies.
      if (result.effects.length) await this.carryOut(id, result.effects);
      return undefined;
    }
    await this.commit(id, state, result);
    return undefined;
  }

  /**
   * Steps a batch of events in order, persists the outcome once (the last core, each changed device's
   * last progress, every decision), then carries out all their effects in order.
   */
  private async applyAll(id: string, events: readonly EngineEvent[]): Promise<void> {
    if (events.length === 1) {
      await this.apply(id, events[0]!);
      return;
    }
    const before = this.live.get(id);
    // Not in memory: statuses for a deployment the store does not know (counted when it said so).
    if (!before) return;
    let state = before;
    const devices = new Map<string, StepResult['changedDevices'][number]>();
    const effects: EngineEffect[] = [];
    for (const event of events) {
      const result = step(state, event, this.o.clock.now());
      this.counters.steps++;
      if (result.rejected) continue;
      for (const d of result.changedDevices) devices.set(d.deviceId, d);
      effects.push(...result.effects);
      state = result.state;
    }
    if (state === before) {
      if (effects.length) await this.carryOut(id, effects);
      return;
    }
    await this.commit(id, before, { state, effects, changedDevices: [...devices.values()] });
  }

  private async commit(id: string, before: DeploymentState | undefined, result: StepResult): Promise<void> {
    const decisions = result.effects.flatMap((e) => (e.type === 'record-decision' ? [e.decision] : []));
    // Persist first: if we crash after this, reconcile() on restart redoes the effects.
    await this.o.repo.save({ core: result.state.core, devices: result.changedDevices, decisions });
    this.live.set(id, result.state);
    try {
      this.o.onCommitted?.(result.state.core);
    } catch (err) {
      // A listener (a dashboard feed) never stops a rollout.
      this.log('error', { deploymentId: id, err }, 'deployment change listener failed');
    }
    if (before && before.core.phase !== result.state.core.phase) {
      this.log('info', { deploymentId: id, wave: result.state.core.current, from: before.core.phase, to: result.state.core.phase }, 'deployment phase changed');
    }
    await this.carryOut(id, result.effects);
  }

  private async carryOut(id: string, effects: readonly EngineEffect[]): Promise<void> {
    let failed = false;
    for (const e of effects) {
      try {
        await this.effect(id, e);
      } catch (err) {
        failed = true;
        this.counters.effectFailures++;
        this.log('error', { deploymentId: id, effect: e.type, err }, 'effect failed; will reconcile');
      }
    }
    if (failed) this.retryLater(id);
  }

  private async effect(id: string, e: EngineEffect): Promise<void> {
    switch (e.type) {
      case 'publish-rollout':
        return this.o.sink.publishRollout(e.hardwareModel, e.buckets, e.message);
      case 'clear-rollout':
        return this.o.sink.clearRollout(e.hardwareModel, e.buckets, id);
      case 'send-command':
        return this.o.sink.sendCommand(e.command);
      case 'audit':
        return this.o.sink.audit(e.entry);
      case 'device-anomaly':
        this.o.sink.anomaly?.(e.deviceId, e.kind, e.detail);
        return;
      case 'record-decision':
        // Persisted with the state; listeners hear of it now.
        this.o.sink.decision?.(e.decision);
        return;
      case 'schedule-wake':
        this.arm(id, e.at);
        return;
      case 'request-members': {
        const state = this.live.get(id);
        // Stopping: no new work (an empty wave passes at once, so waves could chain on after stop());
        // reconcile() asks again on the next start.
        if (!state || this.stopped) return;
        const members = await this.o.directory.members(state.core.spec, e.buckets);
        this.feed(id, { type: 'wave-members', wave: e.wave, members });
        return;
      }
      case 'run-gate':
        this.track(this.gate(id, e.wave, e.attempt));
        return;
      case 'renew-manifest':
        return this.renew(id);
    }
  }

  /**
   * Signs the renewed manifest and steps its answer at once, inside this deployment's queue: no other
   * event sees the deployment between the request and the answer, so it is asked for once.
   */
  private async renew(id: string): Promise<void> {
    const state = this.live.get(id);
    if (!state || this.stopped) return;
    let answer: EngineEvent;
    try {
      if (!this.o.renewManifest) throw new FleetError('not-supported', 'this engine runner has no manifest signer');
      answer = { type: 'manifest-renewed', manifest: await this.o.renewManifest(state.core) };
    } catch (err) {
      this.log('error', { deploymentId: id, err }, 'renewing the deployment manifest failed; the current one stays until the retry');
      answer = { type: 'manifest-renewal-failed', error: errorMessage(err) };
    }
    await this.apply(id, answer);
  }

  private track(p: Promise<unknown>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  private async gate(id: string, wave: number, attempt: number): Promise<void> {
    const state = this.live.get(id);
    if (!state || this.stopped) return;
    this.counters.gateRuns++;
    const spec = state.core.spec;
    const policy = gatePolicyFor(spec, wave);
    const decisionId = `${id}.w${wave}.gate.a${attempt}`;
    let decision: DecisionRecord;
    try {
      const takenAt = this.o.clock.now();
      const snapshot = await (this.o.snapshotFor ?? snapshotFromProgress)(state, wave, takenAt);
      // One canonical JSON of the snapshot (a thousand devices' worth): its digest files and stamps it.
      const digest = inputsDigest(snapshot);
      await this.o.keepSnapshot?.({ deploymentId: id, wave, takenAt, digest, snapshot });
      const analyzers = this.o.analyzersFor?.(spec, wave) ?? [hardGatesAnalyzer];
      decision = await runGate({
        snapshot,
        inputsDigest: digest,
        analyzers,
        policy,
        clock: this.o.clock,
        id: decisionId,
        attempt,
        ...definedProps({ timeoutMs: this.o.analyzerTimeoutMs }),
      });
    } catch (err) {
      // No snapshot, no judgement: recorded as an error, and the gate holds at Monitor.
      const error = { code: err instanceof FleetError ? err.code : 'snapshot-failed', message: errorMessage(err) };
      const { records, final } = combineOutcomes([{ name: 'snapshot', role: 'hard', outcome: { ok: false, error, latencyMs: 0 } }], policy);
      decision = {
        id: decisionId,
        deploymentId: id,
        wave,
        attempt,
        at: this.o.clock.now(),
        source: 'gate',
        inputsDigest: inputsDigest({ error }),
        policy: { ...policy },
        analyzers: records,
        final,
      };
    }
    if (this.stopped) return;
    this.log('info', { deploymentId: id, wave, attempt, verdict: decision.final.recommendation, rule: decision.final.rule }, 'gate decided');
    this.feed(id, { type: 'gate-result', wave, attempt, decision });
  }

  /** One timer per deployment, at the engine's next wake-up. */
  private arm(id: string, at: number): void {
    if (this.stopped) return;
    const existing = this.timers.get(id);
    if (existing?.at === at) return;
    if (existing) this.o.clock.clearTimeout(existing.handle);
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - this.o.clock.now()));
    const handle = this.o.clock.setTimeout(() => {
      this.timers.delete(id);
      void this.enqueue(id, async () => {
        const now = this.o.clock.now();
        await this.apply(id, { type: 'tick' }, now);
        this.rearm(id, now);
      });
    }, delay);
    this.timers.set(id, { at, handle });
  }

  /**
   * A tick changes nothing when it comes before the engine's time (a capped far wake-up, or a timer
   * that fired early: an event loop's cached time, a wall clock that moved, a scaled clock's rounding),
   * so the engine schedules nothing new; the wake-up it still needs is armed again from its state.
   */
  private rearm(id: string, now: number): void {
    const state = this.live.get(id);
    if (!state || this.timers.has(id)) return;
    const wake = nextWakeAt(state, now);
    if (wake === undefined) return;
    if (wake <= now) {
      // A due wake-up the tick did not act on would spin; the engine's invariants say it cannot happen.
      this.log('error', { deploymentId: id, phase: state.core.phase, wake }, 'engine wake-up is due but the tick changed nothing; retrying later');
      this.arm(id, now + EFFECT_RETRY_MS);
      return;
    }
    this.arm(id, wake);
  }

  private retryLater(id: string): void {
    if (this.stopped || this.retryTimers.has(id)) return;
    const handle = this.o.clock.setTimeout(() => {
      this.retryTimers.delete(id);
      const state = this.live.get(id);
      if (!state) return;
      void this.enqueue(id, () => this.carryOut(id, reconcile(this.live.get(id) ?? state, this.o.clock.now())));
    }, EFFECT_RETRY_MS);
    this.retryTimers.set(id, handle);
  }

  /** Keeps only the newest completed deployment per model in memory; finished ones leave. */
  private retireSuperseded(): void {
    const newest = new Map<string, number>();
    for (const s of this.live.values()) {
      for (const m of s.core.spec.target.hardwareModels) newest.set(m, Math.max(newest.get(m) ?? 0, s.core.spec.createdAt));
    }
    for (const [id, s] of this.live) {
      const finished = s.core.phase === 'completed' || s.core.phase === 'aborted' || s.core.phase === 'rolled-back';
      if (finished && s.core.spec.target.hardwareModels.every((m) => (newest.get(m) ?? 0) > s.core.spec.createdAt)) {
        this.live.delete(id);
        const t = this.timers.get(id);
        if (t) this.o.clock.clearTimeout(t.handle);
        this.timers.delete(id);
      }
    }
  }

  private log(level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, msg: string): void {
    this.o.logger?.[level](fields, msg);
  }
}
