/**
 * The two brokers devices may connect to, behind one face for the ACL tests (broker-acl.test.ts):
 * the embedded Aedes with the coordinator's credential store, and Debian's Mosquitto with the
 * dynamic-security plugin whose accounts the coordinator's own DynsecAccounts keeps (provisioning
 * goes through the same plans and control channel as `fleet devices provision`). On both, the
 * coordinator's side sees device messages as the coordinator does: in-process for Aedes, through the
 * coordinator's broker account subscribed to every device topic for Mosquitto.
 */
import { SqliteSql } from '../../coordinator/store/sqlite-sql.js';
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { CredentialStore } from '../../coordinator/broker/credentials.js';
import { DynsecAccounts } from '../../coordinator/broker/dynsec-accounts.js';
import { DynsecControl } from '../../coordinator/broker/dynsec-control.js';
import { EmbeddedBroker } from '../../coordinator/broker/embedded-broker.js';
import { Counters } from '../../coordinator/metrics.js';
import { closeDatabase, openDatabase } from '../../coordinator/store/db.js';
import { systemClock } from '../../protocol/clock.js';
import { ALL_DEVICES_FILTER } from '../../protocol/topics.js';
import { startDynsecMosquitto, type BrokerKind } from '../support/mosquitto-dynsec.js';
import { silentLogger, uniqueId } from './helpers.js';

/** A device message as the coordinator received it. */
export interface Received {
  topic: string;
  payload: string;
}

export interface AclBroker {
  kind: BrokerKind;
  url: string;
  /** Gives a device an account (model rpi4 unless given; `null`: not known yet) and returns its secret. */
  provision(deviceId: string, hardwareModel?: string | null): Promise<string>;
  /** Device messages that reached the coordinator, in order. */
  received: Received[];
  /** Publishes as the coordinator (QoS 1). */
  publish(topic: string, payload: string): Promise<void>;
  /** The embedded broker's refusal counters (Mosquitto counts nothing for us). */
  counters: Counters | undefined;
  /** The embedded broker itself, for its ingest hook (undefined for Mosquitto). */
  embedded: EmbeddedBroker | undefined;
  stop(): Promise<void>;
}

export async function startAclBroker(kind: BrokerKind): Promise<AclBroker> {
  return kind === 'embedded' ? startEmbedded() : startMosquitto();
}

async function startEmbedded(): Promise<AclBroker> {
  const db = openDatabase(':memory:');
  const counters = new Counters();
  const credentials = await CredentialStore.load(new SqliteSql(db));
  const models = new Map<string, string>();
  const received: Received[] = [];
  const broker = new EmbeddedBroker({
    port: 0,
    host: '127.0.0.1',
    credentials,
    allowAnonymous: false,
    hardwareModelOf: (id) => models.get(id),
    logger: silentLogger,
    counters,
  });
  broker.onMessage((m) => {
    received.push({ topic: m.topic, payload: m.payload.toString('utf8') });
    m.ack();
  });
  await broker.start();
  return {
    kind: 'embedded',
    url: broker.url,
    received,
    counters,
    embedded: broker,
    async provision(deviceId, hardwareModel = 'rpi4') {
      if (hardwareModel !== null) models.set(deviceId, hardwareModel);
      return (await credentials.provision(deviceId)).secret;
    },
    publish: (topic, payload) => broker.publish(topic, Buffer.from(payload), { qos: 1, retain: false }),
    async stop() {
      await broker.stop();
      await broker.stop(); // safe twice
      closeDatabase(db);
    },
  };
}

async function startMosquitto(): Promise<AclBroker> {
  const m = await startDynsecMosquitto();
  const login = { username: m.account.username, password: m.account.password };
  const control = new DynsecControl({ url: m.url, clientId: uniqueId('accounts'), logger: silentLogger, timers: systemClock, ...login });
  const accounts = new DynsecAccounts({ control, username: login.username, logger: silentLogger });
  const received: Received[] = [];
  let coordinator: MqttClient | undefined;
  try {
    await accounts.start();
    await accounts.reconcile([]);
    coordinator = await mqtt.connectAsync(m.url, { ...login, clientId: uniqueId('coordinator'), reconnectPeriod: 0 });
    coordinator.on('message', (topic, payload) => received.push({ topic, payload: payload.toString('utf8') }));
    await coordinator.subscribeAsync(ALL_DEVICES_FILTER, { qos: 1 });
  } catch (err) {
    await accounts.stop();
    await m.close();
    throw err;
  }
  const c = coordinator;
  return {
    kind: 'mosquitto',
    url: m.url,
    received,
    counters: undefined,
    embedded: undefined,
    async provision(deviceId, hardwareModel = 'rpi4') {
      const secret = randomBytes(24).toString('base64url');
      await accounts.push([{ deviceId, hardwareModel: hardwareModel ?? undefined, enabled: true, secret }]);
      return secret;
    },
    publish: async (topic, payload) => {
      await c.publishAsync(topic, payload, { qos: 1 });
    },
    async stop() {
      await c.endAsync(true);
      await accounts.stop();
      await m.close();
    },
  };
}
