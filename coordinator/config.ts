/**
 * Coordinator configuration per environment (APP_ENV = development | staging | production), validated
 * with zod. Sources, later wins: defaults → environment variables → explicit options (CLI flags,
 * embedding code). Staging and production refuse anonymous devices, a missing signing key, a weak
 * operator token and plaintext listeners beyond loopback (the development key is refused by its
 * fingerprint when it is loaded, signing.ts). Pure apart from reading `env`.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '@fleet/protocol/errors';
import { formatIssues } from '@fleet/protocol/parse';
import { plaintextPaths } from './listener-security.js';
import { MIN_TOKEN_LENGTH, TOKEN_ADVICE, weakTokenReason } from './token-strength.js';

export const AppEnvSchema = z.enum(['development', 'staging', 'production']);

const PortSchema = z.coerce.number().int().min(0).max(65535);

/**
 * A listening port: a number (0 = any free port, chosen afresh at every start), or `auto` = the port
 * this data directory's previous run bound (recorded in `ports.json`), else a free one. `auto` is for
 * coordinators restarted on ephemeral ports (tests, the simulator): devices and the artifact URLs in
 * published manifests keep pointing at the port they know.
 */
export const ListenPortSchema = z.union([z.literal('auto'), PortSchema]);
export type ListenPort = z.infer<typeof ListenPortSchema>;

const DEFAULT_MAX_PACKET_BYTES = 128 * 1024;
const DEFAULT_TELEMETRY_LIMIT = { perSecond: 5, burst: 100 };
const DEFAULT_CONTROL_LIMIT = { perSecond: 20, burst: 200 };

export const CoordinatorConfigSchema = z.object({
  env: AppEnvSchema.default('development'),
  dataDir: z.string().min(1),
  /**
   * Where deployments, devices, users, audit and telemetry are kept: absent = SQLite files in the data
   * directory (the default); a `postgres://user:password@host:port/database` URL = that PostgreSQL.
   */
  store: z
    .string()
    .regex(/^postgres(ql)?:\/\/./, 'store must be a postgres:// URL (omit it for SQLite in the data directory)')
    .optional(),
  /**
   * Firmware images. Replicated coordinators share one directory (a shared volume): any replica serves
   * any download, an upload through one is seen by all. Default: `artifacts` in the data directory.
   */
  artifactsDir: z.string().min(1).optional(),
  /** Replicated coordinators (a PostgreSQL store and an external broker): docs/replication.md. */
  cluster: z
    .object({
      /** This replica's name in the leadership row and logs. Default: host name and data directory. */
      replicaId: z.string().min(1).max(200).optional(),
      /** The shared-subscription group that splits device telemetry between replicas. */
      shareGroup: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'share group must be 1–64 letters, digits, _ or -').default('fleet-coordinators'),
      /** A follower tries to become leader this often (ms). Default 1000. */
      retryMs: z.coerce.number().int().min(50).default(1000),
      /** A leader whose heartbeat is older than this (ms) is taken over. Default 10000. */
      leaseMs: z.coerce.number().int().min(1000).default(10_000),
    })
    .default({ shareGroup: 'fleet-coordinators', retryMs: 1000, leaseMs: 10_000 }),
  mqtt: z
    .object({
      /** 0 picks a free port; `auto` reuses the previous run's (see ListenPortSchema). Default 1883. */
      port: ListenPortSchema.default(1883),
      host: z.string().default('127.0.0.1'),
      /** PEM files; when both are set the embedded broker speaks MQTT over TLS. */
      tlsCert: z.string().optional(),
      tlsKey: z.string().optional(),
      /**
       * CA certificate(s) (PEM) that sign device client certificates. When set, the broker requires a
       * certificate from every device, and its subject CN must be the device id it logs in as (mTLS).
       */
      tlsClientCa: z.string().optional(),
      /** `mqtt://…` or `mqtts://…`: use an existing broker instead of the embedded one. */
      brokerUrl: z.string().regex(/^mqtts?:\/\//, 'must start with mqtt:// or mqtts://').optional(),
      brokerUsername: z.string().optional(),
      brokerPassword: z.string().optional(),
      /**
       * A JSON file `{username, password, accounts?}` with the coordinator's broker account, as
       * `fleet broker mosquitto-config` writes it (`coordinator-account.json`); read at start.
       */
      brokerCredentialsFile: z.string().optional(),
      /**
       * Who keeps devices' broker accounts: `mosquitto-dynsec`, the coordinator through Mosquitto's
       * dynamic-security plugin (docs/mosquitto.md); `none`, the operator (another broker). Default: what
       * the credentials file says, else `none`. The embedded broker reads the store itself.
       */
      brokerAccounts: z.enum(['none', 'mosquitto-dynsec']).optional(),
      /**
       * Largest MQTT packet a device may send, in bytes, checked from the packet's fixed header before
       * its body is read (embedded broker). The largest device message, telemetry with 20 log lines of
       * 512 characters, is under 64 KiB. Default 128 KiB.
       */
      maxPacketBytes: z.number().int().min(1024).max(268_435_455).default(DEFAULT_MAX_PACKET_BYTES),
      /** A connection that has not sent a complete CONNECT within this time is closed. Default 10 s. */
      connectTimeoutMs: z.number().int().positive().default(10_000),
      /**
       * CONNECT admission (embedded broker, docs/embedded-cluster.md): at most `maxConnecting` CONNECTs
       * in progress at once and, when `perSecond` > 0, that many new ones a second; the rest are refused
       * at once with CONNACK 3 (server unavailable), before any credential or session work, and the
       * devices back off and retry. Default 1,000 at once, no rate limit.
       */
      admission: z
        .object({
          maxConnecting: z.coerce.number().int().min(1).default(1_000),
          perSecond: z.coerce.number().min(0).default(0),
        })
        .optional(),
      /**
       * The embedded cluster (docs/embedded-cluster.md): this coordinator's embedded broker shares
       * messages, sessions, retained messages and QoS 1 queues with the other nodes through one Redis.
       * Absent: the embedded broker keeps everything in memory (the default).
       */
      cluster: z
        .object({
          /** `redis://host:port[/db]` or `rediss://…` (TLS); one Redis per cluster. */
          redisUrl: z.string().regex(/^rediss?:\/\/[^\s]+$/, 'must be a redis:// or rediss:// URL'),
          /** A readable prefix of this node's broker id in logs (a random suffix keeps ids unique). */
          nodeName: z.string().regex(/^[A-Za-z0-9._-]{1,32}$/, 'must be 1-32 letters, digits, . _ -').optional(),
        })
        .optional(),
    })
    .default({ port: 1883, host: '127.0.0.1', maxPacketBytes: DEFAULT_MAX_PACKET_BYTES, connectTimeoutMs: 10_000 }),
  http: z
    .object({
      /** Admin API and artifact downloads. 0 picks a free port; `auto` reuses the previous run's. Default 8080. */
      port: ListenPortSchema.default(8080),
      host: z.string().default('127.0.0.1'),
      /** Base URL devices download artifacts from; default http(s)://{host}:{port}. */
      publicUrl: z.url().optional(),
      /** PEM files; when both are set the admin API and artifact downloads are served over HTTPS. */
      tlsCert: z.string().optional(),
      tlsKey: z.string().optional(),
      /** Concurrent artifact downloads served; the rest wait in the queue below. Default 64. */
      maxConcurrentDownloads: z.coerce.number().int().positive().default(64),
      /**
       * Download requests that may wait, first come first served, for a slot; beyond it 503 +
       * Retry-After. 0 refuses at once when every slot is taken. Default 1024.
       */
      maxQueuedDownloads: z.coerce.number().int().nonnegative().default(1024),
      /** Longest wait for a slot, then 503 + Retry-After; keep it below the agents' idle timeout. Default 20 s. */
      downloadQueueWaitMs: z.coerce.number().int().positive().default(20_000),
      /** Concurrent downloads one authenticated device may hold; the rest get 429 + Retry-After. Default 2. */
      maxDownloadsPerDevice: z.coerce.number().int().positive().default(2),
      /**
       * A download whose client accepts no bytes for this long is dropped and its slot freed. The
       * server sees progress as the kernel takes bytes, in steps of up to a third of the socket's send
       * buffer: keep this above that step at the slowest link's rate. Default 30 s.
       */
      downloadIdleTimeoutMs: z.coerce.number().int().positive().default(30_000),
      /**
       * Slowest transfer kept: a download moving fewer bytes per second than this, averaged over each
       * `downloadRateWindowMs`, is dropped (the agent resumes with Range). 0 turns the check off.
       * Default 1 KiB/s over 60 s windows.
       */
      downloadMinBytesPerSecond: z.coerce.number().int().nonnegative().default(1024),
      downloadRateWindowMs: z.coerce.number().int().positive().default(60_000),
      /** The built operator console served at `/`; default dist/console-app of this package (`npm run build`). */
      consoleDir: z.string().optional(),
    })
    .default({
      port: 8080,
      host: '127.0.0.1',
      maxConcurrentDownloads: 64,
      maxQueuedDownloads: 1024,
      downloadQueueWaitMs: 20_000,
      maxDownloadsPerDevice: 2,
      downloadIdleTimeoutMs: 30_000,
      downloadMinBytesPerSecond: 1024,
      downloadRateWindowMs: 60_000,
    }),
  /**
   * Accept devices without credentials (identity = client id): an explicit opt-in, development only,
   * on a loopback listener only, never for a provisioned id. Such "ghost" devices never enter a wave.
   * Default false.
   */
  allowAnonymousDevices: z.boolean().default(false),
  /**
   * Per-device message rates the coordinator accepts (token buckets, in the coordinator's clock time);
   * past them the device's messages are shed, counted and logged, and nobody else's are. An agent
   * sends one telemetry message a minute and a few dozen statuses per update.
   */
  deviceLimits: z
    .object({
      telemetry: z.object({ perSecond: z.number().positive(), burst: z.number().int().positive() }).default(DEFAULT_TELEMETRY_LIMIT),
      /** Hello, status and presence messages together. */
      control: z.object({ perSecond: z.number().positive(), burst: z.number().int().positive() }).default(DEFAULT_CONTROL_LIMIT),
    })
    .default({ telemetry: DEFAULT_TELEMETRY_LIMIT, control: DEFAULT_CONTROL_LIMIT }),
  /**
   * Serve GET /metrics without a token (FLEET_METRICS_PUBLIC=1), for a scraper that cannot hold one.
   * Default false: Prometheus sends the operator token as a bearer token.
   */
  metricsPublic: z.boolean().default(false),
  /** Webhook deliveries (coordinator/webhooks/): bounded attempts, exponential backoff with jitter. */
  webhooks: z
    .object({
      /** Attempts per event and webhook before it is given up (and recorded as failed). Default 10. */
      maxAttempts: z.number().int().min(1).max(50).default(10),
      /** Wait before the first retry; doubled per attempt, with jitter. Default 5 s. */
      backoffMs: z.number().int().positive().default(5_000),
      /** Longest wait between attempts. Default 30 minutes. */
      backoffMaxMs: z.number().int().positive().default(30 * 60_000),
      /** A receiver that has not answered within this is a failed attempt. Default 10 s. */
      timeoutMs: z.number().int().positive().default(10_000),
      /** Deliveries in flight at once, over every webhook. Default 4. */
      concurrency: z.number().int().min(1).max(64).default(4),
    })
    .default({ maxAttempts: 10, backoffMs: 5_000, backoffMaxMs: 30 * 60_000, timeoutMs: 10_000, concurrency: 4 }),
  /** Ed25519 private key (PEM). In development a key is generated in the data dir when absent. */
  signingKeyPath: z.string().optional(),
  /**
   * Operator bearer token for the admin API. Generated in development when absent; staging and
   * production need 32+ characters and 128+ estimated bits (token-strength.ts).
   */
  adminToken: z.string().min(16, `admin token must be at least 16 characters (${MIN_TOKEN_LENGTH} in staging and production)`).optional(),
  /**
   * log2 of scrypt's N for user passwords (people choose them). Device secrets are generated (192
   * random bits) and stored as SHA-256, whatever this says; one still stored as scrypt from before is
   * checked at the cost it was stored with, once. Production requires >= 14.
   */
  credentialCost: z.number().int().min(4).max(20).default(14),
  /** Web console sessions: end after `idleMs` unused (default 1 h), `maxMs` after login at the latest (default 12 h). */
  sessions: z
    .object({ idleMs: z.coerce.number().int().positive().default(3_600_000), maxMs: z.coerce.number().int().positive().default(12 * 3_600_000) })
    .default({ idleMs: 3_600_000, maxMs: 12 * 3_600_000 }),
  telemetry: z
    .object({
      /**
       * Telemetry is committed to telemetry.db at most this long (real time) after it arrived. Parsing
       * and storing run on the telemetry thread, never on the broker's.
       */
      flushIntervalMs: z.number().int().positive().default(200),
      /**
       * Waiting telemetry messages that trigger a commit before the interval ends. Bigger commits
       * amortise the per-device rollup, samples and counter rows, which are most of the storage cost.
       */
      maxBatch: z.number().int().positive().default(10_000),
      /**
       * Hard bound on telemetry waiting or being stored (memory). Past it, messages are dropped and
       * counted as `telemetry.dropped` until commits catch up. Statuses never go through this queue.
       */
      maxQueue: z.number().int().positive().default(50_000),
      rollupSlotMs: z.number().int().positive().default(60_000),
      rawRetentionMs: z.number().int().positive().default(48 * 3600_000),
      /** A canary that sends nothing for this long (clock time) after installing counts as silent. */
      silentAfterMs: z.number().int().positive().default(5 * 60_000),
      /**
       * Clock time after each canary device's commit whose continuous metrics (CPU, memory, …) the gate
       * leaves out: boot-time spikes after the update's reboot. Event counters and silence still count.
       */
      warmUpMs: z.number().int().nonnegative().default(5 * 60_000),
    })
    .default({ flushIntervalMs: 200, maxBatch: 10_000, maxQueue: 50_000, rollupSlotMs: 60_000, rawRetentionMs: 48 * 3600_000, silentAfterMs: 5 * 60_000, warmUpMs: 5 * 60_000 }),
});
export type CoordinatorConfig = z.infer<typeof CoordinatorConfigSchema>;
export type CoordinatorConfigInput = z.input<typeof CoordinatorConfigSchema>;

/** Where the development signing key is generated (staging and production refuse it by fingerprint). */
export function devSigningKeyPath(dataDir: string): string {
  return join(dataDir, 'keys', 'dev-signing.key');
}

/** File a development coordinator writes `{url, token}` to, for CLIs on the same machine. */
export function adminFilePath(dataDir: string): string {
  return join(dataDir, 'admin.json');
}

export const DEFAULT_DATA_DIR = '.fleet';

/** Reads FLEET_* variables into a partial config. */
export function configFromEnv(env: Record<string, string | undefined>): Partial<CoordinatorConfigInput> {
  const out: Record<string, unknown> = {};
  if (env['APP_ENV']) out['env'] = env['APP_ENV'];
  if (env['FLEET_DATA_DIR']) out['dataDir'] = env['FLEET_DATA_DIR'];
  if (env['FLEET_STORE']) out['store'] = env['FLEET_STORE'];
  if (env['FLEET_ARTIFACTS_DIR']) out['artifactsDir'] = env['FLEET_ARTIFACTS_DIR'];
  const cluster: Record<string, unknown> = {};
  if (env['FLEET_REPLICA_ID']) cluster['replicaId'] = env['FLEET_REPLICA_ID'];
  if (env['FLEET_LEADER_LEASE_MS']) cluster['leaseMs'] = env['FLEET_LEADER_LEASE_MS'];
  if (env['FLEET_LEADER_RETRY_MS']) cluster['retryMs'] = env['FLEET_LEADER_RETRY_MS'];
  if (Object.keys(cluster).length) out['cluster'] = cluster;
  const mqtt: Record<string, unknown> = {};
  if (env['FLEET_MQTT_PORT']) mqtt['port'] = env['FLEET_MQTT_PORT'];
  if (env['FLEET_MQTT_HOST']) mqtt['host'] = env['FLEET_MQTT_HOST'];
  if (env['FLEET_TLS_CERT']) mqtt['tlsCert'] = env['FLEET_TLS_CERT'];
  if (env['FLEET_TLS_KEY']) mqtt['tlsKey'] = env['FLEET_TLS_KEY'];
  if (env['FLEET_TLS_CLIENT_CA']) mqtt['tlsClientCa'] = env['FLEET_TLS_CLIENT_CA'];
  if (env['FLEET_BROKER_URL']) mqtt['brokerUrl'] = env['FLEET_BROKER_URL'];
  if (env['FLEET_BROKER_USERNAME']) mqtt['brokerUsername'] = env['FLEET_BROKER_USERNAME'];
  if (env['FLEET_BROKER_PASSWORD']) mqtt['brokerPassword'] = env['FLEET_BROKER_PASSWORD'];
  if (env['FLEET_BROKER_CREDENTIALS']) mqtt['brokerCredentialsFile'] = env['FLEET_BROKER_CREDENTIALS'];
  if (env['FLEET_BROKER_ACCOUNTS']) mqtt['brokerAccounts'] = env['FLEET_BROKER_ACCOUNTS'];
  if (env['FLEET_MQTT_MAX_PACKET_BYTES']) mqtt['maxPacketBytes'] = Number(env['FLEET_MQTT_MAX_PACKET_BYTES']);
  const admission: Record<string, string> = {};
  if (env['FLEET_MQTT_MAX_CONNECTING']) admission['maxConnecting'] = env['FLEET_MQTT_MAX_CONNECTING'];
  if (env['FLEET_MQTT_CONNECTS_PER_SECOND']) admission['perSecond'] = env['FLEET_MQTT_CONNECTS_PER_SECOND'];
  if (Object.keys(admission).length) mqtt['admission'] = admission;
  if (env['FLEET_CLUSTER_REDIS']) mqtt['cluster'] = { redisUrl: env['FLEET_CLUSTER_REDIS'], ...(env['FLEET_CLUSTER_NODE'] ? { nodeName: env['FLEET_CLUSTER_NODE'] } : {}) };
  if (Object.keys(mqtt).length) out['mqtt'] = mqtt;
  const http: Record<string, unknown> = {};
  if (env['FLEET_HTTP_PORT']) http['port'] = env['FLEET_HTTP_PORT'];
  if (env['FLEET_HTTP_HOST']) http['host'] = env['FLEET_HTTP_HOST'];
  if (env['FLEET_PUBLIC_URL']) http['publicUrl'] = env['FLEET_PUBLIC_URL'];
  if (env['FLEET_HTTP_TLS_CERT']) http['tlsCert'] = env['FLEET_HTTP_TLS_CERT'];
  if (env['FLEET_HTTP_TLS_KEY']) http['tlsKey'] = env['FLEET_HTTP_TLS_KEY'];
  // Download bounds (artifact-server.ts).
  if (env['FLEET_MAX_DOWNLOADS']) http['maxConcurrentDownloads'] = env['FLEET_MAX_DOWNLOADS'];
  if (env['FLEET_MAX_DOWNLOADS_PER_DEVICE']) http['maxDownloadsPerDevice'] = env['FLEET_MAX_DOWNLOADS_PER_DEVICE'];
  if (env['FLEET_DOWNLOAD_IDLE_TIMEOUT_MS']) http['downloadIdleTimeoutMs'] = env['FLEET_DOWNLOAD_IDLE_TIMEOUT_MS'];
  if (env['FLEET_DOWNLOAD_MIN_BYTES_PER_S']) http['downloadMinBytesPerSecond'] = env['FLEET_DOWNLOAD_MIN_BYTES_PER_S'];
  if (env['FLEET_DOWNLOAD_RATE_WINDOW_MS']) http['downloadRateWindowMs'] = env['FLEET_DOWNLOAD_RATE_WINDOW_MS'];
  if (env['FLEET_CONSOLE_DIR']) http['consoleDir'] = env['FLEET_CONSOLE_DIR'];
  if (Object.keys(http).length) out['http'] = http;
  if (env['FLEET_SIGNING_KEY']) out['signingKeyPath'] = env['FLEET_SIGNING_KEY'];
  if (env['FLEET_ADMIN_TOKEN']) out['adminToken'] = env['FLEET_ADMIN_TOKEN'];
  // Load tests and development provision tens of thousands of devices; production refuses below 14.
  if (env['FLEET_CREDENTIAL_COST']) out['credentialCost'] = Number(env['FLEET_CREDENTIAL_COST']);
  const sessions: Record<string, unknown> = {};
  if (env['FLEET_SESSION_IDLE_MS']) sessions['idleMs'] = env['FLEET_SESSION_IDLE_MS'];
  if (env['FLEET_SESSION_MAX_MS']) sessions['maxMs'] = env['FLEET_SESSION_MAX_MS'];
  if (Object.keys(sessions).length) out['sessions'] = sessions;
  if (env['FLEET_METRICS_PUBLIC']) out['metricsPublic'] = env['FLEET_METRICS_PUBLIC'] === 'true' || env['FLEET_METRICS_PUBLIC'] === '1';
  if (env['FLEET_ALLOW_ANONYMOUS']) out['allowAnonymousDevices'] = env['FLEET_ALLOW_ANONYMOUS'] === 'true' || env['FLEET_ALLOW_ANONYMOUS'] === '1';
  return out;
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue;
    const prev = out[k];
    out[k] = typeof v === 'object' && v !== null && !Array.isArray(v) && typeof prev === 'object' && prev !== null
      ? merge(prev as Record<string, unknown>, v as Record<string, unknown>)
      : v;
  }
  return out;
}

/**
 * Builds and validates the configuration, then applies the per-environment rules. Throws ConfigError
 * naming the field and what to do.
 */
export function loadConfig(options: Partial<CoordinatorConfigInput>, env: Record<string, string | undefined> = {}): CoordinatorConfig {
  const merged = merge(merge({ dataDir: DEFAULT_DATA_DIR }, configFromEnv(env)), options);
  const parsed = CoordinatorConfigSchema.safeParse(merged);
  if (!parsed.success) throw new ConfigError(`coordinator configuration is invalid: ${formatIssues(parsed.error).join('; ')}`);
  const config = parsed.data;
  checkEnvironmentRules(config);
  return config;
}

/** True for an address that only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}

/** The rules that make staging and production safe by default. */
export function checkEnvironmentRules(config: CoordinatorConfig): void {
  const { env } = config;
  if ((config.mqtt.tlsCert === undefined) !== (config.mqtt.tlsKey === undefined)) {
    throw new ConfigError('set both FLEET_TLS_CERT and FLEET_TLS_KEY (or neither) for MQTT over TLS');
  }
  if ((config.http.tlsCert === undefined) !== (config.http.tlsKey === undefined)) {
    throw new ConfigError('set both FLEET_HTTP_TLS_CERT and FLEET_HTTP_TLS_KEY (or neither) for HTTPS');
  }
  if (config.mqtt.tlsClientCa !== undefined && (config.mqtt.tlsCert === undefined || config.mqtt.brokerUrl !== undefined)) {
    throw new ConfigError('FLEET_TLS_CLIENT_CA (device certificates) needs the embedded broker over TLS: set FLEET_TLS_CERT and FLEET_TLS_KEY, without FLEET_BROKER_URL');
  }
  if ((config.mqtt.brokerAccounts === 'mosquitto-dynsec' || config.mqtt.brokerCredentialsFile !== undefined) && config.mqtt.brokerUrl === undefined) {
    throw new ConfigError('broker accounts and credentials are for an external broker: give its URL with --broker (FLEET_BROKER_URL), or drop them to use the embedded broker');
  }
  if (config.mqtt.cluster !== undefined && config.mqtt.brokerUrl !== undefined) {
    throw new ConfigError('--cluster-redis (FLEET_CLUSTER_REDIS) clusters the embedded broker; with an external broker (FLEET_BROKER_URL) drop it: that broker is shared already');
  }
  if (config.allowAnonymousDevices) {
    if (config.mqtt.brokerUrl !== undefined) {
      throw new ConfigError('anonymous devices are an option of the embedded broker; an external broker (FLEET_BROKER_URL) decides who may connect itself');
    }
    if (!isLoopbackHost(config.mqtt.host)) {
      throw new ConfigError(`anonymous devices are accepted on a loopback listener only, not on ${config.mqtt.host}: listen on 127.0.0.1, or provision each device with \`fleet devices provision <id>\``);
    }
  }
  if (env === 'development') return;
  if (config.allowAnonymousDevices) {
    throw new ConfigError(`${env} refuses anonymous devices: unset FLEET_ALLOW_ANONYMOUS and provision each device with \`fleet devices provision <id>\``);
  }
  if (!config.signingKeyPath) {
    throw new ConfigError(`${env} needs a signing key: create one with \`fleet firmware keygen --out <dir>\` and set FLEET_SIGNING_KEY`);
  }
  if (!config.adminToken) {
    throw new ConfigError(`${env} needs an operator token: set FLEET_ADMIN_TOKEN to a random string of ${MIN_TOKEN_LENGTH}+ characters (${TOKEN_ADVICE})`);
  }
  const weak = weakTokenReason(config.adminToken);
  if (weak !== undefined) throw new ConfigError(`${env} refuses FLEET_ADMIN_TOKEN: ${weak}; ${TOKEN_ADVICE}`);
  const [plaintext] = plaintextPaths(config);
  if (plaintext !== undefined) throw new ConfigError(`${env} refuses ${plaintext}`);
  // Every device message crosses the cluster's Redis.
  const redis = config.mqtt.cluster?.redisUrl;
  if (redis !== undefined && redis.startsWith('redis://') && !isLoopbackHost(new URL(redis).hostname)) {
    throw new ConfigError(`${env} refuses a plaintext Redis beyond loopback (${new URL(redis).host}): device messages cross it; use rediss:// (Redis with TLS)`);
  }
  if (env === 'production' && config.credentialCost < 14) {
    throw new ConfigError(`production needs credentialCost >= 14 (scrypt N = 16384) for user passwords, not ${config.credentialCost}: raise FLEET_CREDENTIAL_COST (or credentialCost in the configuration file) to 14 or more, or leave it unset`);
  }
}
