/**
 * The embedded Aedes broker: TCP (or TLS) listener, per-device authentication, ACLs from acl.ts, and
 * in-process ingest through the `published` hook so that a device's QoS 1 PUBACK is sent only after
 * the coordinator has handled (committed) the message. I/O shell.
 */
import { createServer as createNetServer, type AddressInfo, type Server } from 'node:net';
import type { Logger } from 'pino';
import type { Aedes, AedesPublishPacket, Client } from 'aedes';
import { FleetError } from '../../protocol/errors.js';
import { isValidId } from '../../protocol/ids.js';
import { authorizeDevicePublish, authorizeDeviceSubscribe } from './acl.js';
import { certificateMismatch, createBrokerTlsServer, type BrokerTlsFiles } from './client-certificate.js';
import type { CredentialStore } from './credentials.js';
import type { Counters } from '../metrics.js';
import type { DeviceConnectionEvents, InboundMessage, PublishOptions, Transport } from './transport.js';

export interface EmbeddedBrokerOptions {
  port: number;
  host: string;
  /** MQTT over TLS; with `clientCaPath`, devices need a certificate whose CN is their id (mTLS). */
  tls?: BrokerTlsFiles;
  credentials: CredentialStore;
  /** Accept devices without credentials (development). Identity is then the client id. */
  allowAnonymous: boolean;
  /** The model a device is known by (provisioning or hello), for the rollout-topic ACL. */
  hardwareModelOf: (deviceId: string) => string | undefined;
  logger: Logger;
  counters: Counters;
}

type AuthError = Error & { returnCode: number };

function authError(code: number, message: string): AuthError {
  return Object.assign(new Error(message), { returnCode: code });
}

/** The device id a client authenticated as; set in `authenticate`. */
const DEVICE_ID = Symbol('fleetDeviceId');
type FleetClient = Client & { [DEVICE_ID]?: string };

export class EmbeddedBroker implements Transport {
  private aedes: Aedes | undefined;
  private server: Server | undefined;
  private handler: ((m: InboundMessage) => void) | undefined;
  private events: DeviceConnectionEvents = {};
  private readonly connected = new Set<string>();
  private boundUrl = '';

  constructor(private readonly options: EmbeddedBrokerOptions) {}

  get url(): string {
    return this.boundUrl;
  }

  onMessage(handler: (message: InboundMessage) => void): void {
    this.handler = handler;
  }

  onConnection(events: DeviceConnectionEvents): void {
    this.events = events;
  }

  connectedDevices(): ReadonlySet<string> {
    return this.connected;
  }

  async prepare(): Promise<void> {
    if (this.aedes) return;
    const { Aedes } = await import('aedes');
    const log = this.options.logger;
    const counters = this.options.counters;
    const aedes = await Aedes.createBroker({
      authenticate: (client, username, password, done) => {
        this.authenticate(client as FleetClient, username, password).then(
          (deviceId) => {
            (client as FleetClient)[DEVICE_ID] = deviceId;
            done(null, true);
          },
          (err: AuthError) => {
            counters.inc('mqtt.auth.refused');
            log.warn({ clientId: client.id, username, reason: err.message }, 'device connection refused');
            done(err, false);
          },
        );
      },
      authorizePublish: (client, packet, done) => {
        if (!client) return done(null); // the coordinator's own in-process publishes
        const deviceId = (client as FleetClient)[DEVICE_ID];
        const decision = deviceId
          ? authorizeDevicePublish({ deviceId }, packet.topic)
          : { ok: false as const, reason: 'not authenticated' };
        if (decision.ok) return done(null);
        const reason = decision.reason;
        counters.inc('mqtt.acl.publish.refused');
        log.warn({ deviceId, topic: packet.topic, reason }, 'device publish refused');
        done(new Error(`publish refused: ${reason}`));
      },
      authorizeSubscribe: (client, sub, done) => {
        const deviceId = (client as FleetClient)[DEVICE_ID];
        const decision = deviceId
          ? authorizeDeviceSubscribe({ deviceId, hardwareModel: this.options.hardwareModelOf(deviceId) }, sub.topic)
          : { ok: false as const, reason: 'not authenticated' };
        if (decision.ok) return done(null, sub);
        counters.inc('mqtt.acl.subscribe.refused');
        log.warn({ deviceId, topic: sub.topic, reason: decision.reason }, 'device subscription refused');
        // A null subscription makes Aedes answer SUBACK 0x80 (failure) for this topic.
        done(null, null);
      },
      published: (packet, client, done) => {
        if (!client) return done(null);
        this.deliver(packet, client, done);
      },
    });
    aedes.on('clientReady', (client) => {
      const id = (client as FleetClient)[DEVICE_ID];
      if (!id) return;
      this.connected.add(id);
      this.events.onConnect?.(id);
    });
    aedes.on('clientDisconnect', (client) => {
      const id = (client as FleetClient)[DEVICE_ID];
      if (!id) return;
      this.connected.delete(id);
      this.events.onDisconnect?.(id);
    });
    aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'mqtt client error'));
    this.aedes = aedes;
  }

  async start(): Promise<void> {
    if (this.server) return;
    await this.prepare();
    const aedes = this.aedes!;
    const log = this.options.logger;
    const tls = this.options.tls;
    const server = tls
      ? createBrokerTlsServer(tls, aedes.handle)
      : createNetServer(aedes.handle);
    // A failed handshake (no or untrusted client certificate, plaintext on the TLS port) never reaches Aedes.
    server.on('tlsClientError', (err: Error) => {
      this.options.counters.inc('mqtt.tls.refused');
      log.debug({ reason: err.message }, 'TLS handshake refused');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: Error) => reject(new FleetError('mqtt-listen', `cannot listen on ${this.options.host}:${this.options.port}: ${err.message}; choose another --mqtt-port`)));
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    this.server = server;
    const addr = server.address() as AddressInfo;
    this.boundUrl = `${tls ? 'mqtts' : 'mqtt'}://${this.options.host}:${addr.port}`;
    log.info({ url: this.boundUrl }, 'embedded broker listening');
  }

  private async authenticate(client: FleetClient, username: string | undefined, password: Buffer | undefined): Promise<string> {
    const clientId = client.id;
    if (this.options.tls?.clientCaPath !== undefined) {
      // Checked before the (deliberately slow) secret: the certificate must be the claimed device's.
      const mismatch = certificateMismatch(client.conn, username ?? clientId);
      if (mismatch !== undefined) throw authError(5, mismatch);
    }
    if (username === undefined || password === undefined) {
      if (this.options.allowAnonymous && isValidId(clientId)) return clientId;
      throw authError(4, 'credentials required: provision the device with `fleet devices provision <id>`');
    }
    if (!isValidId(username)) throw authError(4, 'user name is not a device id');
    // The client id must be the device id: otherwise one device could take over another's session.
    if (clientId !== username) throw authError(2, `client id ${clientId} must equal the device id ${username}`);
    const ok = await this.options.credentials.verify(username, password.toString('utf8'));
    if (!ok) throw authError(4, 'bad device credentials');
    return username;
  }

  private deliver(packet: AedesPublishPacket, client: FleetClient, done: (err?: Error | null) => void): void {
    const handler = this.handler;
    if (!handler) return done(null);
    let settled = false;
    const ack = (err?: Error): void => {
      if (settled) return;
      settled = true;
      done(err ?? null);
    };
    try {
      handler({ topic: packet.topic, payload: packet.payload as Buffer, clientDeviceId: client[DEVICE_ID], ack });
    } catch (err) {
      // Never let a handler bug break the broker; the message is acked and the error counted.
      this.options.counters.inc('ingest.handler.errors');
      this.options.logger.error({ err, topic: packet.topic }, 'ingest handler threw');
      ack();
    }
  }

  publish(topic: string, payload: Buffer, options: PublishOptions): Promise<void> {
    const aedes = this.aedes;
    if (!aedes) return Promise.reject(new FleetError('broker-stopped', 'the broker is not running'));
    return new Promise((resolve, reject) => {
      aedes.publish({ cmd: 'publish', topic, payload, qos: options.qos, retain: options.retain, dup: false }, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  async stop(): Promise<void> {
    const aedes = this.aedes;
    const server = this.server;
    this.aedes = undefined;
    this.server = undefined;
    // Aedes first: it closes every client connection, which lets the listener's close complete.
    if (aedes) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.connected.clear();
  }
}
