/**
 * The coordinator's account on an external broker, and who keeps devices' accounts there: read from
 * the credentials file `fleet broker mosquitto-config` writes (`coordinator-account.json`, 0600)
 * into the configuration, and the BrokerAccounts that fit the broker. I/O shell (one file read).
 */
import { readFileSync } from 'node:fs';
import type { Clock } from '@fleet/protocol/clock';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ConfigError, errorMessage } from '@fleet/protocol/errors';
import { formatIssues } from '@fleet/protocol/parse';
import type { CoordinatorConfig } from '../config.js';
import { StoreOnlyAccounts, type BrokerAccounts } from './broker-accounts.js';
import { DynsecAccounts } from './dynsec-accounts.js';
import { DynsecControl } from './dynsec-control.js';
import { EmbeddedBroker } from './embedded-broker.js';
import { ExternalBroker } from './external-broker.js';
import type { Transport } from './transport.js';

export const BrokerAccountFileSchema = z.object({
  username: z.string().min(1),
  password: z.string().min(1),
  /** Who keeps devices' accounts on that broker (see CoordinatorConfig.mqtt.brokerAccounts). */
  accounts: z.enum(['none', 'mosquitto-dynsec']).optional(),
});
export type BrokerAccountFile = z.infer<typeof BrokerAccountFileSchema>;

/**
 * The configuration with the credentials file read in: its username and password unless given
 * otherwise, and `brokerAccounts` settled (`none` when nothing says). Throws ConfigError naming the
 * file, or when dynsec accounts lack the account that manages them.
 */
export function withBrokerLogin(config: CoordinatorConfig): CoordinatorConfig {
  const mqtt = { ...config.mqtt };
  if (mqtt.brokerCredentialsFile !== undefined) {
    const path = mqtt.brokerCredentialsFile;
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new ConfigError(`cannot read the broker credentials file ${path}: ${errorMessage(err)}; write one with \`fleet broker mosquitto-config --out <dir>\``);
    }
    const parsed = BrokerAccountFileSchema.safeParse(json);
    if (!parsed.success) throw new ConfigError(`broker credentials file ${path} is invalid: ${formatIssues(parsed.error).join('; ')}`);
    mqtt.brokerUsername ??= parsed.data.username;
    mqtt.brokerPassword ??= parsed.data.password;
    mqtt.brokerAccounts ??= parsed.data.accounts;
  }
  mqtt.brokerAccounts ??= 'none';
  if (mqtt.brokerAccounts === 'mosquitto-dynsec' && (mqtt.brokerUsername === undefined || mqtt.brokerPassword === undefined)) {
    throw new ConfigError('managing devices\' broker accounts needs the coordinator\'s own: --broker-credentials <dir>/coordinator-account.json (written by `fleet broker mosquitto-config`), or FLEET_BROKER_USERNAME and FLEET_BROKER_PASSWORD');
  }
  return { ...config, mqtt };
}

/** The BrokerAccounts for this transport and configuration. */
export function createBrokerAccounts(config: CoordinatorConfig, transport: Transport, logger: Logger, timers: Clock): BrokerAccounts {
  if (transport instanceof EmbeddedBroker) return new StoreOnlyAccounts('embedded', (id) => transport.disconnectDevice(id));
  const m = config.mqtt;
  if (m.brokerAccounts !== 'mosquitto-dynsec' || !(transport instanceof ExternalBroker)) return new StoreOnlyAccounts('none');
  const control = new DynsecControl({
    url: transport.url,
    clientId: `${transport.clientId}-accounts`,
    logger,
    timers,
    ...(m.brokerUsername !== undefined ? { username: m.brokerUsername } : {}),
    ...(m.brokerPassword !== undefined ? { password: m.brokerPassword } : {}),
  });
  return new DynsecAccounts({ control, username: m.brokerUsername, logger });
}
