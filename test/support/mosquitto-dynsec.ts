/**
 * Debian's Mosquitto with the dynamic-security plugin, configured exactly as `fleet broker
 * mosquitto-config` configures it (the same generator, called in-process), on a free loopback port:
 * the coordinator's account file is in the broker's directory. Skip with `describe.skipIf(!hasDynsec)`.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ACCOUNT_FILE, DATA_DIR, DYNSEC_FILE, coordinatorAccount, debianPluginPath, dynsecBootstrap, mosquittoConf, type MosquittoConfigOptions } from '../../coordinator/broker/mosquitto-config.js';
import { hasMosquitto, Mosquitto } from './mosquitto.js';

const PLUGIN = debianPluginPath();

/** True where Mosquitto and its dynamic-security plugin are installed. */
export const hasDynsec = hasMosquitto && existsSync(PLUGIN);

/** Where devices connect: the coordinator's embedded Aedes, or a Mosquitto it manages through dynsec. */
export type BrokerKind = 'embedded' | 'mosquitto';

/** Every broker this machine can run, for `describe.each(BROKERS)`: Mosquitto where it and its plugin are installed. */
export const BROKERS: readonly BrokerKind[] = hasDynsec ? ['embedded', 'mosquitto'] : ['embedded'];

export interface DynsecMosquitto {
  broker: Mosquitto;
  url: string;
  /** The coordinator's account (`coordinator-account.json`). */
  account: { username: string; password: string };
  accountFile: string;
  close(): Promise<void>;
}

/** Starts the broker with the generated configuration (`user root` and a 1 s autosave for tests). */
export async function startDynsecMosquitto(options: Partial<Pick<MosquittoConfigOptions, 'maxPacketBytes' | 'maxQueuedMessages'>> = {}): Promise<DynsecMosquitto> {
  const password = `test-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  let accountFile = '';
  const broker = await Mosquitto.start({
    config: (port, dir) => {
      accountFile = join(dir, ACCOUNT_FILE);
      mkdirSync(join(dir, DATA_DIR), { recursive: true });
      if (!existsSync(join(dir, DYNSEC_FILE))) {
        writeFileSync(join(dir, DYNSEC_FILE), JSON.stringify(dynsecBootstrap(password)));
        writeFileSync(accountFile, JSON.stringify(coordinatorAccount(password)), { mode: 0o600 });
      }
      return mosquittoConf({ dir, listeners: [{ host: '127.0.0.1', port }], pluginPath: PLUGIN, user: 'root', autosaveIntervalS: 1, ...options });
    },
  });
  const { username } = coordinatorAccount(password);
  return { broker, url: broker.url, account: { username, password }, accountFile, close: () => broker.close() };
}
