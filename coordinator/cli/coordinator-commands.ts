/**
 * `fleet coordinator start`: runs the coordinator in the foreground until SIGINT/SIGTERM (then exits 0).
 * `fleet coordinator status`: asks a running one where it listens (and waits for it to come up).
 * `fleet coordinator metrics`: its counters, since this start and over every run (admin API).
 */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, FleetError } from '@fleet/protocol/errors';
import { parseDuration } from '@fleet/firmware/duration';
import { DEFAULT_DATA_DIR, type CoordinatorConfigInput } from '../config.js';
import type { ConnectionOptions } from './connection.js';
import { addConnectionOptions, client } from './device-commands.js';
import { cliLogger, type LogFormat } from './cli-logger.js';
import { ago, remaining, table } from './format.js';

export function registerCoordinatorServiceCommands(program: Command): void {
  const coordinator = program.command('coordinator').description('the fleet coordinator service (broker, store, artifacts, admin API)');

  coordinator
    .command('start')
    .description('run the coordinator (embedded MQTT broker, SQLite store, HTTP admin API and artifact server)')
    .option('--data-dir <dir>', 'data directory (default: FLEET_DATA_DIR or .fleet)')
    .option('--store <url>', 'keep everything in PostgreSQL (postgres://user:password@host/db) instead of SQLite in the data dir (FLEET_STORE)')
    .option('--mqtt-port <n>', 'MQTT port; 0 = any free port, auto = the port of the previous run in this data dir (default 1883)')
    .option('--http-port <n>', 'admin API and artifact port; 0 = any free port, auto = the previous run\'s (default 8080)')
    .option('--host <addr>', 'address to listen on (default 127.0.0.1; 0.0.0.0 for devices on the network)')
    .option('--broker <url>', 'use an existing broker (mqtt://… or mqtts://…) instead of the embedded one')
    .option('--artifacts-dir <dir>', 'firmware images; one directory every replica shares (default: artifacts in the data dir; FLEET_ARTIFACTS_DIR)')
    .option('--replica-id <name>', 'this replica\'s name among coordinators on one PostgreSQL (default: host and data dir; FLEET_REPLICA_ID)')
    .option('--broker-credentials <file>', 'the coordinator\'s account on that broker, from `fleet broker mosquitto-config` (FLEET_BROKER_CREDENTIALS)')
    .option('--broker-accounts <kind>', 'who keeps devices\' accounts on that broker: mosquitto-dynsec (the coordinator) or none (default: what the credentials file says)')
    .option('--public-url <url>', 'base URL devices download artifacts from')
    .option('--signing-key <file>', 'Ed25519 signing key (PEM); generated in development when absent')
    .option('--mqtt-tls-cert <file>', 'PEM certificate (chain) for MQTT over TLS (FLEET_TLS_CERT)')
    .option('--mqtt-tls-key <file>', 'PEM private key for MQTT over TLS (FLEET_TLS_KEY)')
    .option('--mqtt-client-ca <file>', 'CA that signs device certificates: require one, CN = device id (FLEET_TLS_CLIENT_CA)')
    .option('--http-tls-cert <file>', 'PEM certificate (chain) for HTTPS: admin API and artifacts (FLEET_HTTP_TLS_CERT)')
    .option('--http-tls-key <file>', 'PEM private key for HTTPS (FLEET_HTTP_TLS_KEY)')
    .option('--allow-anonymous', 'development only, loopback only: accept devices without credentials (ghosts: never in a wave, no rollouts)')
    .option('--max-packet-bytes <n>', 'largest MQTT packet a device may send (default 131072)')
    .option('--cluster-redis <url>', 'cluster the embedded broker with other coordinators through this Redis, redis://host:port (FLEET_CLUSTER_REDIS)')
    .option('--log-level <level>', 'pino log level', 'info')
    .option('--log-format <format>', 'json, pretty, or auto: pretty on a terminal when pino-pretty is installed', 'auto')
    .action(async (opts: {
      dataDir?: string; store?: string; artifactsDir?: string; replicaId?: string; mqttPort?: string; httpPort?: string; host?: string; broker?: string; brokerCredentials?: string; brokerAccounts?: string; publicUrl?: string; signingKey?: string; logLevel: string; logFormat: string;
      mqttTlsCert?: string; mqttTlsKey?: string; mqttClientCa?: string; httpTlsCert?: string; httpTlsKey?: string;
      allowAnonymous?: boolean; maxPacketBytes?: string; clusterRedis?: string;
    }) => {
      const { createCoordinator } = await import('../coordinator.js');
      if (!['json', 'pretty', 'auto'].includes(opts.logFormat)) throw new ConfigError(`--log-format must be json, pretty or auto, not ${opts.logFormat}`);
      const logger = await cliLogger(opts.logLevel, opts.logFormat as LogFormat);
      const config: Partial<CoordinatorConfigInput> = {
        ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
        ...(opts.store ? { store: opts.store } : {}),
        ...(opts.artifactsDir ? { artifactsDir: opts.artifactsDir } : {}),
        ...(opts.replicaId ? { cluster: { replicaId: opts.replicaId } } : {}),
        ...(opts.signingKey ? { signingKeyPath: opts.signingKey } : {}),
        ...(opts.allowAnonymous ? { allowAnonymousDevices: true } : {}),
      };
      const mqtt: Record<string, unknown> = {};
      // Passed as given: the config schema reads a number or `auto`.
      if (opts.mqttPort !== undefined) mqtt['port'] = opts.mqttPort;
      if (opts.host !== undefined) mqtt['host'] = opts.host;
      if (opts.broker !== undefined) mqtt['brokerUrl'] = opts.broker;
      if (opts.brokerCredentials !== undefined) mqtt['brokerCredentialsFile'] = opts.brokerCredentials;
      if (opts.brokerAccounts !== undefined) mqtt['brokerAccounts'] = opts.brokerAccounts;
      if (opts.mqttTlsCert !== undefined) mqtt['tlsCert'] = opts.mqttTlsCert;
      if (opts.mqttTlsKey !== undefined) mqtt['tlsKey'] = opts.mqttTlsKey;
      if (opts.mqttClientCa !== undefined) mqtt['tlsClientCa'] = opts.mqttClientCa;
      if (opts.maxPacketBytes !== undefined) mqtt['maxPacketBytes'] = Number(opts.maxPacketBytes);
      // FLEET_CLUSTER_NODE still names the node (it would be lost with the environment's cluster object).
      const node = process.env['FLEET_CLUSTER_NODE'];
      if (opts.clusterRedis !== undefined) mqtt['cluster'] = { redisUrl: opts.clusterRedis, ...(node ? { nodeName: node } : {}) };
      const http: Record<string, unknown> = {};
      if (opts.httpPort !== undefined) http['port'] = opts.httpPort;
      if (opts.host !== undefined) http['host'] = opts.host;
      if (opts.publicUrl !== undefined) http['publicUrl'] = opts.publicUrl;
      if (opts.httpTlsCert !== undefined) http['tlsCert'] = opts.httpTlsCert;
      if (opts.httpTlsKey !== undefined) http['tlsKey'] = opts.httpTlsKey;
      if (Object.keys(mqtt).length) (config as Record<string, unknown>)['mqtt'] = mqtt;
      if (Object.keys(http).length) (config as Record<string, unknown>)['http'] = http;
      const { runDaemon } = await import('@fleet/runtime/daemon');
      // The signal handlers are in place before start(), so before the banner: a supervisor that waits
      // for the banner may signal at once (and a signal during the start stops it once it is up).
      await runDaemon({
        logger,
        start: async () => {
          const c = await createCoordinator({ config, env: process.env, logger });
          console.error(`fleet coordinator (${c.config.env}) — MQTT ${c.mqttUrl}, admin API ${c.httpUrl}, data ${c.config.dataDir}`);
          console.error(`dashboard ${c.httpUrl}/ — log in with a user's password or API token`);
          if (c.config.env === 'development') {
            const dir = resolve(c.config.dataDir);
            const found = dir === resolve(DEFAULT_DATA_DIR) ? 'from this directory, or' : 'with --data-dir, or from';
            console.error(`operator token written to ${join(dir, 'admin.json')}; \`fleet\` commands find it ${found} anywhere after \`export FLEET_DATA_DIR=${dir}\``);
          }
          return () => c.stop();
        },
      });
    });

  addConnectionOptions(
    coordinator.command('metrics').description('counters since the coordinator started and over every run on its data directory').option('--json', 'machine-readable output'),
  ).action(async (opts: ConnectionOptions & { json?: boolean }) => {
    const m = await client(opts).get<MetricsView>('/v1/metrics');
    if (opts.json) return console.log(JSON.stringify(m, null, 2));
    const names = [...new Set([...Object.keys(m.totals ?? {}), ...Object.keys(m.counters)])].sort();
    console.log(`since this start (${ago(m.startedAt ?? null)}) and in total over every run on this data directory${m.totalsSince ? ` (since ${new Date(m.totalsSince).toISOString().slice(0, 16).replace('T', ' ')})` : ''}`);
    console.log(table(['counter', 'since start', 'total'], names.map((n) => [n, m.counters[n] ?? 0, m.totals?.[n] ?? m.counters[n] ?? 0])));
    const unclean = m.totals?.['coordinator.unclean-stops'] ?? 0;
    if (unclean > 0) console.log(`${unclean} earlier run(s) ended without a clean stop: telemetry they had not stored yet was lost without being counted`);
    if (m.downloads) console.log(`downloads in progress: ${m.downloads.active}`);
  });
  registerCoordinatorStatusCommand(coordinator);
}

interface MetricsView {
  startedAt?: number;
  counters: Record<string, number>;
  totals?: Record<string, number>;
  totalsSince?: number | null;
  downloads?: { active: number };
}

interface InfoView {
  env: string;
  version: string;
  startedAt: number;
  now: number;
  mqttUrl: string;
  httpUrl: string;
}

/** `fleet coordinator status [--wait 30s]`: is the coordinator up, and where; waits for it to come up. */
function registerCoordinatorStatusCommand(coordinator: Command): void {
  addConnectionOptions(
    coordinator
      .command('status')
      .description('whether the coordinator answers, its endpoints and fleet size; --wait polls until it does')
      .option('--wait <duration>', 'keep trying this long while it is starting (e.g. 30s)')
      .option('--json', 'machine-readable output'),
  ).action(async (opts: ConnectionOptions & { wait?: string; json?: boolean }) => {
    const deadline = Date.now() + (opts.wait !== undefined ? parseDuration(opts.wait) : 0);
    const [info, metrics] = await retryWhileStarting(deadline, async () => {
      const api = client(opts);
      return [await api.get<InfoView>('/v1/info'), await api.get<{ devices: { known: number; connected: number | null } }>('/v1/metrics')] as const;
    });
    if (opts.json) return console.log(JSON.stringify({ ...info, devices: metrics.devices }, null, 2));
    console.log(`coordinator ${info.version} (${info.env}) up ${remaining(info.now - info.startedAt)}: admin API ${info.httpUrl}, MQTT ${info.mqttUrl}`);
    console.log(`devices: ${metrics.devices.known} known, ${metrics.devices.connected ?? '?'} connected`);
  });
}

/** Runs `attempt` until it succeeds; while the coordinator is not up yet (no admin file, refused) retries until `deadline`. */
export async function retryWhileStarting<T>(deadline: number, attempt: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      const starting = err instanceof FleetError && (err.code === 'no-coordinator' || err.code === 'unreachable');
      if (!starting || Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
