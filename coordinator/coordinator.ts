/**
 * The Coordinator: one service with an embedded MQTT broker (or a client of an external one), a SQLite
 * store, the fleet registry, telemetry ingest, the artifact server, the admin API and the rollout
 * engine runner. `Coordinator.create(options)` opens the data directory, resumes every deployment
 * where it stood and starts listening; `stop()` is safe to call twice. Composition root of coordinator/.
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync, createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { systemClock, type Clock } from '../protocol/clock.js';
import { publicKeyPem, type SigningKey } from '../firmware/keys.js';
import type { HelloMessage, PresenceMessage, StatusMessage } from '../protocol/messages.js';
import type { GateAnalyzer } from './gate/analyzer.js';
import { createCanaryServices } from './canary/canary-services.js';
import { FLAGS_TOPIC } from '../protocol/topics.js';
import { encodeMessage } from '../protocol/parse.js';
import { loadConfig, type CoordinatorConfig, type CoordinatorConfigInput } from './config.js';
import { choosePort, coordinatorTrust, portOf, readAdminFile, readPorts, writeAdminFile, writePorts } from './data-dir.js';
import { closeDatabase, type Db } from './store/db.js';
import { AuditLog } from './store/audit-log.js';
import { Counters } from './metrics.js';
import { CredentialStore, type ProvisionedDevice } from './broker/credentials.js';
import { EmbeddedBroker } from './broker/embedded-broker.js';
import { ExternalBroker } from './broker/external-broker.js';
import type { Transport } from './broker/transport.js';
import { DeviceIngest } from './ingest/device-ingest.js';
import { StatusInbox } from './ingest/status-inbox.js';
import { DeviceRegistry, type DeviceRecord } from './registry/device-registry.js';
import { AnomalyLog } from './registry/anomaly-log.js';
import type { TelemetryWriter } from './telemetry/telemetry-writer.js';
import { openDataStores, startTelemetryWriter } from './data-stores.js';
import { Housekeeping } from './housekeeping.js';
import { SnapshotBuilder } from './telemetry/snapshot-builder.js';
import { ArtifactStore, type ArtifactRecord } from './artifacts/artifact-store.js';
import { ArtifactServer } from './artifacts/artifact-server.js';
import { ArtifactIntegrity } from './artifacts/artifact-integrity.js';
import { DownloadAuth } from './artifacts/download-auth.js';
import { FirmwareService } from './artifacts/firmware-service.js';
import { DataDirLock } from './data-dir-lock.js';
import { CounterTotals } from './counter-totals.js';
import { FreshnessCounters } from './deployments/freshness-counters.js';
import { Router } from './admin/router.js';
import { HttpServer } from './admin/http-server.js';
import { registerDeviceRoutes } from './admin/device-routes.js';
import { registerFirmwareRoutes } from './admin/firmware-routes.js';
import { registerSystemRoutes } from './admin/system-routes.js';
import { loadCoordinatorKey } from './signing.js';
import { Publisher } from './wiring/publisher.js';
import { RolloutService } from './wiring/rollout-service.js';
import { registerDeploymentRoutes } from './admin/deployment-routes.js';
import { DeploymentRequestSchema, OperatorActionSchema, type AuditEntry, type DeploymentRequestInput, type OperatorActionInput } from './engine/types.js';
import type { DeploymentView } from './wiring/rollout-service.js';
import { ValidationError } from '../protocol/errors.js';
import { formatIssues } from '../protocol/parse.js';
import { Registry } from 'prom-client';
import { DEPLOYMENT_PHASES } from './engine/types.js';
import type { DecisionRecord } from './gate/decision.js';
import { HttpRequestMetrics } from './prometheus/http-metrics.js';
import { FleetMetrics } from './prometheus/fleet-metrics.js';
import { coordinatorMetricSources } from './prometheus/metric-sources.js';
import { registerMetricsRoute } from './prometheus/metrics-route.js';
import { createWebhooks, type Webhooks } from './webhooks/create-webhooks.js';
import { registerWebhookRoutes } from './webhooks/webhook-routes.js';
import { packageVersion } from '../firmware/package-version.js';

/** Reported by /v1/health: the version in package.json. */
export const COORDINATOR_VERSION = packageVersion(import.meta.url);

export interface CoordinatorOptions {
  /** Configuration (merged over FLEET_* variables from `env`); `dataDir` is required unless FLEET_DATA_DIR is set. */
  config?: Partial<CoordinatorConfigInput>;
  /** Environment variables to read (APP_ENV, FLEET_*). Default: none (embedding code passes what it wants). */
  env?: Record<string, string | undefined>;
  /** Time source for every timestamp, deadline and soak. Default: real time. The simulator passes a scaled clock. */
  clock?: Clock;
  /** Real-time timers for batching and housekeeping cadence. Default: real time. */
  timers?: Clock;
  /** pino logger; a child per module is made from it. Default: JSON to stderr at `info`. */
  logger?: Logger;
  /**
   * Gate analyzers for every wave. Default: chosen per wave by the `canary.stat` / `canary.ai` flags
   * (hard gates always; the statistical judge; the AI scorer when FLEET_AI_* is configured in `env`).
   */
  analyzers?: readonly GateAnalyzer[];
  /** Randomness for bucket offsets. Default Math.random. */
  random?: () => number;
}

/** What keeps the coordinator's data directory its own and its downloads and counters honest. */
interface Upkeep {
  lock: DataDirLock;
  counterTotals: CounterTotals;
  integrity: ArtifactIntegrity;
  downloads: ArtifactServer;
  webhooks: Webhooks;
  /** Real-time timers and time (the clock may run faster in a simulation). */
  timers: Clock;
  /** Real time this process started. */
  startedAt: number;
}

/** What the coordinator announces (for the simulator, dashboards and tests). */
export interface CoordinatorEvents {
  audit: [AuditEntry];
  /** A decision the engine recorded (gate, early hard limit, Monitor limit, empty wave, operator). */
  decision: [DecisionRecord];
  device: [DeviceRecord, 'hello' | 'online' | 'offline' | 'provisioned'];
}

export class Coordinator {
  readonly events = new EventEmitter<CoordinatorEvents>();
  private stopped = false;
  private readonly housekeeping: Housekeeping;

  private constructor(
    readonly config: CoordinatorConfig,
    readonly logger: Logger,
    readonly clock: Clock,
    timers: Clock,
    readonly db: Db,
    readonly counters: Counters,
    readonly registry: DeviceRegistry,
    readonly credentials: CredentialStore,
    readonly telemetry: TelemetryWriter,
    /** A read connection to telemetry.db (rollups, samples); the telemetry thread writes it. */
    readonly telemetryDb: Db,
    readonly artifacts: ArtifactStore,
    readonly firmware: FirmwareService,
    readonly auditLog: AuditLog,
    private readonly transport: Transport,
    private readonly http: HttpServer,
    readonly rollouts: RolloutService,
    private readonly publisher: Publisher,
    private readonly inbox: StatusInbox,
    readonly signingKey: SigningKey,
    /** Directory holding the coordinator's public key: a trust store for agents. */
    readonly trustDir: string,
    /** The operator bearer token for the admin API. */
    readonly adminToken: string,
    /** What devices did that was refused or shed, per device (admin API, `fleet devices anomalies`). */
    readonly anomalies: AnomalyLog,
    private readonly upkeep: Upkeep,
  ) {
    this.housekeeping = new Housekeeping({ db, registry, inbox, telemetry, clock, timers, counters, counterTotals: upkeep.counterTotals, logger, anomalies });
  }

  /**
   * Opens the data directory, resumes deployments and starts the broker and HTTP listeners. Refuses
   * (DataDirInUseError) when another coordinator runs on the same data directory.
   */
  static async create(options: CoordinatorOptions = {}): Promise<Coordinator> {
    const config = loadConfig(options.config ?? {}, options.env ?? {});
    const clock = options.clock ?? systemClock;
    const timers = options.timers ?? systemClock;
    const root = options.logger ?? pino({ level: 'info' });
    mkdirSync(config.dataDir, { recursive: true });
    // Before anything in the directory is read or written: a second coordinator would resume the same
    // deployments and overwrite admin.json.
    const lock = DataDirLock.acquire(config.dataDir, timers.now());
    try {
      return await Coordinator.open(config, clock, timers, root, options, lock);
    } catch (err) {
      lock.release({ stoppedAt: timers.now() });
      throw err;
    }
  }

  private static async open(config: CoordinatorConfig, clock: Clock, timers: Clock, root: Logger, options: CoordinatorOptions, lock: DataDirLock): Promise<Coordinator> {
    // Every module's child comes from the root: a child of a child repeats the `module` key in JSON.
    const logger = root.child({ module: 'coordinator' });
    const { key, trustDir } = await loadCoordinatorKey(config);
    const { db, telemetryDb } = openDataStores(config.dataDir, logger);
    const counters = new Counters();
    const counterTotals = new CounterTotals(db, counters, () => timers.now());
    counters.inc('coordinator.starts');
    if (lock.previousUnclean) {
      counters.inc('coordinator.unclean-stops');
      logger.warn({ dataDir: config.dataDir }, 'the previous coordinator on this data directory did not stop cleanly (crash or kill): telemetry it had not stored yet is lost and not counted');
    }
    const now = (): number => clock.now();
    // With the embedded broker every device has credentials: one never provisioned is a ghost.
    const registry = DeviceRegistry.load(db, { requireProvisioning: config.mqtt.brokerUrl === undefined });
    const anomalies = AnomalyLog.load({ db, now, counters, logger: root.child({ module: 'anomalies' }), isKnown: (id) => registry.get(id) !== undefined });
    const credentials = new CredentialStore(db, config.credentialCost, now);
    const auditLog = new AuditLog(db);
    // Handlers call into the coordinator built below; devices cannot connect before it exists.
    const ingest = new DeviceIngest(
      {
        hello: (m) => c.onHello(m),
        status: (m) => c.onStatus(m),
        telemetry: (deviceId, payload) => c.onTelemetry(deviceId, payload),
        presence: (m) => c.onPresence(m),
      },
      counters,
      root.child({ module: 'ingest' }),
      {
        ...config.deviceLimits,
        now,
        onShed: (deviceId, channel) => anomalies.record(deviceId, 'rate-limited', `${channel} messages past ${config.deviceLimits[channel].perSecond}/s (burst ${config.deviceLimits[channel].burst}) shed`),
      },
    );
    let telemetry: TelemetryWriter;
    try {
      telemetry = await startTelemetryWriter(config, {
        timers,
        logger: root,
        counters,
        onVersions: (notes) => {
          for (const n of notes) registry.noteVersion(n.deviceId, n.firmwareVersion, n.slot);
        },
        onBad: (bad, count) => ingest.reportBad('telemetry', bad, count),
      });
    } catch (err) {
      closeDatabase(telemetryDb);
      closeDatabase(db);
      throw err;
    }
    const artifacts = new ArtifactStore(db, config.dataDir);

    const previous = readPorts(config.dataDir);
    const adminToken = config.adminToken ?? readAdminFile(config.dataDir)?.token ?? randomBytes(24).toString('base64url');
    // One Prometheus registry per coordinator (several may run in one process).
    const promRegistry = new Registry();
    const requestMetrics = HttpRequestMetrics.create(promRegistry);
    const router = new Router({ token: adminToken, onError: (err) => logger.error({ err }, 'admin API error'), onMatch: requestMetrics.matched });
    const artifactLog = root.child({ module: 'artifacts' });
    const integrity = new ArtifactIntegrity({
      store: artifacts,
      counters,
      logger: artifactLog,
      now,
      onChange: (sha256, v) => {
        const versions = artifacts.list().filter((a) => a.sha256 === sha256).map((a) => a.firmwareVersion);
        auditLog.append(clock.now(), 'coordinator', v.status === 'damaged' ? 'artifact.damaged' : 'artifact.repaired', sha256, { versions, ...(v.reason !== undefined ? { reason: v.reason } : {}) });
      },
    });
    // Downloads authenticate like the broker does: anonymous exactly when anonymous devices are allowed.
    const allowAnonymous = config.allowAnonymousDevices;
    const artifactServer = new ArtifactServer({
      store: artifacts,
      integrity,
      auth: new DownloadAuth({ allowAnonymous, verify: (id, secret, lane) => credentials.verify(id, secret, lane), now: () => timers.now() }),
      hardwareModelOf: (id) => registry.hardwareModelOf(id),
      counters,
      logger: artifactLog,
      timers,
      options: {
        maxConcurrent: config.http.maxConcurrentDownloads,
        maxPerDevice: config.http.maxDownloadsPerDevice,
        idleTimeoutMs: config.http.downloadIdleTimeoutMs,
        minBytesPerSecond: config.http.downloadMinBytesPerSecond,
        rateWindowMs: config.http.downloadRateWindowMs,
      },
    });
    const httpTls = config.http.tlsCert && config.http.tlsKey ? { certPath: config.http.tlsCert, keyPath: config.http.tlsKey } : undefined;
    const http = new HttpServer(router, artifactServer, config.http.host, choosePort(config.http.port, previous.http), httpTls, requestMetrics);
    const trust = { dir: resolve(trustDir), load: () => coordinatorTrust(key, trustDir) };
    const freshness = new FreshnessCounters(db, now);
    const firmware = new FirmwareService(artifacts, key, trust, () => config.http.publicUrl ?? http.url, now, freshness, integrity);

    const transport: Transport = config.mqtt.brokerUrl
      ? new ExternalBroker({
          url: config.mqtt.brokerUrl,
          // Stable per data directory, so the persistent session (queued QoS 1 statuses) survives a restart.
          clientId: `fleet-coordinator-${createHash('sha256').update(resolve(config.dataDir)).digest('hex').slice(0, 12)}`,
          logger: root.child({ module: 'broker' }),
          ...(config.mqtt.brokerUsername !== undefined ? { username: config.mqtt.brokerUsername } : {}),
          ...(config.mqtt.brokerPassword !== undefined ? { password: config.mqtt.brokerPassword } : {}),
        })
      : new EmbeddedBroker({
          port: choosePort(config.mqtt.port, previous.mqtt),
          host: config.mqtt.host,
          ...(config.mqtt.tlsCert && config.mqtt.tlsKey
            ? { tls: { certPath: config.mqtt.tlsCert, keyPath: config.mqtt.tlsKey, ...(config.mqtt.tlsClientCa ? { clientCaPath: config.mqtt.tlsClientCa } : {}) } }
            : {}),
          credentials,
          allowAnonymous,
          hardwareModelOf: (id) => registry.hardwareModelOf(id),
          logger: root.child({ module: 'broker' }),
          counters,
          maxPacketBytes: config.mqtt.maxPacketBytes,
          connectTimeoutMs: config.mqtt.connectTimeoutMs,
          timers,
          onAnomaly: (id, kind, detail) => anomalies.record(id, kind, detail),
        });
    const publisher = new Publisher(db, transport, now);
    const snapshots = new SnapshotBuilder(telemetryDb, config.telemetry.rollupSlotMs);
    const inbox = new StatusInbox(db);

    // Feature flags and flag-driven canary analysis; device flags go out retained on the flags topic.
    const canary = createCanaryServices({
      db,
      now,
      audit: auditLog,
      env: options.env ?? {},
      publishDeviceFlags: (message) => {
        publisher.retain(FLAGS_TOPIC, encodeMessage(message)).catch((err: unknown) => logger.error({ err }, 'publishing device flags failed'));
      },
    });
    const fixedAnalyzers = options.analyzers;

    const events = new EventEmitter<CoordinatorEvents>();
    const rollouts = await RolloutService.create({
      db,
      clock,
      logger: root.child({ module: 'engine' }),
      registry,
      publisher,
      key,
      auditLog,
      counters,
      firmware,
      snapshots,
      silentAfterMs: config.telemetry.silentAfterMs,
      warmUpMs: config.telemetry.warmUpMs,
      analyzersFor: fixedAnalyzers ? () => fixedAnalyzers : (spec, wave) => canary.analyzersFor(spec, wave),
      random: options.random ?? Math.random,
      freshness,
      onAudit: (e) => events.emit('audit', e),
      onDecision: (d) => events.emit('decision', d),
      anomalies,
    });
    const audit = (actor: string, action: string, subject: string, detail: Record<string, unknown> = {}): void => {
      auditLog.append(clock.now(), actor, action, subject, detail);
      logger.info({ actor, action, subject, ...detail }, action);
    };
    const metrics = FleetMetrics.create({
      registry: promRegistry,
      phases: DEPLOYMENT_PHASES,
      sources: coordinatorMetricSources({
        db,
        counters,
        connectedDevices: () => transport.connectedDevices(),
        devices: () => registry.all(),
        devicesWithAnomalies: () => anomalies.devices,
        telemetry,
        downloads: artifactServer,
        liveDeployments: () => rollouts.runner.liveDeployments(),
        engineCounters: () => rollouts.runner.counters,
      }),
    });
    const webhooks = createWebhooks({
      db,
      config,
      timers,
      now,
      logger: root.child({ module: 'webhooks' }),
      audit,
      onAttempt: (outcome, seconds) => metrics.observeWebhook(outcome, seconds),
    });
    // Listeners run inside the engine's effects: the guard keeps their failures out of it.
    const guarded = (event: string, run: () => void): void => {
      try {
        run();
      } catch (err) {
        logger.error({ err, event }, 'metrics or webhook listener failed');
      }
    };
    events.on('decision', (d) => guarded('decision', () => {
      metrics.observeDecision(d);
      webhooks.service.onDecision(d);
    }));
    events.on('audit', (e) => guarded('audit', () => {
      if (e.action === 'deployment.rollback-started') metrics.observeRollback('started');
      if (e.action === 'deployment.rolled-back') metrics.observeRollback('finished');
      webhooks.service.onAudit(e);
    }));

    const c = new Coordinator(config, logger, clock, timers, db, counters, registry, credentials, telemetry, telemetryDb, artifacts, firmware,
      auditLog, transport, http, rollouts, publisher, inbox, key, trustDir, adminToken, anomalies,
      { lock, counterTotals, integrity, downloads: artifactServer, webhooks, timers, startedAt: timers.now() });
    (c as { events: EventEmitter<CoordinatorEvents> }).events = events;
    registerSystemRoutes(router, {
      env: config.env,
      version: COORDINATOR_VERSION,
      startedAt: clock.now(),
      now,
      metrics: () => c.metrics(),
      auditLog,
      endpoints: () => ({ mqttUrl: transport.url, httpUrl: http.url }),
    });
    registerDeviceRoutes(router, { registry, credentials, now, audit, deviceDeployments: (id) => rollouts.deviceHistory(id), anomalies });
    registerFirmwareRoutes(router, { store: artifacts, firmware, audit });
    registerDeploymentRoutes(router, { rollouts });
    canary.registerRoutes(router);
    registerMetricsRoute(router, { metrics, public: config.metricsPublic });
    registerWebhookRoutes(router, { webhooks: webhooks.service });
    registry.subscribe((d, change) => events.emit('device', d, change));

    transport.onMessage(ingest.handle);
    transport.onConnection({
      onDisconnect: (id) => {
        registry.setOnline(id, false, clock.now());
        rollouts.presence(id, false);
      },
    });

    let restored: number;
    let replayed: StatusMessage[];
    try {
      await http.start();
      // Restore retained manifests and resume deployments before devices can connect: they then see
      // the state once, as retained messages, instead of a second live copy of a manifest they hold.
      await transport.prepare();
      restored = config.mqtt.brokerUrl ? 0 : await publisher.restore();
      await publisher.retain(FLAGS_TOPIC, encodeMessage(canary.deviceFlagsMessage()));
      await rollouts.start();
      // Statuses acknowledged just before a crash may not have reached the engine's store: replay them.
      replayed = inbox.pending();
      for (const m of replayed) rollouts.replayStatus(m);
      await rollouts.idle();
      await transport.start();
      writePorts(config.dataDir, { mqtt: portOf(transport.url), http: http.portNumber });
      if (config.env === 'development') await writeAdminFile(config.dataDir, { url: http.url, token: adminToken, mqttUrl: transport.url });
      lock.announce({ adminUrl: http.url, mqttUrl: transport.url });
    } catch (err) {
      // A port in use, a broker unreachable: release what was opened so the caller can retry.
      await rollouts.stop().catch(() => undefined);
      await transport.stop().catch(() => undefined);
      await http.stop().catch(() => undefined);
      await telemetry.stop().catch(() => undefined);
      closeDatabase(telemetryDb);
      closeDatabase(db);
      throw err;
    }
    c.housekeeping.start();
    integrity.startScan();
    webhooks.dispatcher.start();
    if (config.metricsPublic) logger.warn({ path: '/metrics' }, 'metrics are served without a token (FLEET_METRICS_PUBLIC)');
    if (config.allowAnonymousDevices) {
      logger.warn({ mqttUrl: transport.url }, 'devices without credentials are accepted (development, loopback only): they are ghosts, in no wave; provision real devices');
    }
    logger.info({ env: config.env, mqttUrl: transport.url, httpUrl: http.url, dataDir: config.dataDir, restoredRetained: restored, replayedStatuses: replayed.length, keyId: key.keyid }, 'coordinator started');
    return c;
  }

  /** Where devices connect. */
  get mqttUrl(): string {
    return this.transport.url;
  }

  /** Admin API and artifact base URL. */
  get httpUrl(): string {
    return this.http.url;
  }

  get publicKeyPem(): string {
    return publicKeyPem(this.signingKey);
  }

  // ---- device messages -------------------------------------------------------------------------

  private onHello(m: HelloMessage): void {
    // The operator's registry is authoritative: a hello contradicting it changes nothing (and no ACL).
    const refusal = this.registry.checkHello(m);
    if (refusal) {
      this.counters.inc('ingest.hello.refused');
      this.registry.seen(m.deviceId, this.clock.now());
      this.anomalies.record(m.deviceId, refusal.kind, refusal.detail);
      return;
    }
    this.registry.applyHello(m, this.clock.now());
    this.rollouts.hello(m);
  }

  private onStatus(m: StatusMessage): Promise<void> {
    const now = this.clock.now();
    // Stored before the PUBACK (which waits for this handler): an acknowledged status survives a crash.
    // The commit is shared with the turn's other statuses; the engine hears the status at once, in its
    // order with hellos and presence (a status whose commit fails is sent again and ignored as a duplicate).
    const stored = this.inbox.record(m, now);
    this.registry.seen(m.deviceId, now);
    // Both terminal reports name the version now running in toVersion (a rollback goes "to" the old one).
    if (m.state === 'committed' || m.state === 'rolled-back') this.registry.noteVersion(m.deviceId, m.toVersion);
    this.registry.noteUpdate(m.deviceId, { deploymentId: m.deploymentId, state: m.state, toVersion: m.toVersion });
    const fed = this.rollouts.status(m);
    return Promise.all([stored, fed]).then(() => undefined);
  }

  private onTelemetry(deviceId: string, payload: Buffer): void {
    // Inside the broker's delivery hook: the transport vouched for the publisher, so the device is
    // alive; the payload is parsed and stored on the telemetry thread (telemetry-writer.ts).
    const now = this.clock.now();
    this.registry.seen(deviceId, now);
    this.telemetry.enqueue(deviceId, payload, now);
  }

  private onPresence(m: PresenceMessage): void {
    const online = m.state === 'online';
    this.registry.setOnline(m.deviceId, online, this.clock.now());
    this.rollouts.presence(m.deviceId, online);
  }

  // ---- housekeeping ----------------------------------------------------------------------------

  /** Stores queued telemetry and devices' last-seen times; resolves with telemetry messages written. */
  async flush(): Promise<number> {
    if (this.stopped) return 0;
    this.housekeeping.flushSeen();
    return this.telemetry.flush();
  }

  // ---- API for embedders (simulator, tests) -----------------------------------------------------

  /** Provisions devices and returns their secrets (shown once). Fast with a low `credentialCost`. */
  async provisionDevices(deviceIds: readonly string[], info: { hardwareModel?: string; tags?: string[]; rotate?: boolean } = {}): Promise<ProvisionedDevice[]> {
    const out = await this.credentials.provisionMany(deviceIds, info.rotate ? { rotate: true } : {});
    const now = this.clock.now();
    for (const p of out) {
      this.registry.provisioned(p.deviceId, now, {
        ...(info.hardwareModel !== undefined ? { hardwareModel: info.hardwareModel } : {}),
        ...(info.tags !== undefined ? { tags: info.tags } : {}),
      });
    }
    this.auditLog.append(now, 'operator', 'devices.provisioned', `${deviceIds.length} devices`, { count: deviceIds.length });
    return out;
  }

  /** Stores and signs a firmware image (a path or a stream). */
  async uploadFirmware(input: {
    image: string | Readable;
    version: string;
    hardware: string[];
    installableOver?: string;
    securityVersion?: number;
    tags?: string[];
    offlineManifest?: unknown;
  }): Promise<ArtifactRecord> {
    const { image, ...rest } = input;
    const record = await this.firmware.upload({ source: typeof image === 'string' ? createReadStream(image) : image, ...rest });
    this.auditLog.append(this.clock.now(), 'operator', 'firmware.uploaded', record.firmwareVersion, { sha256: record.sha256, size: record.size });
    return record;
  }

  /** Creates a deployment (validated like the admin API's body). */
  async createDeployment(request: DeploymentRequestInput, actor = 'operator'): Promise<DeploymentView> {
    const parsed = DeploymentRequestSchema.safeParse(request);
    if (!parsed.success) throw new ValidationError('deployment', formatIssues(parsed.error));
    return this.rollouts.create(parsed.data, actor);
  }

  /** Applies an operator action (pause, resume, promote, abort, rollback, approve, start). */
  async act(deploymentId: string, action: OperatorActionInput, actor = 'operator'): Promise<DeploymentView> {
    const parsed = OperatorActionSchema.safeParse(action);
    if (!parsed.success) throw new ValidationError('operator action', formatIssues(parsed.error));
    return this.rollouts.act(deploymentId, parsed.data, actor);
  }

  /** A deployment with its decisions, or undefined. */
  deployment(deploymentId: string): DeploymentView | undefined {
    return this.rollouts.view(deploymentId);
  }

  /**
   * Stops and restarts the MQTT side (fault injection for the simulator): every device is
   * disconnected, must reconnect, and retained manifests are re-published from the store.
   */
  async restartBroker(): Promise<void> {
    await this.transport.stop();
    for (const d of this.registry.all()) if (d.online) this.registry.setOnline(d.deviceId, false, this.clock.now());
    await this.transport.prepare();
    if (!this.config.mqtt.brokerUrl) await this.publisher.restore();
    await this.transport.start();
  }

  /**
   * `counters` count since this process started (`startedAt`); `totals` over every run on this data
   * directory since `totalsSince` (stored every few seconds and at stop, so a crash loses at most the
   * last few seconds of increments).
   */
  metrics(): Record<string, unknown> {
    const connected = this.transport.connectedDevices();
    const { totals, since } = this.upkeep.counterTotals.totals();
    return {
      startedAt: this.upkeep.startedAt,
      counters: this.counters.snapshot(),
      totalsSince: since,
      totals,
      downloads: { active: this.upkeep.downloads.activeDownloads },
      devices: { known: this.registry.size, connected: connected?.size ?? null, withAnomalies: this.anomalies.devices },
      telemetry: { pending: this.telemetry.pending, written: this.telemetry.written },
      deployments: this.rollouts.summary(),
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.rollouts.stop();
    await this.upkeep.webhooks.dispatcher.stop();
    await this.http.stop();
    await this.upkeep.integrity.stop();
    await this.transport.stop();
    this.housekeeping.stop();
    await this.telemetry.stop();
    this.housekeeping.flushCounters();
    closeDatabase(this.telemetryDb);
    closeDatabase(this.db);
    this.upkeep.lock.release({ stoppedAt: this.upkeep.timers.now() });
    this.events.removeAllListeners();
    this.logger.info('coordinator stopped');
  }
}
