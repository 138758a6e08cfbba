/**
 * The coordinator's parts, each group built by one function from the groups before it — stores,
 * telemetry, artifacts and the admin listener, the broker, deployments, device ingest, metrics and
 * webhooks — so every
 * callback a part is given points at a part that already exists. `createCoordinator`
 * (coordinator.ts) calls them in this order. I/O shell (composition).
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Clock } from '@fleet/protocol/clock';
import type { SigningKey } from '@fleet/firmware/keys';
import { definedProps } from '@fleet/firmware/defined-props';
import { packageVersion } from '@fleet/runtime/package-version';
import { FLAGS_TOPIC } from '@fleet/protocol/topics';
import { encodeMessage } from '@fleet/protocol/parse';
import type { CoordinatorConfig } from './config.js';
import { choosePort, coordinatorTrust, readAdminFile, type PortsFile } from './data-dir.js';
import type { DataDirLock } from './data-dir-lock.js';
import type { Sql } from './store/sql.js';
import { isPostgresUrl } from './store/open-store.js';
import { AuditLog } from './store/audit-log.js';
import { Counters } from './metrics.js';
import { CounterTotals } from './counter-totals.js';
import { openDataStores, startTelemetryWriter } from './data-stores.js';
import { loadCoordinatorKey } from './signing.js';
import { CredentialStore } from './broker/credentials.js';
import { createBrokerAccounts } from './broker/broker-login.js';
import { DeviceAccounts } from './broker/device-accounts.js';
import { EmbeddedBroker } from './broker/embedded-broker.js';
import { ExternalBroker } from './broker/external-broker.js';
import { Publisher } from './broker/publisher.js';
import { replicaSubscriptions } from './cluster/replica-subscriptions.js';
import { defaultReplicaId } from './cluster/replica-parts.js';
import type { Transport } from './broker/transport.js';
import { DeviceRegistry, type DeviceRecord, type RegistryChange } from './registry/device-registry.js';
import { AnomalyLog } from './registry/anomaly-log.js';
import { BadMessages } from './ingest/bad-messages.js';
import { DeviceIngest } from './ingest/device-ingest.js';
import { deviceMessages } from './ingest/device-messages.js';
import { StatusInbox } from './ingest/status-inbox.js';
import type { TelemetryWriter } from './telemetry/telemetry-writer.js';
import { SnapshotBuilder } from './telemetry/snapshot-builder.js';
import { ArtifactStore } from './artifacts/artifact-store.js';
import { ArtifactServer } from './artifacts/artifact-server.js';
import { ArtifactIntegrity, type IntegrityView } from './artifacts/artifact-integrity.js';
import { IntegrityFindings } from './artifacts/integrity-findings.js';
import { DownloadAuth } from './artifacts/download-auth.js';
import { FirmwareService, type TrustSource } from './artifacts/firmware-service.js';
import { FreshnessCounters } from './deployments/freshness-counters.js';
import { DeploymentService, type DeploymentServiceDeps, type DeploymentView } from './deployments/deployment-service.js';
import { createCanaryServices, type CanaryServices } from './canary/canary-services.js';
import type { GateAnalyzer } from './gate/analyzer.js';
import { DEPLOYMENT_PHASES, type AuditEntry } from './engine/types.js';
import type { DecisionRecord } from './gate/decision.js';
import { HttpRequestMetrics } from './prometheus/http-metrics.js';
import { FleetMetrics } from './prometheus/fleet-metrics.js';
import { coordinatorMetricSources } from './prometheus/metric-sources.js';
import { createWebhooks, type Webhooks } from './webhooks/create-webhooks.js';
import { createAdminApi, type AdminApi } from './admin/admin-api.js';
import { HttpServer } from './admin/http-server.js';
import { Access } from './users/access.js';
import { SessionStore } from './users/session-store.js';
import { UserStore } from './users/user-store.js';

/** What the coordinator announces (for the simulator, dashboards and tests). */
export interface CoordinatorEvents {
  audit: [AuditEntry];
  /** A decision the engine recorded (gate, early hard limit, Monitor limit, empty wave, operator). */
  decision: [DecisionRecord];
  device: [DeviceRecord, RegistryChange];
  /** A deployment after any change (without its decisions). */
  deployment: [DeploymentView];
}

/** What every group is built with: configuration, time, logging, and the lock on the data directory. */
export interface Basics {
  config: CoordinatorConfig;
  /** Time for every timestamp, deadline and soak (a simulation may run it faster). */
  clock: Clock;
  /** Real-time timers for batching and housekeeping cadence. */
  timers: Clock;
  /** The embedder's logger: every module's child comes from it (a child of a child repeats `module` in JSON). */
  root: Logger;
  /** The coordinator's own child of `root`. */
  logger: Logger;
  lock: DataDirLock;
  /** Ports of the previous run on this data directory (reused when the config says `auto`). */
  previousPorts: PortsFile;
  env: Record<string, string | undefined>;
}

export interface Stores {
  key: SigningKey;
  /** Directory holding the coordinator's public key: a trust store for agents. */
  trustDir: string;
  /** The store every repository uses: SQLite's fleet.db, or PostgreSQL. */
  sql: Sql;
  /** A read handle on the telemetry tables (telemetry.db's, or `sql` on PostgreSQL); the telemetry thread writes them. */
  telemetrySql: Sql;
  counters: Counters;
  counterTotals: CounterTotals;
  registry: DeviceRegistry;
  anomalies: AnomalyLog;
  credentials: CredentialStore;
  auditLog: AuditLog;
  /** Appends an operator's or the coordinator's own action to the audit log and logs it, without waiting (a failure is counted and logged). */
  audit: (actor: string, action: string, subject: string, detail?: Record<string, unknown>) => void;
  /** The same, resolved once the entry is stored: for an action whose answer follows. */
  auditNow: (actor: string, action: string, subject: string, detail?: Record<string, unknown>) => Promise<void>;
  events: EventEmitter<CoordinatorEvents>;
}

/** Opens the key, both databases and what lives in them. */
export async function openStores(b: Basics): Promise<Stores> {
  const { config, logger } = b;
  const { key, trustDir } = await loadCoordinatorKey(config);
  const opened = await openDataStores(config.dataDir, config.store, logger);
  try {
    return await openRepositories(b, { key, trustDir, ...opened });
  } catch (err) {
    await opened.sql.close().catch(() => undefined);
    await opened.telemetrySql.close().catch(() => undefined);
    throw err;
  }
}

/** What lives in the store, read into memory where it is kept there. */
async function openRepositories(b: Basics, opened: Pick<Stores, 'key' | 'trustDir' | 'sql' | 'telemetrySql'>): Promise<Stores> {
  const { config, logger } = b;
  const { sql } = opened;
  const counters = new Counters();
  const counterTotals = await CounterTotals.load(sql, counters, () => b.timers.now());
  counters.inc('coordinator.starts');
  if (b.lock.previousUnclean) {
    counters.inc('coordinator.unclean-stops');
    logger.warn({ dataDir: config.dataDir }, 'the previous coordinator on this data directory did not stop cleanly (crash or kill): telemetry it had not stored yet is lost and not counted');
  }
  const now = (): number => b.clock.now();
  // Writes that nothing can wait for (device messages, engine audit entries) report failures here.
  const storeFailed = (what: string) => (err: unknown, subject: string): void => {
    counters.inc(`store.${what}.errors`);
    logger.error({ err, subject }, `storing ${what} failed`);
  };
  // With the embedded broker, or a Mosquitto whose accounts the coordinator keeps, every device has
  // credentials: one never provisioned is a ghost.
  const registry = await DeviceRegistry.load(sql, {
    requireProvisioning: config.mqtt.brokerUrl === undefined || config.mqtt.brokerAccounts === 'mosquitto-dynsec',
    onWriteError: storeFailed('registry'),
    // Only an embedded broker of its own took every connection down with this process.
    presenceOutlivesProcess: config.mqtt.brokerUrl !== undefined || config.mqtt.cluster !== undefined,
  });
  const anomalies = await AnomalyLog.load({ sql, now, counters, logger: b.root.child({ module: 'anomalies' }), isKnown: (id) => registry.get(id) !== undefined });
  const events = new EventEmitter<CoordinatorEvents>();
  registry.subscribe((d, change) => events.emit('device', d, change));
  const auditLog = new AuditLog(sql, { onError: storeFailed('audit') });
  const credentials = await CredentialStore.load(sql, {
    now,
    onUpgraded: (n) => counters.inc('credentials.upgraded', n),
    onUpgradeError: (err, ids) => storeFailed('credentials')(err, `${ids.length} devices' secrets in the fast form`),
  });
  return {
    ...opened,
    counters,
    counterTotals,
    registry,
    anomalies,
    credentials,
    auditLog,
    audit: (actor, action, subject, detail = {}) => {
      auditLog.appendLater(now(), actor, action, subject, detail);
      logger.info({ actor, action, subject, ...detail }, action);
    },
    auditNow: async (actor, action, subject, detail = {}) => {
      await auditLog.append(now(), actor, action, subject, detail);
      logger.info({ actor, action, subject, ...detail }, action);
    },
    events,
  };
}

export interface Telemetry {
  bad: BadMessages;
  writer: TelemetryWriter;
}

/** The telemetry thread: versions it sees go to the registry, messages it cannot parse to the bad-message account. */
export async function startTelemetry(b: Basics, s: Stores): Promise<Telemetry> {
  const bad = new BadMessages(s.counters, b.root.child({ module: 'ingest' }));
  const writer = await startTelemetryWriter(b.config, {
    timers: b.timers,
    logger: b.root,
    counters: s.counters,
    onVersions: (notes) => {
      for (const n of notes) s.registry.noteVersion(n.deviceId, n.firmwareVersion, n.slot);
    },
    bad,
  });
  return { bad, writer };
}

export interface Artifacts {
  artifacts: ArtifactStore;
  integrity: ArtifactIntegrity;
  downloads: ArtifactServer;
  firmware: FirmwareService;
  freshness: FreshnessCounters;
  /** The keys offline-signed manifests must verify against, read at each upload. */
  trust: TrustSource;
  /** The admin API's routes (Fastify); the listener below serves it. */
  api: AdminApi;
  users: UserStore;
  sessions: SessionStore;
  /** Who a request is: bearer tokens, session cookies and their CSRF tokens, login throttling. */
  access: Access;
  /** One Prometheus registry per coordinator (several may run in one process). */
  promRegistry: Registry;
  requestMetrics: HttpRequestMetrics;
  http: HttpServer;
  /** The operator bearer token for the admin API. */
  adminToken: string;
}

/** Firmware images and their downloads, the manifest signer, and the HTTP listener they share with the admin API. */
export async function buildArtifacts(b: Basics, s: Stores): Promise<Artifacts> {
  const { config, logger } = b;
  const now = (): number => b.clock.now();
  const artifacts = await ArtifactStore.load(s.sql, config.artifactsDir ?? join(config.dataDir, 'artifacts'));
  const adminToken = config.adminToken ?? readAdminFile(config.dataDir)?.token ?? randomBytes(24).toString('base64url');
  const promRegistry = new Registry();
  const requestMetrics = HttpRequestMetrics.create(promRegistry);
  const users = new UserStore({ sql: s.sql, adminToken, now, scryptLogN: config.credentialCost });
  const sessions = new SessionStore(s.sql, now, config.sessions);
  // Staging and production serve the console over HTTPS, here or at a TLS proxy on loopback.
  const secureCookies = config.http.tlsCert !== undefined || config.env !== 'development';
  const access = new Access({ users, sessions, now, counters: s.counters, logger: b.root.child({ module: 'access' }), secureCookies });
  const api = await createAdminApi({
    authenticator: access,
    version: packageVersion(import.meta.url),
    onError: (err) => logger.error({ err }, 'admin API error'),
    onMatch: requestMetrics.matched,
  });
  const artifactLog = b.root.child({ module: 'artifacts' });
  // Every replica (and every restart) finds a damaged image; the store records the finding once.
  const findings = new IntegrityFindings(s.sql);
  const recordFinding = (sha256: string, v: IntegrityView): void => {
    const versions = artifacts.list().filter((a) => a.sha256 === sha256).map((a) => a.firmwareVersion);
    const action = v.status === 'damaged' ? 'artifact.damaged' : 'artifact.repaired';
    const at = now();
    findings.record(sha256, v, at, (tx) => s.auditLog.append(at, 'coordinator', action, sha256, { versions, ...definedProps({ reason: v.reason }) }, undefined, tx)).then(
      (recorded) => artifactLog.info({ sha256, status: v.status, recorded }, recorded ? 'integrity finding recorded in the audit log' : 'integrity finding already recorded'),
      (err: unknown) => {
        s.counters.inc('store.audit.errors');
        artifactLog.error({ err, sha256, action }, 'cannot record an integrity finding in the audit log');
      },
    );
  };
  const integrity = new ArtifactIntegrity({
    store: artifacts,
    counters: s.counters,
    logger: artifactLog,
    now,
    onChange: (sha256, v) => recordFinding(sha256, v),
  });
  // Downloads authenticate like the broker does: anonymous exactly when anonymous devices are allowed.
  const downloads = new ArtifactServer({
    store: artifacts,
    integrity,
    auth: new DownloadAuth({ allowAnonymous: config.allowAnonymousDevices, verify: (id, secret, lane) => s.credentials.verify(id, secret, lane), now: () => b.timers.now() }),
    hardwareModelOf: (id) => s.registry.hardwareModelOf(id),
    counters: s.counters,
    logger: artifactLog,
    timers: b.timers,
    options: {
      maxConcurrent: config.http.maxConcurrentDownloads,
      maxQueued: config.http.maxQueuedDownloads,
      queueWaitMs: config.http.downloadQueueWaitMs,
      maxPerDevice: config.http.maxDownloadsPerDevice,
      idleTimeoutMs: config.http.downloadIdleTimeoutMs,
      minBytesPerSecond: config.http.downloadMinBytesPerSecond,
      rateWindowMs: config.http.downloadRateWindowMs,
    },
  });
  const tls = config.http.tlsCert && config.http.tlsKey ? { certPath: config.http.tlsCert, keyPath: config.http.tlsKey } : undefined;
  const http = new HttpServer(api, downloads, config.http.host, choosePort(config.http.port, b.previousPorts.http), tls, requestMetrics);
  const trust: TrustSource = { dir: resolve(s.trustDir), load: () => coordinatorTrust(s.key, s.trustDir) };
  const freshness = new FreshnessCounters(s.sql, now);
  const firmware = new FirmwareService(artifacts, s.key, trust, () => config.http.publicUrl ?? http.url, now, freshness, integrity);
  return { artifacts, integrity, downloads, firmware, freshness, trust, api, users, sessions, access, promRegistry, requestMetrics, http, adminToken };
}

/** Where devices connect: the embedded broker, or a client of an external one. */
export function buildTransport(b: Basics, s: Stores): Transport {
  const { config } = b;
  if (config.mqtt.brokerUrl) {
    return new ExternalBroker({
      url: config.mqtt.brokerUrl,
      // Stable per data directory, so the persistent session (queued QoS 1 statuses) survives a restart.
      clientId: `fleet-coordinator-${createHash('sha256').update(resolve(config.dataDir)).digest('hex').slice(0, 12)}`,
      logger: b.root.child({ module: 'broker' }),
      // Replicas (a PostgreSQL store) share telemetry through a shared subscription.
      subscriptions: replicaSubscriptions(isPostgresUrl(config.store) ? config.cluster.shareGroup : undefined),
      ...definedProps({ username: config.mqtt.brokerUsername, password: config.mqtt.brokerPassword }),
    });
  }
  return new EmbeddedBroker({
    port: choosePort(config.mqtt.port, b.previousPorts.mqtt),
    host: config.mqtt.host,
    ...(config.mqtt.tlsCert && config.mqtt.tlsKey
      ? { tls: { certPath: config.mqtt.tlsCert, keyPath: config.mqtt.tlsKey, ...(config.mqtt.tlsClientCa ? { clientCaPath: config.mqtt.tlsClientCa } : {}) } }
      : {}),
    credentials: s.credentials,
    allowAnonymous: config.allowAnonymousDevices,
    hardwareModelOf: (id) => s.registry.hardwareModelOf(id),
    logger: b.root.child({ module: 'broker' }),
    counters: s.counters,
    maxPacketBytes: config.mqtt.maxPacketBytes,
    connectTimeoutMs: config.mqtt.connectTimeoutMs,
    // Clustered, the node is known across restarts by its replica id: its previous run's devices are its own to report gone.
    ...definedProps({ cluster: config.mqtt.cluster && { ...config.mqtt.cluster, nodeKey: config.cluster.replicaId ?? defaultReplicaId(config.dataDir) }, admission: config.mqtt.admission }),
    timers: b.timers,
    onAnomaly: (id, kind, detail) => s.anomalies.record(id, kind, detail),
  });
}

/** How often a coordinator on a shared store re-reads the flags its gate uses. */
const FLAG_REFRESH_MS = 5_000;

export interface Deployments {
  publisher: Publisher;
  inbox: StatusInbox;
  canary: CanaryServices;
  deployments: DeploymentService;
}

/**
 * Deployments and what they judge with: retained publishing, the status inbox, flags and canary
 * analysis (device flags go out retained on the flags topic), and the deployment service.
 */
export async function buildDeployments(
  b: Basics,
  s: Stores,
  a: Artifacts,
  transport: Transport,
  options: { analyzers?: readonly GateAnalyzer[] | undefined; random?: (() => number) | undefined; leadership?: DeploymentServiceDeps['leadership'] | undefined },
): Promise<Deployments> {
  const { config, logger } = b;
  const now = (): number => b.clock.now();
  const publisher = new Publisher(s.sql, transport, now);
  const canary = await createCanaryServices({
    sql: s.sql,
    now,
    audit: s.auditLog,
    env: b.env,
    // Other coordinators may change flags in a shared store: the gate re-reads them.
    ...(s.sql.dialect === 'postgres' ? { refresh: { timers: b.timers, everyMs: FLAG_REFRESH_MS, logger } } : {}),
    publishDeviceFlags: (message) => {
      publisher.retain(FLAGS_TOPIC, encodeMessage(message)).catch((err: unknown) => logger.error({ err }, 'publishing device flags failed'));
    },
  });
  const fixed = options.analyzers;
  const deployments = DeploymentService.create({
    sql: s.sql,
    clock: b.clock,
    logger: b.root.child({ module: 'engine' }),
    registry: s.registry,
    publisher,
    key: s.key,
    auditLog: s.auditLog,
    counters: s.counters,
    firmware: a.firmware,
    snapshots: new SnapshotBuilder(s.telemetrySql, config.telemetry.rollupSlotMs),
    silentAfterMs: config.telemetry.silentAfterMs,
    warmUpMs: config.telemetry.warmUpMs,
    analyzersFor: fixed ? () => fixed : (spec, wave) => canary.analyzersFor(spec, wave),
    random: options.random ?? Math.random,
    freshness: a.freshness,
    onAudit: (e) => s.events.emit('audit', e),
    onDecision: (d) => s.events.emit('decision', d),
    onChange: (view) => s.events.emit('deployment', view),
    anomalies: s.anomalies,
    ...definedProps({ leadership: options.leadership }),
  });
  return { publisher, inbox: new StatusInbox(s.sql), canary, deployments };
}

/** Devices' credentials in the store and their accounts on the broker, together (provision, rotate, revoke). */
export function buildAccounts(b: Basics, s: Stores, transport: Transport): DeviceAccounts {
  const logger = b.root.child({ module: 'broker-accounts' });
  return new DeviceAccounts({
    credentials: s.credentials,
    registry: s.registry,
    broker: createBrokerAccounts(b.config, transport, logger, b.timers),
    now: () => b.clock.now(),
    counters: s.counters,
    logger,
  });
}

/** Device messages from the broker: admitted and parsed by ingest, then handled by the parts above. */
export function connectIngest(b: Basics, s: Stores, t: Telemetry, d: Deployments, transport: Transport, accounts: DeviceAccounts): void {
  const { config } = b;
  const handlers = deviceMessages({ registry: s.registry, anomalies: s.anomalies, inbox: d.inbox, telemetry: t.writer, deployments: d.deployments, counters: s.counters, clock: b.clock });
  const ingest = new DeviceIngest({
    handlers,
    counters: s.counters,
    logger: b.root.child({ module: 'ingest' }),
    bad: t.bad,
    limits: {
      ...config.deviceLimits,
      now: () => b.clock.now(),
      onShed: (deviceId, channel) => s.anomalies.record(deviceId, 'rate-limited', `${channel} messages past ${config.deviceLimits[channel].perSecond}/s (burst ${config.deviceLimits[channel].burst}) shed`),
    },
  });
  transport.onMessage(ingest.handle);
  transport.onConnection({ onDisconnect: (id) => handlers.disconnected(id) });
  // A restarted external broker dropped every device, and a killed one sent no last wills: devices
  // not heard from since the connection to it was lost are offline (their hellos bring them back).
  // The broker's first live uptime after this coordinator started asks the same of the presence
  // stored before, from the broker's start: it may have restarted while no coordinator was running.
  accounts.onBrokerRestart((sinceMs, seen) => {
    const cutoff = b.clock.now() - sinceMs;
    const gone = [...s.registry.all()].filter((dev) => dev.online && (dev.lastSeen ?? 0) < cutoff);
    for (const dev of gone) handlers.disconnected(dev.deviceId);
    if (seen === 'restarted') b.logger.warn({ sinceMs, offline: gone.length }, 'the broker restarted: devices not heard from since are offline until they say hello');
    else b.logger[gone.length > 0 ? 'warn' : 'info']({ uptimeMs: sinceMs, offline: gone.length }, "stored presence checked against the broker's uptime: devices not heard from since it started are offline until they say hello");
  });
}

export interface Observers {
  metrics: FleetMetrics;
  webhooks: Webhooks;
}

/**
 * Prometheus metrics and signed webhooks, fed by the coordinator's events: decisions and rollbacks as
 * they happen, everything else read at each scrape.
 */
export function buildObservers(b: Basics, s: Stores, a: Artifacts, t: Telemetry, d: Deployments, transport: Transport): Observers {
  const metrics = FleetMetrics.create({
    registry: a.promRegistry,
    phases: DEPLOYMENT_PHASES,
    sources: coordinatorMetricSources({
      sql: s.sql,
      counters: s.counters,
      connectedDevices: () => transport.connectedDevices(),
      devices: () => s.registry.all(),
      devicesWithAnomalies: () => s.anomalies.devices,
      telemetry: t.writer,
      downloads: a.downloads,
      liveDeployments: () => d.deployments.liveDeployments(),
      engineCounters: () => d.deployments.engineCounters(),
    }),
  });
  const webhooks = createWebhooks({
    sql: s.sql,
    config: b.config,
    timers: b.timers,
    now: () => b.clock.now(),
    logger: b.root.child({ module: 'webhooks' }),
    audit: s.audit,
    onAttempt: (outcome, seconds) => metrics.observeWebhook(outcome, seconds),
  });
  // Listeners run inside the engine's effects: the guard keeps their failures out of it.
  const guarded = (event: string, run: () => void): void => {
    try {
      run();
    } catch (err) {
      b.logger.error({ err, event }, 'metrics or webhook listener failed');
    }
  };
  s.events.on('decision', (decision) =>
    guarded('decision', () => {
      metrics.observeDecision(decision);
      webhooks.service.onDecision(decision);
    }),
  );
  s.events.on('audit', (e) =>
    guarded('audit', () => {
      if (e.action === 'deployment.rollback-started') metrics.observeRollback('started');
      if (e.action === 'deployment.rolled-back') metrics.observeRollback('finished');
      webhooks.service.onAudit(e);
    }),
  );
  return { metrics, webhooks };
}
