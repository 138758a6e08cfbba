/**
 * `--broker mqtt://…`: the coordinator as a client of an existing broker (Mosquitto, EMQX, HiveMQ) for
 * fleets that outgrow one machine. It subscribes to every device topic and publishes manifests and
 * commands like the embedded broker does. Device authentication and ACLs are then the broker's job:
 * a Mosquitto with dynamic security has them kept by the coordinator (dynsec-accounts.ts,
 * docs/mosquitto.md); another broker needs acl.ts's rules configured by hand. I/O shell (mqtt.js).
 *
 * No acknowledged status is lost: the session is persistent (`clean: false`), so the broker keeps
 * QoS 1 statuses for the coordinator while it is down and sends them again when it reconnects. Every
 * message goes through mqtt.js's `handleMessage` hook, installed before the connection is opened (the
 * queued messages arrive right behind the CONNACK), and mqtt.js sends the PUBACK only when the hook's
 * callback runs, which is when the handler acks the message: after the status is stored. mqtt.js
 * handles one inbound packet at a time, so a handler must ack promptly and never wait for one of our
 * own publishes (its PUBACK would queue behind the message being handled).
 */
import type { Logger } from 'pino';
import type { IClientOptions, MqttClient } from 'mqtt';
import { FleetError, errorMessage } from '@fleet/protocol/errors';
import { ALL_DEVICES_FILTER, parseTopic } from '@fleet/protocol/topics';
import type { DeviceConnectionEvents, InboundMessage, PublishOptions, Transport } from './transport.js';
import { definedProps } from '@fleet/firmware/defined-props';

export interface ExternalBrokerOptions {
  url: string;
  username?: string;
  password?: string;
  clientId: string;
  logger: Logger;
  /** Topic filters to subscribe to (replicas share telemetry: cluster/replica-subscriptions.ts). Default: every device topic. */
  subscriptions?: readonly string[];
}

/** mqtt.js's hook: called for every inbound PUBLISH; its PUBACK (QoS 1) waits for `done`. */
type HandleMessage = (packet: { topic: string; payload: Buffer | string }, done: (err?: Error) => void) => void;

export class ExternalBroker implements Transport {
  private client: MqttClient | undefined;
  private handler: ((m: InboundMessage) => void) | undefined;
  private events: DeviceConnectionEvents = {};

  constructor(private readonly options: ExternalBrokerOptions) {}

  get url(): string {
    return this.options.url;
  }

  /** The persistent session's client id (stable per data directory). */
  get clientId(): string {
    return this.options.clientId;
  }

  onMessage(handler: (message: InboundMessage) => void): void {
    this.handler = handler;
  }

  onConnection(events: DeviceConnectionEvents): void {
    this.events = events;
  }

  connectedDevices(): undefined {
    return undefined;
  }

  /** Connecting is all there is to prepare: an external broker keeps its own retained messages. */
  prepare(): Promise<void> {
    return this.start();
  }

  async start(): Promise<void> {
    if (this.client) return;
    const { connect } = await import('mqtt');
    const o = this.options;
    const clientOptions: IClientOptions = {
      clientId: o.clientId,
      // A persistent session keeps QoS 1 device statuses queued while the coordinator restarts.
      clean: false,
      reconnectPeriod: 1000,
      // The hook below must be in place before the first byte arrives.
      manualConnect: true,
      ...definedProps({ username: o.username, password: o.password }),
    };
    const client = connect(o.url, clientOptions);
    (client as unknown as { handleMessage: HandleMessage }).handleMessage = (packet, done) => this.receive(client, packet, done);
    client.on('error', (err) => o.logger.warn({ err: err.message }, 'external broker error'));
    try {
      await new Promise<void>((resolve, reject) => {
        const onConnect = (): void => {
          client.off('error', onError);
          resolve();
        };
        const onError = (err: Error): void => {
          client.off('connect', onConnect);
          reject(err);
        };
        client.once('connect', onConnect);
        client.once('error', onError);
        client.connect();
      });
      const filters = o.subscriptions ?? [ALL_DEVICES_FILTER];
      const granted = await client.subscribeAsync([...filters], { qos: 1 });
      // 128 (MQTT 3.1.1's 0x80): the broker refused a filter, e.g. an ACL without `$share/…`.
      const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
      if (refused.length) throw new Error(`the broker refused the subscription(s) ${refused.join(', ')}`);
    } catch (err) {
      await client.endAsync(true).catch(() => undefined);
      throw new FleetError('broker-unreachable', `cannot connect to ${o.url}: ${errorMessage(err)}; check --broker and its credentials`);
    }
    this.client = client;
    o.logger.info({ url: o.url }, 'connected to external broker');
  }

  private receive(client: MqttClient, packet: { topic: string; payload: Buffer | string }, done: (err?: Error) => void): void {
    const topic = packet.topic;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    let settled = false;
    const ack = (err?: Error): void => {
      if (settled) return;
      settled = true;
      if (!err) return done();
      // Not stored: no PUBACK. The broker sends it again after a reconnect, which we force so that
      // it does not wait in the session until the next restart.
      this.options.logger.error({ err: err.message, topic }, 'device message not handled; reconnecting to have it sent again');
      done(err);
      client.stream.destroy();
    };
    const parsed = parseTopic(topic);
    // Presence is the only signal of connection state an external broker gives us.
    if (parsed?.kind === 'device' && parsed.channel === 'presence' && payload.toString('utf8').includes('"offline"')) {
      this.events.onDisconnect?.(parsed.deviceId);
    }
    const handler = this.handler;
    if (!handler) return ack();
    try {
      handler({ topic, payload, clientDeviceId: undefined, ack });
    } catch (err) {
      // A handler bug never breaks the client; the message is acked (as the embedded broker does).
      this.options.logger.error({ err, topic }, 'ingest handler threw');
      ack();
    }
  }

  async publish(topic: string, payload: Buffer, options: PublishOptions): Promise<void> {
    if (!this.client) throw new FleetError('broker-stopped', 'not connected to the broker');
    await this.client.publishAsync(topic, payload, { qos: options.qos, retain: options.retain });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) await client.endAsync();
  }
}
