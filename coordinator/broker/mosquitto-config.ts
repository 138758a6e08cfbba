/**
 * A starting Mosquitto 2 configuration for fleet (`fleet broker mosquitto-config`): mosquitto.conf
 * (listeners with TLS, persistence, the queue limits the persistent sessions need, packet size, the
 * dynamic-security plugin), the plugin's file bootstrapped with the coordinator's account and roles
 * and default access denied (what `mosquitto_ctrl dynsec init` writes, with fleet's roles instead of
 * its catch-all admin), and the coordinator's credentials file. Pure text and JSON, apart from the
 * salt and hash of the password it is given. Why each value: docs/mosquitto.md.
 */
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { accountsAdminAcls, coordinatorAcls, ACCOUNTS_ADMIN_ROLE, COORDINATOR_ROLE, COORDINATOR_USERNAME, DEFAULT_ACL_ACCESS } from './dynsec-acls.js';
import type { BrokerAccountFile } from './broker-login.js';

/** Debian's plugin path, per architecture (Mosquitto 2 from the `mosquitto` package). */
export function debianPluginPath(arch: string = process.arch): string {
  const triplet = arch === 'arm64' ? 'aarch64-linux-gnu' : arch === 'arm' ? 'arm-linux-gnueabihf' : 'x86_64-linux-gnu';
  return `/usr/lib/${triplet}/mosquitto_dynamic_security.so`;
}

export interface MosquittoListener {
  host: string;
  port: number;
  /** PEM files: MQTT over TLS. `clientCa` also requires a client certificate from that CA. */
  tls?: { cert: string; key: string; clientCa?: string };
}

export interface MosquittoConfigOptions {
  /** Directory the files will live in (absolute): the conf names the plugin file and data dir by it. */
  dir: string;
  listeners: readonly MosquittoListener[];
  pluginPath: string;
  /** `user` line: whom Mosquitto runs as after binding (it drops root). Default: left to Mosquitto (`mosquitto`). */
  user?: string;
  /** Largest packet a client may send. Default 131072, as the embedded broker's `mqtt.maxPacketBytes`. */
  maxPacketBytes?: number;
  /** QoS 1 messages kept per client while it is away (the coordinator's statuses). Default 200,000. */
  maxQueuedMessages?: number;
  /** QoS 1 messages in flight to one client. Default 100. */
  maxInflightMessages?: number;
  /** A persistent session unused this long is dropped (`14d`). */
  persistentClientExpiration?: string;
  /** Seconds between persistence saves. Default 10. */
  autosaveIntervalS?: number;
}

export const MOSQUITTO_DEFAULTS = {
  maxPacketBytes: 131_072,
  maxQueuedMessages: 200_000,
  maxInflightMessages: 100,
  persistentClientExpiration: '14d',
  autosaveIntervalS: 10,
} as const;

export const DYNSEC_FILE = 'dynamic-security.json';
export const CONF_FILE = 'mosquitto.conf';
export const ACCOUNT_FILE = 'coordinator-account.json';
export const DATA_DIR = 'data';

export function mosquittoConf(o: MosquittoConfigOptions): string {
  const d = { ...MOSQUITTO_DEFAULTS, ...o };
  const listeners = o.listeners.flatMap((l) => [
    '',
    `listener ${l.port} ${l.host}`,
    ...(l.tls
      ? [
          `certfile ${l.tls.cert}`,
          `keyfile ${l.tls.key}`,
          ...(l.tls.clientCa !== undefined ? [`cafile ${l.tls.clientCa}`, 'require_certificate true', 'use_identity_as_username false'] : []),
        ]
      : []),
  ]);
  return [
    '# Mosquitto 2 for fleet, written by `fleet broker mosquitto-config`; see docs/mosquitto.md.',
    '# Devices\' accounts are managed by the coordinator through the dynamic-security plugin: do not',
    '# edit dynamic-security.json by hand while the broker runs (it rewrites the file on every change).',
    ...(o.user !== undefined ? [`user ${o.user}`] : []),
    '',
    '# One set of rules for every listener: the plugin authenticates and authorizes everyone.',
    'per_listener_settings false',
    'allow_anonymous false',
    'allow_zero_length_clientid false',
    ...listeners,
    '',
    `plugin ${o.pluginPath}`,
    `plugin_opt_config_file ${join(o.dir, DYNSEC_FILE)}`,
    '',
    '# Persistent sessions (the coordinator\'s and the agents\') and retained manifests survive a restart.',
    'persistence true',
    `persistence_location ${join(o.dir, DATA_DIR)}/`,
    `autosave_interval ${d.autosaveIntervalS}`,
    `persistent_client_expiration ${d.persistentClientExpiration}`,
    '# The coordinator\'s session holds every QoS 1 status sent while it is down (the default, 1000, drops the rest).',
    `max_queued_messages ${d.maxQueuedMessages}`,
    `max_inflight_messages ${d.maxInflightMessages}`,
    '# Larger packets close the connection, judged from the packet\'s header.',
    `max_packet_size ${d.maxPacketBytes}`,
    '',
    '# $SYS every 10 s: uptime (a restarted broker) and client counts for liveness.',
    'sys_interval 10',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'connection_messages true',
    '',
  ].join('\n');
}

/**
 * A password as the plugin stores it: PBKDF2-HMAC-SHA512, 64 bytes, a 12-byte salt, base64. 101
 * iterations is the plugin's own choice for the passwords it sets; the secrets fleet issues are
 * random (192 bits for devices, 256 for the coordinator), which no iteration count needs to protect.
 */
export function dynsecPassword(password: string, salt: Buffer = randomBytes(12), iterations = 101): { password: string; salt: string; iterations: number } {
  return { password: pbkdf2Sync(password, salt, iterations, 64, 'sha512').toString('base64'), salt: salt.toString('base64'), iterations };
}

/** The plugin's file to start from: the coordinator's account with its two roles, nothing else allowed. */
export function dynsecBootstrap(coordinatorPassword: string): Record<string, unknown> {
  return {
    defaultACLAccess: Object.fromEntries(DEFAULT_ACL_ACCESS.map((a) => [a.acltype, a.allow])),
    clients: [
      {
        username: COORDINATOR_USERNAME,
        textName: 'fleet coordinator: device traffic and account management',
        ...dynsecPassword(coordinatorPassword),
        roles: [{ rolename: COORDINATOR_ROLE }, { rolename: ACCOUNTS_ADMIN_ROLE }],
      },
    ],
    groups: [],
    roles: [
      { rolename: COORDINATOR_ROLE, acls: coordinatorAcls() },
      { rolename: ACCOUNTS_ADMIN_ROLE, acls: accountsAdminAcls() },
    ],
  };
}

export function coordinatorAccount(password: string): BrokerAccountFile {
  return { username: COORDINATOR_USERNAME, password, accounts: 'mosquitto-dynsec' };
}
