/**
 * The agent: wires the pure update machine to MQTT, the downloader, the slot backend, health checks
 * and telemetry. I/O shell.
 *
 * Every event goes through one serial queue: `step()` decides, the new state is saved atomically, and
 * only then are the effects carried out. Long effects (download, verify, slot write, health checks)
 * run in the background and come back as events, so an abort or a command is handled while they run.
 *
 * Reboots: the `reboot` effect calls `slots.reboot()` and then `options.onReboot`. On a device the
 * system goes down. In tests and the simulator the harness stops this Agent, lets the simulated
 * bootloader power on, and creates a new Agent on the same state store (see simulated-device.ts);
 * the new agent's `boot` event resumes from the recorded stage.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { systemClock, type Clock, type TimerHandle } from '@fleet/protocol/clock';
import { deviceSubscriptions, deviceTopic, rolloutTopic } from '@fleet/protocol/topics';
import { bucketOf } from '@fleet/protocol/bucket';
import { evaluateDeviceFlag } from '@fleet/protocol/flag-bucketing';
import type { FlagsMessage, RolloutMessage } from '@fleet/protocol/messages';
import { encodeMessage } from '@fleet/protocol/parse';
import { verifyCommand, verifyManifest } from '@fleet/firmware/manifest';
import { loadTrustStore, type TrustStore } from '@fleet/firmware/trust-store';
import type { SlotBackend } from './slots/slot-backend.js';
import { createSlotBackend } from './slots/create-slot-backend.js';
import type { AgentConfig } from './config.js';
import { beginRun, currentVersion, isBusy, type AgentState, type Artifact } from './agent-state.js';
import { raiseToDurable, rebuildState, reserveSeq } from './durable-record.js';
import { DurableWriter } from './durable-writer.js';
import { step, type MachineConfig, type UpdateEffect, type UpdateEvent } from './update-machine.js';
import { machineConfigOf, type AgentEvent, type AgentOptions } from './agent-options.js';

export type { AgentEvent, AgentOptions } from './agent-options.js';
import { FileStateStore, type StateStore } from './state-store.js';
import type { Downloader } from './downloader.js';
import { CommandHealthCheckRunner, type HealthCheckRunner } from './health-checks.js';
import { MqttSession } from './mqtt-session.js';
import type { TelemetryCollector } from './telemetry/collector.js';
import { downloadTask, trialHealthTask, verifyTask, writeSlotTask } from './agent-tasks.js';
import { StreamedDownloads } from './streamed-downloads.js';
import { classifyInbound } from './agent-inbox.js';
import { brokerClientOptions, defaultDownloader, defaultTelemetry, systemBootId } from './agent-defaults.js';
import { helloMessage, presenceMessage, statusMessage, telemetryMessage, type DeviceIdentity } from './agent-messages.js';
import { errorMessage } from '@fleet/protocol/errors';
import { definedProps } from '@fleet/firmware/defined-props';
import { packageVersion } from '@fleet/runtime/package-version';

/** Sent in every hello as `agentVersion`: the version in package.json. */
export const AGENT_VERSION = packageVersion(import.meta.url);
/** Telemetry sequence numbers reserved per state write (so seq stays monotonic across restarts). */
const TELEMETRY_SEQ_BLOCK = 10_000;
/** Download progress is logged at most this often (each is still reported to the coordinator). */
const PROGRESS_LOG_INTERVAL_MS = 10_000;

export class Agent {
  private readonly cfg: AgentConfig;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly machine: MachineConfig;
  private readonly identity: DeviceIdentity;
  private st: AgentState;
  private session: MqttSession | null = null;
  private queue: Promise<void> = Promise.resolve();
  private started = false;
  private stopped = false;
  /** After the reboot effect: the system is going down; nothing more is done. */
  private halted = false;
  private download: { deploymentId: string; controller: AbortController } | null = null;
  /** Downloads this process hashed whole while streaming: their verify pass is not repeated. */
  private readonly streamed = new StreamedDownloads();
  private retryTimer: TimerHandle | null = null;
  private trialTimer: TimerHandle | null = null;
  private trialAbort: AbortController | null = null;
  private telemetryTimer: TimerHandle | null = null;
  private lastRollout: RolloutMessage | null = null;
  private telemetrySeq: number;
  private flagsSnapshot: FlagsMessage | null = null;
  private lastReportLog: { deploymentId: string; state: string; at: number } | null = null;
  private readonly startedAt: number;
  /** Inputs from outside that failed to parse or verify (for tests and logs). */
  readonly counts = { badMessages: 0, acceptedCommands: 0, rejectedCommands: 0, rejectedManifests: 0 };

  private constructor(
    private readonly options: AgentOptions,
    private readonly store: StateStore,
    private readonly slots: SlotBackend,
    private readonly trust: TrustStore,
    private readonly downloader: Downloader,
    private readonly health: HealthCheckRunner,
    private readonly telemetry: TelemetryCollector,
    logger: Logger,
    state: AgentState,
    private readonly bootCount: number,
    /** Effects of the boot decision, carried out by start(). */
    private pendingBootEffects: UpdateEffect[],
    private readonly durable: DurableWriter,
  ) {
    this.cfg = options.config;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.log = logger;
    this.st = state;
    this.telemetrySeq = state.telemetrySeqReserved - TELEMETRY_SEQ_BLOCK;
    this.savedCounters = state.counters;
    this.savedSeqReserved = state.telemetrySeqReserved;
    this.startedAt = this.clock.now();
    this.identity = { deviceId: this.cfg.deviceId, hardwareModel: this.cfg.hardwareModel, bucket: bucketOf(this.cfg.deviceId), tags: this.cfg.tags, agentVersion: AGENT_VERSION };
    this.machine = machineConfigOf(this.cfg);
  }

  /**
   * Loads (or initialises) the state, opens the slot backend and reads the boot, counts restarts and
   * crashes, and saves. Does not connect; call start().
   */
  static async create(options: AgentOptions): Promise<Agent> {
    const cfg = options.config;
    const root = options.logger ?? pino({ level: cfg.logLevel });
    const logger = root.child({ module: 'agent', deviceId: cfg.deviceId });
    const store = options.store ?? new FileStateStore(join(cfg.dataDir, 'state.json'));
    const slots = options.slots ?? (await createSlotBackend(cfg.slots, root));
    const trust = options.trust ?? (await loadTrustStore(cfg.trustStoreDir));
    const boot = await slots.bootState();
    const bootId = (await options.bootId?.()) ?? boot.bootId ?? (cfg.slots.kind === 'file' || cfg.slots.kind === 'memory' ? undefined : await systemBootId()) ?? randomUUID();
    const loaded = await store.load();
    // What must never go backwards comes from the durable record's copies as well as the state file.
    const durable = new DurableWriter(store, slots, logger);
    const record = await durable.load();
    let state: AgentState;
    if (loaded) {
      state = raiseToDurable(loaded, record);
    } else {
      const rebuilt = rebuildState({ firmwareVersion: cfg.firmwareVersion, securityFloor: cfg.securityFloor }, boot.booted, record);
      state = rebuilt.state;
      if (record) {
        logger.warn(
          { booted: boot.booted, slotVersions: state.slotVersions, securityFloor: state.securityFloor, seq: state.seq, manifestVersion: state.manifestVersion, notes: rebuilt.notes },
          'no state file: rebuilt the state from the durable record and the bootloader',
        );
      }
    }
    // Read the broker's files (password, CA, client certificate) before this run is recorded as
    // running: an unreadable one is a configuration error, not a crash to count at the next start.
    await brokerClientOptions(cfg);
    const prepared = beginRun(state, bootId, loaded !== null, TELEMETRY_SEQ_BLOCK);
    // Resolve the boot before anything else sees the state: the machine re-derives the stage's effects.
    const r = step(prepared, { type: 'boot', boot: { booted: boot.booted, primary: boot.primary, trial: boot.trial, bootId } }, (options.clock ?? systemClock).now(), machineConfigOf(cfg));
    const saved = reserveSeq(r.state);
    await store.save(saved);
    await durable.write(saved);
    const telemetry = options.telemetry ?? defaultTelemetry(cfg, () => (options.clock ?? systemClock).now(), logger);
    const downloader = options.downloader ?? (await defaultDownloader(cfg));
    const health = options.healthChecks ?? new CommandHealthCheckRunner();
    return new Agent({ ...options, logger: root }, store, slots, trust, downloader, health, telemetry, logger, saved, boot.bootCount ?? prepared.counters.reboots, r.effects, durable);
  }

  /** The current persisted state (a snapshot; do not mutate). */
  get state(): AgentState {
    return this.st;
  }

  get connected(): boolean {
    return this.session?.connected ?? false;
  }

  /** The latest feature flag snapshot from the coordinator, if any. */
  get flags(): FlagsMessage | null {
    return this.flagsSnapshot;
  }

  /**
   * A device-side feature flag from the latest retained snapshot, evaluated for this device exactly as
   * the coordinator does (Unleash-style bucketing on the device id). Off when unknown.
   */
  flag(name: string): { enabled: boolean; variant?: string } {
    return evaluateDeviceFlag(name, this.flagsSnapshot?.flags[name], this.cfg.deviceId);
  }

  get deviceId(): string {
    return this.cfg.deviceId;
  }

  /** Connects to the broker and carries out the effects of the boot. */
  async start(): Promise<void> {
    if (this.started || this.stopped) return;
    this.started = true;
    const cfg = this.cfg;
    const bucket = this.identity.bucket;
    this.session = new MqttSession({
      clientId: cfg.deviceId,
      clientOptions: await brokerClientOptions(cfg),
      will: { topic: deviceTopic(cfg.deviceId, 'presence'), payload: encodeMessage(presenceMessage(cfg.deviceId, false)), retain: cfg.broker.retainPresence },
      subscriptions: deviceSubscriptions(cfg.deviceId, cfg.hardwareModel, bucket),
      reconnectMinMs: cfg.broker.reconnectMin,
      reconnectMaxMs: cfg.broker.reconnectMax,
      queueLimit: cfg.offlineQueueLimit,
      clock: this.clock,
      random: this.random,
      // From the root logger: a child of `this.log` would repeat the `module` key.
      logger: (this.options.logger ?? this.log).child({ module: 'mqtt', deviceId: cfg.deviceId }),
      ...definedProps({ connect: this.options.connect }),
      onConnect: () => this.onConnect(),
      onMessage: (topic, payload) => this.onMessage(topic, payload),
    });
    this.session.start();
    this.options.onStateChange?.(this.st);
    const effects = this.pendingBootEffects;
    this.pendingBootEffects = [];
    this.enqueue(() => this.runEffects(effects));
    if (this.options.telemetryTimer !== false) this.scheduleTelemetry();
  }

  /** Stops cleanly: timers, downloads and health checks cancelled, presence offline sent. Safe twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimers();
    await this.queue.catch(() => undefined);
    const session = this.session;
    this.session = null;
    await session?.stop({
      topic: deviceTopic(this.cfg.deviceId, 'presence'),
      payload: encodeMessage(presenceMessage(this.cfg.deviceId, false, this.clock.now())),
      options: { qos: 1, retain: this.cfg.broker.retainPresence },
    });
    if (!this.halted) {
      this.st = { ...this.st, running: false };
      try {
        this.st = await this.save(this.st);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'cannot save state on stop');
      }
    }
  }

  /** Power cut: no clean disconnect (the broker sends the last will), no state write. Safe twice. */
  async kill(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.halted = true;
    this.clearTimers();
    const session = this.session;
    this.session = null;
    await session?.kill();
  }

  private clearTimers(): void {
    for (const t of [this.retryTimer, this.trialTimer, this.telemetryTimer]) if (t) this.clock.clearTimeout(t);
    this.retryTimer = this.trialTimer = this.telemetryTimer = null;
    this.download?.controller.abort();
    this.download = null;
    this.trialAbort?.abort();
    this.trialAbort = null;
  }

  /** Resolves when every event queued so far has been handled (tests). */
  idle(): Promise<void> {
    return this.queue;
  }

  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((err: unknown) => {
      this.st = { ...this.st, counters: { ...this.st.counters, errors: this.st.counters.errors + 1 } };
      this.log.error({ err: errorMessage(err), stack: err instanceof Error ? err.stack : undefined }, 'agent event handling failed');
    });
  }

  /** Queues an event for the update machine. */
  dispatch(event: AgentEvent): void {
    this.enqueue(() => this.handle(event));
  }

  private async handle(event: AgentEvent): Promise<void> {
    if (this.halted || this.stopped) return;
    const now = this.clock.now();
    let ev: UpdateEvent;
    if (event.type === 'rollout-message') {
      const m = event.message;
      if (this.st.handled.includes(m.deploymentId) || this.st.job?.deploymentId === m.deploymentId) return;
      if (isBusy(this.st) && this.st.job && !['downloading', 'verifying', 'installing'].includes(this.st.job.stage)) return;
      const verified = verifyManifest(m.manifest, this.trust, {
        now,
        hardwareModel: this.cfg.hardwareModel,
        currentVersion: currentVersion(this.st) ?? '0.0.0',
        securityFloor: this.st.securityFloor,
        tags: this.cfg.tags,
        clockSkewMs: this.cfg.clockSkew,
        deploymentId: m.deploymentId,
        freshness: { metadataVersion: this.st.manifestVersion, deploymentId: this.st.manifestDeployment },
      });
      if (!verified.ok) {
        this.counts.rejectedManifests++;
        this.log.warn({ deploymentId: m.deploymentId, wave: m.wave, reason: verified.reason, detail: verified.detail, ...claimed(m.manifest.signed, ['metadataVersion', 'firmwareVersion', 'deploymentId']) }, 'manifest refused');
      }
      ev = { type: 'rollout', deploymentId: m.deploymentId, wave: m.wave, verified };
    } else {
      ev = event;
    }
    const r = step(this.st, ev, now, this.machine);
    const floor = this.st.securityFloor;
    if (r.state !== this.st) {
      this.st = await this.save(r.state);
      this.options.onStateChange?.(this.st);
    }
    await this.runEffects(r.effects);
    // The floor rose (a commit): the coordinator learns it from the hello, as it warns operators by it.
    if (this.st.securityFloor !== floor && !this.halted && !this.stopped) this.sendHello();
    // A rollout that arrived while an update was past its reboot gets its turn now.
    const pending = this.lastRollout;
    if (pending && !isBusy(this.st) && !this.st.handled.includes(pending.deploymentId) && this.st.job?.deploymentId !== pending.deploymentId) {
      this.dispatch({ type: 'rollout-message', message: pending });
    }
  }

  private async runEffects(effects: readonly UpdateEffect[]): Promise<void> {
    for (const e of effects) {
      if (this.halted || this.stopped) return;
      try {
        await this.runEffect(e);
      } catch (err) {
        this.bumpErrors();
        this.log.error({ err: errorMessage(err), effect: e.type }, 'effect failed');
        // mark-bad is belt and braces: an uncommitted trial falls back on the reboot by itself.
        if (e.type === 'mark-bad') continue;
        // Any other failed boot-path effect (arm, mark-good) must not be followed by the rest (the reboot).
        const job = this.st.job;
        if (job && (e.type === 'arm-trial' || e.type === 'mark-good')) {
          this.dispatch({ type: 'slot-failed', deploymentId: job.deploymentId, reason: 'internal-error', detail: `${e.type}: ${errorMessage(err)}` });
        }
        return;
      }
    }
  }

  private savedCounters: AgentState['counters'] | null = null;
  private savedSeqReserved = -1;

  /**
   * Saves a state durably and remembers what was saved; returns it as saved (with the next block of
   * status seqs reserved when the last one is used up). The durable record's copies follow whenever
   * what they hold changed, still before any effect of the state.
   */
  private async save(state: AgentState): Promise<AgentState> {
    const saved = reserveSeq(state);
    await this.store.save(saved);
    await this.durable.write(saved);
    this.savedCounters = saved.counters;
    this.savedSeqReserved = saved.telemetrySeqReserved;
    return saved;
  }

  /** Runs fn in the event queue (so it never interleaves with a state transition) and waits for it. */
  private enqueueAndWait(fn: () => Promise<void>): Promise<void> {
    return new Promise((resolve) => {
      this.enqueue(async () => {
        try {
          await fn();
        } finally {
          resolve();
        }
      });
    });
  }

  private bumpErrors(): void {
    this.st = { ...this.st, counters: { ...this.st.counters, errors: this.st.counters.errors + 1 } };
  }

  /**
   * Logs a status report: every change of state, but a download's progress reports (about ten per
   * image) at most once per PROGRESS_LOG_INTERVAL_MS, so a small image logs one line, not eleven.
   */
  private logReport(e: Extract<UpdateEffect, { type: 'report' }>): void {
    const now = this.clock.now();
    const last = this.lastReportLog;
    const progressOnly = e.progress !== undefined && last?.deploymentId === e.deploymentId && last.state === e.state;
    if (progressOnly && now - last.at < PROGRESS_LOG_INTERVAL_MS) return;
    this.lastReportLog = { deploymentId: e.deploymentId, state: e.state, at: now };
    this.log.info({ deploymentId: e.deploymentId, state: e.state, reason: e.reason, seq: e.seq, ...(e.progress ? { progress: e.progress } : {}) }, 'update status');
  }

  private downloadPath(deploymentId: string): string {
    return join(this.cfg.dataDir, 'downloads', `${deploymentId}.img`);
  }

  private async runEffect(e: UpdateEffect): Promise<void> {
    switch (e.type) {
      case 'report':
        this.publish('status', encodeMessage(statusMessage(this.cfg.deviceId, e, this.clock.now())), 1);
        this.logReport(e);
        return;
      case 'download':
        this.startDownload(e.deploymentId, e.artifact);
        return;
      case 'cancel-download':
        if (this.download?.deploymentId === e.deploymentId) {
          this.download.controller.abort();
          this.download = null;
        }
        if (this.retryTimer) this.clock.clearTimeout(this.retryTimer);
        this.retryTimer = null;
        return;
      case 'schedule-retry': {
        if (this.retryTimer) this.clock.clearTimeout(this.retryTimer);
        const delay = Math.max(0, e.at - this.clock.now());
        // Up to +25% jitter so devices that failed together do not retry together.
        const jittered = Math.round(delay * (1 + 0.25 * this.random()));
        this.retryTimer = this.clock.setTimeout(() => {
          this.retryTimer = null;
          this.dispatch({ type: 'retry-due', deploymentId: e.deploymentId });
        }, jittered);
        return;
      }
      case 'verify':
        this.later(verifyTask(this.downloader, e.deploymentId, e.artifact, this.downloadPath(e.deploymentId), this.streamed));
        return;
      case 'discard-download':
        this.streamed.forget(this.downloadPath(e.deploymentId));
        await this.downloader.discard(this.downloadPath(e.deploymentId)).catch(() => undefined);
        return;
      case 'write-slot':
        this.later(writeSlotTask(this.slots, e.deploymentId, e.artifact, this.downloadPath(e.deploymentId)));
        return;
      case 'arm-trial':
        await this.slots.armTrial();
        return;
      case 'reboot':
        await this.reboot();
        return;
      case 'start-trial':
        this.startTrial(e.deploymentId, e.deadlineAt);
        return;
      case 'stop-trial':
        if (this.trialTimer) this.clock.clearTimeout(this.trialTimer);
        this.trialTimer = null;
        this.trialAbort?.abort();
        this.trialAbort = null;
        return;
      case 'mark-good':
        await this.slots.markGood();
        this.dispatch({ type: 'marked-good', deploymentId: e.deploymentId });
        return;
      case 'mark-bad':
        await this.slots.markBad();
        return;
      case 'report-now':
        this.sendHello();
        // Not awaited: sendTelemetry itself waits for this queue to persist its counters.
        this.sendTelemetry().catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'telemetry failed'));
        return;
      case 'log':
        this.log[e.level](e.fields ?? {}, e.msg);
        return;
    }
  }

  /** Dispatches the event a background task ends with, unless the agent stopped meanwhile. */
  private later(task: Promise<UpdateEvent | null>): void {
    void task.then((event) => {
      if (event && !this.stopped && !this.halted) this.dispatch(event);
    });
  }

  private startDownload(deploymentId: string, artifact: Artifact): void {
    this.download?.controller.abort();
    const controller = new AbortController();
    this.download = { deploymentId, controller };
    const dest = this.downloadPath(deploymentId);
    this.streamed.forget(dest);
    this.later(
      downloadTask(this.downloader, deploymentId, artifact, dest, controller.signal, (e) => this.dispatch(e), this.streamed).finally(() => {
        if (this.download?.controller === controller) this.download = null;
      }),
    );
  }

  private startTrial(deploymentId: string, deadlineAt: number): void {
    if (this.trialTimer) this.clock.clearTimeout(this.trialTimer);
    this.trialAbort?.abort();
    const abort = new AbortController();
    this.trialAbort = abort;
    this.trialTimer = this.clock.setTimeout(() => {
      this.trialTimer = null;
      this.dispatch({ type: 'trial-timeout', deploymentId });
    }, Math.max(0, deadlineAt - this.clock.now()));
    const brokerWait = Math.min(this.cfg.health.brokerDeadline, Math.max(0, deadlineAt - this.clock.now()));
    const checks = this.cfg.health.checks.map((c) => ({ name: c.name, command: c.command, timeoutMs: c.timeout }));
    const waitConnected = (ms: number) => this.session?.waitConnected(ms) ?? Promise.resolve(false);
    this.later(trialHealthTask(waitConnected, this.health, checks, brokerWait, deploymentId, abort.signal));
  }

  private async reboot(): Promise<void> {
    this.halted = true;
    this.clearTimers();
    this.log.info({ deploymentId: this.st.job?.deploymentId }, 'rebooting');
    // A reboot is a clean shutdown of the agent: the next start must not count it as a crash.
    this.st = await this.save({ ...this.st, running: false });
    await this.session?.stop({
      topic: deviceTopic(this.cfg.deviceId, 'presence'),
      payload: encodeMessage(presenceMessage(this.cfg.deviceId, false, this.clock.now())),
      options: { qos: 1, retain: this.cfg.broker.retainPresence },
    });
    this.session = null;
    // Killed (power cut) while shutting down: a dead device reboots nothing. In one process (the
    // simulator) this continuation would otherwise reboot the device's *next* boot out of its trial.
    if (this.stopped) return;
    try {
      await this.slots.reboot();
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'reboot failed; the agent stops so that its supervisor restarts it');
      this.stopped = true;
      await this.options.onRebootFailed?.(err);
      return;
    }
    if (this.options.onReboot) await this.options.onReboot();
    else if (this.slots.kind === 'file' || this.slots.kind === 'memory') {
      this.log.warn('simulated slots and no onReboot: nothing powers the device on again; run it in a SimulatedDevice');
    }
  }

  private publish(channel: 'hello' | 'status' | 'telemetry' | 'presence', payload: Buffer, qos: 0 | 1, retain = false): void {
    this.session?.publish(deviceTopic(this.cfg.deviceId, channel), payload, { qos, retain, droppable: channel === 'telemetry' });
  }

  private sendHello(): void {
    this.publish('hello', encodeMessage(helloMessage(this.identity, this.st, this.clock.now(), this.bootCount)), 1);
  }

  private onConnect(): void {
    // The hello says the device is online. A retained presence is for observers of the topic: it
    // replaces the retained "offline" of the last will. Unretained, it would be a second packet (and
    // PUBACK) per connect saying what the hello says.
    if (this.cfg.broker.retainPresence) this.publish('presence', encodeMessage(presenceMessage(this.cfg.deviceId, true, this.clock.now())), 1, true);
    this.sendHello();
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (this.stopped || this.halted) return;
    const cfg = this.cfg;
    const inbound = classifyInbound(topic, payload, { rollout: rolloutTopic(cfg.hardwareModel, this.identity.bucket), commands: deviceTopic(cfg.deviceId, 'commands') });
    switch (inbound.kind) {
      case 'cleared':
        // The coordinator cleared the wave: abort whatever has not reached the trial.
        this.lastRollout = null;
        this.dispatch({ type: 'rollout-cleared' });
        return;
      case 'cancel':
        // The retained cancel replaced the manifest: abort only an update of that deployment.
        this.lastRollout = null;
        this.dispatch({ type: 'rollout-cleared', deploymentId: inbound.message.deploymentId });
        return;
      case 'rollout':
        this.lastRollout = inbound.message;
        this.dispatch({ type: 'rollout-message', message: inbound.message });
        return;
      case 'command': {
        const envelope = inbound.message.command;
        this.enqueue(async () => {
          const verified = verifyCommand(envelope, this.trust, {
            now: this.clock.now(),
            deviceId: cfg.deviceId,
            lastSeq: this.st.commandSeq,
            clockSkewMs: cfg.clockSkew,
          });
          if (!verified.ok) {
            this.counts.rejectedCommands++;
            this.bumpErrors();
            this.log.warn({ reason: verified.reason, detail: verified.detail, commandSeq: this.st.commandSeq, ...claimed(envelope.signed, ['commandId', 'action', 'deploymentId', 'seq']) }, 'command refused');
            return;
          }
          this.counts.acceptedCommands++;
          this.log.info({ commandId: verified.value.commandId, action: verified.value.action, seq: verified.value.seq }, 'command accepted');
          await this.handle({ type: 'command', command: verified.value });
        });
        return;
      }
      case 'flags':
        if (!this.flagsSnapshot || inbound.message.version > this.flagsSnapshot.version) this.flagsSnapshot = inbound.message;
        return;
      case 'bad':
        this.badMessage(topic, inbound.error);
        return;
      case 'ignored':
        return;
    }
  }

  private badMessage(topic: string, error: string): void {
    this.counts.badMessages++;
    this.bumpErrors();
    this.log.warn({ topic, err: error }, 'ignored a malformed message');
  }

  private scheduleTelemetry(): void {
    if (this.stopped || this.halted) return;
    this.telemetryTimer = this.clock.setTimeout(() => {
      this.telemetryTimer = null;
      this.sendTelemetry()
        .catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'telemetry failed'))
        .finally(() => this.scheduleTelemetry());
    }, this.cfg.telemetry.interval);
  }

  /** Collects and publishes one telemetry message now (QoS 0; queued while offline). */
  async sendTelemetry(): Promise<void> {
    if (this.stopped || this.halted) return;
    const sample = await this.telemetry.collect();
    if (this.stopped || this.halted) return;
    if (sample.events && ((sample.events.crashes ?? 0) > 0 || (sample.events.errors ?? 0) > 0)) {
      const c = this.st.counters;
      this.st = { ...this.st, counters: { ...c, crashes: c.crashes + (sample.events.crashes ?? 0), errors: c.errors + (sample.events.errors ?? 0) } };
    }
    this.telemetrySeq++;
    if (this.telemetrySeq >= this.st.telemetrySeqReserved) {
      this.st = { ...this.st, telemetrySeqReserved: this.st.telemetrySeqReserved + TELEMETRY_SEQ_BLOCK };
    }
    // Counters are cumulative on the wire: make them durable before they are reported, so a crash
    // never makes one go backwards.
    if (this.st.counters !== this.savedCounters || this.st.telemetrySeqReserved !== this.savedSeqReserved) {
      await this.enqueueAndWait(async () => {
        if (!this.stopped && !this.halted) this.st = await this.save(this.st);
      });
    }
    const uptimeS = sample.uptimeS ?? (this.clock.now() - this.startedAt) / 1000;
    const msg = telemetryMessage(this.cfg.deviceId, this.st, sample, uptimeS, this.bootCount, this.telemetrySeq, this.cfg.telemetry.maxLogLines, this.clock.now());
    this.publish('telemetry', encodeMessage(msg), 0);
  }
}

/**
 * Fields of a refused document, for the log: what it claims to be (unauthenticated when the
 * signatures failed), bounded, so an operator can tell which manifest or command was replayed.
 */
function claimed(signed: Record<string, unknown>, keys: readonly string[]): { claimed: Record<string, unknown> } {
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const v = signed[k];
    if (typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    else if (typeof v === 'string') out[k] = v.slice(0, 80);
  }
  return { claimed: out };
}
