/**
 * `--broker mqtt://…`: the coordinator as a client of an existing broker (Mosquitto, EMQX, HiveMQ) for
 * fleets that outgrow one machine. It subscribes to every device topic and publishes manifests and
 * commands like the embedded broker does. Device authentication and ACLs are then the broker's job:
 * configure it with the same rules as acl.ts (see README). I/O shell (mqtt.js).
 */
import type { Logger } from 'pino';
import type { MqttClient } from 'mqtt';
import { FleetError } from '../../protocol/errors.js';
import { ALL_DEVICES_FILTER, parseTopic } from '../../protocol/topics.js';
import type { DeviceConnectionEvents, InboundMessage, PublishOptions, Transport } from './transport.js';

export interface ExternalBrokerOptions {
  url: string;
  username?: string;
  password?: string;
  clientId: string;
  logger: Logger;
}

export class ExternalBroker implements Transport {
  private client: MqttClient | undefined;
  private handler: ((m: InboundMessage) => void) | undefined;
  private events: DeviceConnectionEvents = {};

  constructor(private readonly options: ExternalBrokerOptions) {}

  get url(): string {
    return this.options.url;
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
    const { connectAsync } = await import('mqtt');
    const o = this.options;
    let client: MqttClient;
    try {
      client = await connectAsync(o.url, {
        clientId: o.clientId,
        // A persistent session keeps QoS 1 device statuses queued while the coordinator restarts.
        clean: false,
        reconnectPeriod: 1000,
        ...(o.username !== undefined ? { username: o.username } : {}),
        ...(o.password !== undefined ? { password: o.password } : {}),
      });
    } catch (err) {
      throw new FleetError('broker-unreachable', `cannot connect to ${o.url}: ${(err as Error).message}; check --broker and its credentials`);
    }
    client.on('message', (topic, payload) => {
      const parsed = parseTopic(topic);
      // Presence is the only signal of connection state an external broker gives us.
      if (parsed?.kind === 'device' && parsed.channel === 'presence') {
        const text = payload.toString('utf8');
        if (text.includes('"offline"')) this.events.onDisconnect?.(parsed.deviceId);
      }
      this.handler?.({ topic, payload, clientDeviceId: undefined, ack: () => undefined });
    });
    client.on('error', (err) => o.logger.warn({ err: err.message }, 'external broker error'));
    await client.subscribeAsync(ALL_DEVICES_FILTER, { qos: 1 });
    this.client = client;
    o.logger.info({ url: o.url }, 'connected to external broker');
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
