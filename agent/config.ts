/**
 * The agent's configuration file (agent.json): a zod schema with defaults, and a loader that names
 * every bad field. Pure apart from `loadAgentConfig`, which reads the file.
 *
 * Durations accept milliseconds (number) or strings such as "30s", "10m", "2h".
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, errorMessage } from '@fleet/protocol/errors';
import { bucketOf } from '@fleet/protocol/bucket';
import { DeviceIdSchema, HardwareModelSchema, SemverSchema, TagSchema } from '@fleet/protocol/ids';
import { formatIssues } from '@fleet/protocol/parse';
import { parseDuration } from '@fleet/firmware/duration';
import { RaucBackendConfigSchema } from './slots/slot-backend-rauc.js';
import { TrybootBackendConfigSchema } from './slots/slot-backend-tryboot.js';
import { UbootBackendConfigSchema } from './slots/slot-backend-uboot.js';

/** A duration: milliseconds, or a string such as "30s", "10m", "2h". */
export const DurationSchema = z.union([z.number().int().nonnegative(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  try {
    return parseDuration(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not a duration like 500ms, 30s, 10m or 2h` });
    return z.NEVER;
  }
});

const BrokerUrlSchema = z.string().regex(/^(mqtts?|wss?):\/\/[^\s]+$/, { message: 'must be an mqtt://, mqtts://, ws:// or wss:// URL' });

const BrokerSchema = z.object({
  /**
   * mqtt://host:1883 or mqtts://host:8883 (ws/wss also accepted by mqtt.js), or a list of the nodes
   * of one cluster: the device starts at the node its id picks (so a fleet spreads evenly) and moves
   * to the next whenever a connection fails or ends (see brokerUrls).
   */
  url: z.union([BrokerUrlSchema, z.array(BrokerUrlSchema).min(1).max(32)]),
  username: z.string().min(1).optional(),
  /** Password, or better `passwordFile` (kept out of the config, mode 0600). */
  password: z.string().optional(),
  passwordFile: z.string().min(1).optional(),
  /** CA certificate (PEM) for mqtts://; defaults to the system store. */
  caFile: z.string().min(1).optional(),
  /** Client certificate and key (PEM) for mutual TLS. */
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  keepalive: DurationSchema.default(30_000),
  /** Reconnect backoff: full jitter between 0 and min(max, min · 2^n), so a fleet never stampedes. */
  reconnectMin: DurationSchema.default(1_000),
  reconnectMax: DurationSchema.default(60_000),
  connectTimeout: DurationSchema.default(30_000),
  /**
   * Publish presence (online, and the offline last will) retained. Handy for dashboards on a plain
   * broker, but Aedes scans every retained message on each subscribe, so with thousands of devices
   * retained presence makes every connect O(fleet). The coordinator does not need it. Default false.
   */
  retainPresence: z.boolean().default(false),
});

/**
 * Slot backend settings: `file` is built in; the hardware backends' settings are each backend module's
 * own schema, so a bad setting is refused when agent.json loads, not at the first update.
 */
const SlotsSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('file'),
    /** Directory holding slot-A.img, slot-B.img and the simulated bootloader's state. */
    dir: z.string().min(1),
    /** Trial boots the simulated bootloader allows before it falls back (1 = tryboot semantics). */
    trialBoots: z.number().int().min(1).max(10).default(1),
  }),
  /** The host injects the backend (the simulator's in-memory slots). */
  z.looseObject({ kind: z.literal('memory') }),
  UbootBackendConfigSchema,
  RaucBackendConfigSchema,
  TrybootBackendConfigSchema,
]);

const HealthCheckSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { message: 'must be 1-64 letters, digits, . _ -' }),
  /** argv (no shell) or a string run by /bin/sh -c. Exit 0 = pass. */
  command: z.union([z.array(z.string().min(1)).min(1), z.string().min(1)]),
  timeout: DurationSchema.default(30_000),
});

export const AgentConfigSchema = z.object({
  deviceId: DeviceIdSchema,
  hardwareModel: HardwareModelSchema,
  tags: z.array(TagSchema).max(32).default([]),
  /** Version of the firmware the device was flashed with; used only until the agent has state. */
  firmwareVersion: SemverSchema,
  /** Anti-rollback floor the device starts with (it only ever rises). */
  securityFloor: z.number().int().min(0).default(0),
  broker: BrokerSchema,
  /** Directory of trusted *.pub keys (and optional trust.json with a threshold). */
  trustStoreDir: z.string().min(1),
  /** State, partial downloads and logs; must survive reboots. */
  dataDir: z.string().min(1),
  slots: SlotsSchema,
  telemetry: z
    .object({
      interval: DurationSchema.default(60_000),
      /** Script printing JSON {"name": number} or `name value` lines; custom metrics. */
      metricsScript: z.string().min(1).optional(),
      metricsTimeout: DurationSchema.default(10_000),
      /** Error log excerpts: a file to follow, or a systemd unit read with journalctl. */
      logFile: z.string().min(1).optional(),
      journalUnit: z.string().min(1).optional(),
      /** Only lines matching this (case-insensitive) regular expression are sent. */
      logPattern: z.string().default('error|fatal|panic|crit|oops|segfault'),
      maxLogLines: z.number().int().min(0).max(20).default(20),
    })
    .prefault({}),
  health: z
    .object({
      /** The agent on the trial slot must reach the broker within this. */
      brokerDeadline: DurationSchema.default(120_000),
      /** The whole trial (boot to commit) must finish within this, else the device goes back. */
      trialWindow: DurationSchema.default(600_000),
      checks: z.array(HealthCheckSchema).max(32).default([]),
    })
    .prefault({}),
  download: z
    .object({
      maxAttempts: z.number().int().min(1).max(100).default(6),
      retryBase: DurationSchema.default(5_000),
      retryMax: DurationSchema.default(600_000),
      /**
       * A download reports its progress at most this often, and at most once per tenth of the image:
       * a slow download is still followed, a fast one (the usual case) reports only its stages.
       */
      progressInterval: DurationSchema.default(30_000),
      /** A connection with no data for this long is dropped (and resumed). */
      idleTimeout: DurationSchema.default(60_000),
      /** Largest image accepted, whatever the manifest says. */
      maxBytes: z.number().int().positive().default(4 * 1024 ** 3),
      /** CA certificate for https artifact servers. */
      caFile: z.string().min(1).optional(),
    })
    .prefault({}),
  /** Messages kept while offline and sent on reconnect (oldest telemetry dropped first). */
  offlineQueueLimit: z.number().int().min(1).max(10_000).default(200),
  /** How far the device clock may be off when checking manifest and command times. */
  clockSkew: DurationSchema.default(5 * 60_000),
  /** pino level for the daemon. */
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
});
export type AgentConfig = z.infer<typeof AgentConfigSchema>;
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;

/**
 * The broker URLs in the order this device tries them: a list rotated to start at the device's own
 * node, `bucketOf(deviceId) mod n` (the same hash that spreads devices over rollout buckets, uniform
 * over ids), so a fleet given one list spreads evenly over the nodes and each device always starts at
 * the same one. Pure.
 */
export function brokerUrls(broker: Pick<AgentConfig['broker'], 'url'>, deviceId: string): string[] {
  const urls = typeof broker.url === 'string' ? [broker.url] : [...broker.url];
  const start = bucketOf(deviceId) % urls.length;
  return [...urls.slice(start), ...urls.slice(0, start)];
}

/** Validates a config value; throws ConfigError listing every bad field as `path: problem`. */
export function parseAgentConfig(value: unknown, source = 'agent config'): AgentConfig {
  const result = AgentConfigSchema.safeParse(value);
  if (!result.success) {
    throw new ConfigError(`${source} is invalid:\n  ${formatIssues(result.error).join('\n  ')}`);
  }
  const cfg = result.data;
  if (cfg.broker.password !== undefined && cfg.broker.passwordFile !== undefined) {
    throw new ConfigError(`${source} is invalid:\n  broker: set password or passwordFile, not both`);
  }
  if ((cfg.broker.certFile === undefined) !== (cfg.broker.keyFile === undefined)) {
    throw new ConfigError(`${source} is invalid:\n  broker: certFile and keyFile go together`);
  }
  try {
    new RegExp(cfg.telemetry.logPattern, 'i');
  } catch (err) {
    throw new ConfigError(`${source} is invalid:\n  telemetry.logPattern: ${errorMessage(err)}`);
  }
  return cfg;
}

const PATH_FIELDS: ReadonlyArray<readonly string[]> = [
  ['trustStoreDir'],
  ['dataDir'],
  ['slots', 'dir'],
  ['broker', 'passwordFile'],
  ['broker', 'caFile'],
  ['broker', 'certFile'],
  ['broker', 'keyFile'],
  ['telemetry', 'metricsScript'],
  ['telemetry', 'logFile'],
  ['download', 'caFile'],
];

/**
 * Path settings of each hardware slot backend (under `slots`). Left out on purpose: tryboot's
 * `autobootFile` and `durableFile`, which are relative to its `bootDir`, and argv settings such as
 * `rebootCommand`.
 */
const SLOT_PATH_FIELDS: Readonly<Record<string, ReadonlyArray<readonly string[]>>> = {
  uboot: [['fwEnvConfig'], ['procCmdline'], ['slots', 'A', 'device'], ['slots', 'B', 'device']],
  rauc: [['systemConf'], ['stateFile'], ['durableFile']],
  tryboot: [['bootDir'], ['deviceTreeRoot'], ['armedMarker'], ['slots', 'A', 'device'], ['slots', 'B', 'device']],
};

/**
 * Programs a slot backend runs. A bare name is looked up on PATH, as a shell would; one with a slash
 * is a path, relative to the config file.
 */
const SLOT_PROGRAM_FIELDS: Readonly<Record<string, readonly string[]>> = {
  uboot: ['fwPrintenv', 'fwSetenv'],
  rauc: ['rauc'],
};

function resolveIn(root: Record<string, unknown>, path: readonly string[], base: string, onlyWithSlash = false): void {
  let holder: Record<string, unknown> | undefined = root;
  for (const key of path.slice(0, -1)) holder = holder?.[key] as Record<string, unknown> | undefined;
  if (!holder) return;
  const last = path[path.length - 1]!;
  const value = holder[last];
  if (typeof value !== 'string' || (onlyWithSlash && !value.includes('/'))) return;
  holder[last] = resolve(base, value);
}

/** Relative paths in a config file are relative to the file, not to the working directory. */
function resolvePaths(cfg: AgentConfig, base: string): AgentConfig {
  const out = structuredClone(cfg) as unknown as Record<string, unknown>;
  for (const path of PATH_FIELDS) resolveIn(out, path, base);
  const slots = out['slots'] as Record<string, unknown>;
  const kind = String(slots['kind']);
  for (const path of SLOT_PATH_FIELDS[kind] ?? []) resolveIn(slots, path, base);
  for (const field of SLOT_PROGRAM_FIELDS[kind] ?? []) resolveIn(slots, [field], base, true);
  return out as unknown as AgentConfig;
}

/** Reads and validates agent.json. */
export async function loadAgentConfig(path: string): Promise<AgentConfig> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read agent config ${path}: ${errorMessage(err)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(`agent config ${path} is not JSON: ${errorMessage(err)}`);
  }
  return resolvePaths(parseAgentConfig(value, `agent config ${path}`), dirname(resolve(path)));
}
