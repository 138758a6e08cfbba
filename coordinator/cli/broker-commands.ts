/**
 * `fleet broker mosquitto-config --out <dir>`: writes a starting Mosquitto 2 configuration for fleet
 * (mosquitto.conf, the dynamic-security plugin's file, the coordinator's credentials file) and says
 * how to start both. Files that exist are kept: the plugin's file holds every device's account, and
 * `--force` replaces mosquitto.conf only. I/O shell (files).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '@fleet/protocol/errors';
import { isLoopbackHost } from '../listener-security.js';
import {
  ACCOUNT_FILE,
  CONF_FILE,
  DATA_DIR,
  DYNSEC_FILE,
  MOSQUITTO_DEFAULTS,
  coordinatorAccount,
  debianPluginPath,
  dynsecBootstrap,
  mosquittoConf,
  type MosquittoListener,
} from '../broker/mosquitto-config.js';

interface Options {
  out: string;
  host?: string;
  port?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  localPort?: string;
  plugin?: string;
  user?: string;
  maxPacketBytes: string;
  maxQueuedMessages: string;
  force?: boolean;
}

function port(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65_535) throw new ConfigError(`${flag} must be a port number 1-65535, not ${value}`);
  return n;
}

function positive(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${flag} must be a positive whole number, not ${value}`);
  return n;
}

export function registerBrokerCommands(program: Command): void {
  const broker = program.command('broker').description('an external broker for the coordinator (Mosquitto with dynamic security)');
  broker
    .command('mosquitto-config')
    .description('write mosquitto.conf, the dynamic-security file and the coordinator\'s broker account for a Mosquitto 2 that the coordinator manages')
    .requiredOption('--out <dir>', 'directory for the files (its path is written into mosquitto.conf)')
    .option('--host <addr>', 'address devices connect to (default 0.0.0.0 with TLS, else 127.0.0.1)')
    .option('--port <n>', 'device listener port (default 8883 with TLS, else 1883)')
    .option('--tls-cert <file>', 'PEM certificate (chain) of the device listener')
    .option('--tls-key <file>', 'PEM private key of the device listener')
    .option('--tls-client-ca <file>', 'CA of device client certificates: require one on the device listener')
    .option('--local-port <n>', 'also a plaintext listener on 127.0.0.1 (a coordinator on this host)')
    .option('--plugin <file>', `the dynamic-security plugin (default ${debianPluginPath()})`)
    .option('--user <name>', 'user Mosquitto runs as after binding (default: Mosquitto\'s, `mosquitto`)')
    .option('--max-packet-bytes <n>', 'largest packet a client may send', String(MOSQUITTO_DEFAULTS.maxPacketBytes))
    .option('--max-queued-messages <n>', 'QoS 1 messages kept per client while it is away', String(MOSQUITTO_DEFAULTS.maxQueuedMessages))
    .option('--force', 'replace an existing mosquitto.conf (the dynamic-security file and the credentials are always kept)')
    .action((opts: Options) => {
      const dir = resolve(opts.out);
      const tls = opts.tlsCert !== undefined || opts.tlsKey !== undefined ? { cert: opts.tlsCert, key: opts.tlsKey } : undefined;
      if (tls && (tls.cert === undefined || tls.key === undefined)) throw new ConfigError('give both --tls-cert and --tls-key (or neither)');
      if (opts.tlsClientCa !== undefined && !tls) throw new ConfigError('--tls-client-ca needs TLS on the device listener: --tls-cert and --tls-key');
      const host = opts.host ?? (tls ? '0.0.0.0' : '127.0.0.1');
      if (!tls && !isLoopbackHost(host)) {
        throw new ConfigError(`devices would send their secrets in plaintext on ${host}: give --tls-cert and --tls-key, or listen on 127.0.0.1 behind a TLS proxy`);
      }
      const listeners: MosquittoListener[] = [
        {
          host,
          port: port(opts.port ?? (tls ? '8883' : '1883'), '--port'),
          ...(tls ? { tls: { cert: resolve(tls.cert!), key: resolve(tls.key!), ...(opts.tlsClientCa !== undefined ? { clientCa: resolve(opts.tlsClientCa) } : {}) } } : {}),
        },
      ];
      if (opts.localPort !== undefined) listeners.push({ host: '127.0.0.1', port: port(opts.localPort, '--local-port') });
      const conf = mosquittoConf({
        dir,
        listeners,
        pluginPath: opts.plugin ?? debianPluginPath(),
        maxPacketBytes: positive(opts.maxPacketBytes, '--max-packet-bytes'),
        maxQueuedMessages: positive(opts.maxQueuedMessages, '--max-queued-messages'),
        ...(opts.user !== undefined ? { user: opts.user } : {}),
      });

      mkdirSync(join(dir, DATA_DIR), { recursive: true });
      const written: string[] = [];
      const kept: string[] = [];
      const confPath = join(dir, CONF_FILE);
      if (existsSync(confPath) && !opts.force) throw new ConfigError(`${confPath} exists: pass --force to replace it (the dynamic-security file and the credentials are kept)`);
      writeFileSync(confPath, conf);
      written.push(confPath);
      const dynsecPath = join(dir, DYNSEC_FILE);
      const accountPath = join(dir, ACCOUNT_FILE);
      if (existsSync(dynsecPath) !== existsSync(accountPath)) {
        throw new ConfigError(`${existsSync(dynsecPath) ? dynsecPath : accountPath} exists without ${existsSync(dynsecPath) ? accountPath : dynsecPath}: restore it, or remove both to start with no accounts`);
      }
      if (existsSync(dynsecPath)) {
        kept.push(dynsecPath, accountPath);
      } else {
        // 32 random bytes: the coordinator's secret, stored in Mosquitto only as a salted hash.
        const password = randomBytes(32).toString('base64url');
        writeFileSync(dynsecPath, JSON.stringify(dynsecBootstrap(password), null, 2) + '\n', { mode: 0o600 });
        writeFileSync(accountPath, JSON.stringify(coordinatorAccount(password), null, 2) + '\n', { mode: 0o600 });
        written.push(dynsecPath, accountPath);
      }
      const device = listeners[0]!;
      const scheme = device.tls ? 'mqtts' : 'mqtt';
      const coordinatorUrl = opts.localPort !== undefined ? `mqtt://127.0.0.1:${opts.localPort}` : `${scheme}://${device.host === '0.0.0.0' ? '<this host>' : device.host}:${device.port}`;
      console.log(`wrote ${written.join(', ')}${kept.length ? `; kept ${kept.join(', ')}` : ''}`);
      if (opts.user === undefined) console.log(`Mosquitto runs as the mosquitto user: chown -R mosquitto: ${dir}`);
      console.log(`start the broker:      mosquitto -c ${confPath}`);
      console.log(`start the coordinator: fleet coordinator start --broker ${coordinatorUrl} --broker-credentials ${accountPath}`);
    });
}
