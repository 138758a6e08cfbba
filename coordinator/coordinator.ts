/**
 * The Coordinator: one service with an embedded MQTT broker (or a client of an external one), a SQLite
 * store, the fleet registry, telemetry ingest, the artifact server, the admin API and the rollout
 * engine runner. `createCoordinator(options)` is the composition root of coordinator/: it builds the
 * parts in dependency order (coordinator-parts.ts), opens the data directory, resumes every deployment
 * where it stood, starts listening and returns one object whose surface is the commands and queries
 * below. `stop()` is safe to call twice.
 */
import { mkdirSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import { systemClock, type Clock } from '@fleet/protocol/clock';
import { errorMessage } from '@fleet/protocol/errors';
import { FLAGS_TOPIC } from '@fleet/protocol/topics';
import { encodeMessage } from '@fleet/protocol/parse';
import { packageVersion } from '@fleet/runtime/package-version';
import { loadConfig, type CoordinatorConfigInput } from './config.js';
import { withBrokerLogin } from './broker/broker-login.js';
import type { Coordinator } from './coordinator-api.js';
import { portOf, readPorts, writeAdminFile, writePorts } from './data-dir.js';
import { DataDirLock } from './data-dir-lock.js';
import type { GateAnalyzer } from './gate/analyzer.js';
import { Housekeeping } from './housekeeping.js';
import { registerDeviceRoutes } from './admin/device-routes.js';
import { registerFirmwareRoutes } from './admin/firmware-routes.js';
import { registerSystemRoutes } from './admin/system-routes.js';
import { registerDeploymentRoutes } from './admin/deployment-routes.js';
import { registerSessionRoutes } from './admin/session-routes.js';
import { registerUserRoutes } from './admin/user-routes.js';
import { registerMetricsRoute } from './prometheus/metrics-route.js';
import { registerWebhookRoutes } from './webhooks/webhook-routes.js';
import { StaticConsole } from './console/static-console.js';
import { mountConsole } from './console/mount-console.js';
import {
  buildAccounts,
  buildArtifacts,
  buildDeployments,
  buildObservers,
  buildTransport,
  connectIngest,
  openStores,
  startTelemetry,
  type Basics,
} from './coordinator-parts.js';
import { RunningCoordinator, coordinatorMetrics, type CoordinatorParts } from './running-coordinator.js';
import { buildReplication, defaultReplicaId, registerClusterRoutes } from './cluster/replica-parts.js';

/** Reported by /v1/health: the version in package.json. */
export const COORDINATOR_VERSION = packageVersion(import.meta.url);

export type { Coordinator } from './coordinator-api.js';

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
  /** Randomness for bucket offsets and deployment ids. Default Math.random. */
  random?: () => number;
}

/**
 * Opens the data directory, resumes deployments and starts the broker and HTTP listeners. Refuses
 * (DataDirInUseError) when another coordinator runs on the same data directory.
 */
export async function createCoordinator(options: CoordinatorOptions = {}): Promise<Coordinator> {
  const config = withBrokerLogin(loadConfig(options.config ?? {}, options.env ?? {}));
  const timers = options.timers ?? systemClock;
  mkdirSync(config.dataDir, { recursive: true });
  // Before anything in the directory is read or written: a second coordinator would resume the same
  // deployments and overwrite admin.json.
  const lock = DataDirLock.acquire(config.dataDir, timers.now());
  const root = options.logger ?? pino({ level: 'info' });
  const basics: Basics = {
    config,
    clock: options.clock ?? systemClock,
    timers,
    root,
    logger: root.child({ module: 'coordinator' }),
    lock,
    previousPorts: readPorts(config.dataDir),
    env: options.env ?? {},
  };
  // What is open so far, closed in reverse if a later step fails (a port in use, a broker unreachable),
  // so the caller can retry.
  const opened: (() => unknown)[] = [() => lock.release({ stoppedAt: timers.now() })];
  try {
    const consolePage = await StaticConsole.load(config.http.consoleDir);
    const stores = await openStores(basics);
    opened.push(() => stores.sql.close(), () => stores.telemetrySql.close());
    const telemetry = await startTelemetry(basics, stores);
    opened.push(() => telemetry.writer.stop());
    const artifacts = await buildArtifacts(basics, stores);
    opened.push(() => artifacts.http.stop());
    const transport = buildTransport(basics, stores);
    opened.push(() => transport.stop());
    // On PostgreSQL, one of several replicas: the rollout engine runs only while this one leads.
    const replication = buildReplication(basics, stores, artifacts);
    opened.push(() => replication?.stop());
    const deployments = await buildDeployments(basics, stores, artifacts, transport, { analyzers: options.analyzers, random: options.random, leadership: replication });
    opened.push(() => deployments.canary.stop());
    opened.push(() => deployments.deployments.stop());
    const accounts = buildAccounts(basics, stores, transport);
    opened.push(() => accounts.stop());
    connectIngest(basics, stores, telemetry, deployments, transport, accounts);
    const observers = buildObservers(basics, stores, artifacts, telemetry, deployments, transport);
    opened.push(() => observers.webhooks.dispatcher.stop());
    const consoleFeed = mountConsole({
      api: artifacts.api,
      authenticator: artifacts.access,
      page: consolePage,
      events: stores.events,
      auditLog: stores.auditLog,
      registry: stores.registry,
      anomalies: stores.anomalies,
      deployments: deployments.deployments,
      telemetrySql: stores.telemetrySql,
      rollupSlotMs: config.telemetry.rollupSlotMs,
      timers,
      now: () => basics.clock.now(),
      logger: root.child({ module: 'console' }),
    });
    opened.push(() => consoleFeed.stop());
    const parts: CoordinatorParts = {
      ...basics,
      ...stores,
      ...artifacts,
      ...deployments,
      ...observers,
      telemetry: telemetry.writer,
      transport,
      accounts,
      housekeeping: new Housekeeping({
        ...stores,
        inbox: deployments.inbox,
        telemetry: telemetry.writer,
        clock: basics.clock,
        timers,
        logger: basics.logger,
      }),
      console: consoleFeed,
      replication,
      startedAt: timers.now(),
    };
    registerRoutes(parts);
    await serve(parts);
    return new RunningCoordinator(parts);
  } catch (err) {
    for (const close of opened.reverse()) await Promise.resolve().then(close).catch(() => undefined);
    throw err;
  }
}

/** The admin API: system, devices, firmware, deployments, sessions, users, flags and canary analysis, metrics, webhooks. */
function registerRoutes(p: CoordinatorParts): void {
  const { api, clock, audit } = p;
  const now = (): number => clock.now();
  registerSystemRoutes(api, {
    env: p.config.env,
    version: COORDINATOR_VERSION,
    startedAt: clock.now(),
    now,
    metrics: () => ({ ...coordinatorMetrics(p) }),
    auditLog: p.auditLog,
    endpoints: () => ({ mqttUrl: p.transport.url, httpUrl: p.http.url }),
  });
  registerDeviceRoutes(api, { registry: p.registry, credentials: p.credentials, accounts: p.accounts, now, audit: p.auditNow, deviceDeployments: (id) => p.deployments.deviceHistory(id), anomalies: p.anomalies });
  registerFirmwareRoutes(api, { store: p.artifacts, firmware: p.firmware, audit: p.auditNow });
  registerDeploymentRoutes(api, { rollouts: p.deployments });
  registerSessionRoutes(api, { access: p.access, auditLog: p.auditLog, now });
  registerUserRoutes(api, { users: p.users, sessions: p.sessions, audit });
  p.canary.registerRoutes(api);
  registerMetricsRoute(api, { metrics: p.metrics, public: p.config.metricsPublic });
  registerWebhookRoutes(api, { webhooks: p.webhooks.service });
  registerClusterRoutes(api, { replication: p.replication, replicaId: p.config.cluster.replicaId ?? defaultReplicaId(p.config.dataDir) });
}

/**
 * Starts listening. Retained manifests are restored and deployments resumed before devices can
 * connect: they then see the state once, as retained messages, instead of a second live copy of a
 * manifest they hold.
 */
async function serve(p: CoordinatorParts): Promise<void> {
  const { config, transport, http, deployments, logger } = p;
  await http.start();
  // Devices' broker accounts match the store before the coordinator subscribes there.
  await p.accounts.start();
  await transport.prepare();
  const restored = config.mqtt.brokerUrl ? 0 : await p.publisher.restore();
  transport.onRetainedLost?.(() => {
    p.publisher.restore().then(
      (n) => logger.warn({ restoredRetained: n }, 'retained messages published again after the broker lost them'),
      (err: unknown) => logger.error({ err: errorMessage(err) }, 'cannot publish the retained messages again; they return at the next start'),
    );
  });
  await p.publisher.retain(FLAGS_TOPIC, encodeMessage(p.canary.deviceFlagsMessage()));
  // Replicated: the leader resumes deployments and replays the shared inbox when elected, below.
  const replayed = p.replication ? [] : await p.inbox.pending();
  if (!p.replication) {
    await deployments.start();
    // Statuses acknowledged just before a crash may not have reached the engine's store: replay them.
    for (const m of replayed) deployments.replayStatus(m);
    await deployments.idle();
  }
  await transport.start();
  writePorts(config.dataDir, { mqtt: portOf(transport.url), http: http.portNumber });
  if (config.env === 'development') await writeAdminFile(config.dataDir, { url: http.url, token: p.adminToken, mqttUrl: transport.url });
  p.lock.announce({ adminUrl: http.url, mqttUrl: transport.url });
  p.housekeeping.start();
  p.integrity.startScan();
  p.webhooks.dispatcher.start();
  await p.replication?.start({
    work: { start: () => deployments.start(), stop: () => deployments.stopEngine() },
    feedStatus: (m) => deployments.replayStatus(m),
    adminUrl: () => http.url,
  });
  if (config.metricsPublic) logger.warn({ path: '/metrics' }, 'metrics are served without a token (FLEET_METRICS_PUBLIC)');
  if (config.allowAnonymousDevices) {
    logger.warn({ mqttUrl: transport.url }, 'devices without credentials are accepted (development, loopback only): they are ghosts, in no wave; provision real devices');
  }
  logger.info({ env: config.env, mqttUrl: transport.url, httpUrl: http.url, dataDir: config.dataDir, restoredRetained: restored, replayedStatuses: replayed.length, keyId: p.key.keyid }, 'coordinator started');
}

