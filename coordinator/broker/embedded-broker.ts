/**
 * The embedded Aedes broker: TCP (or TLS) listener, per-device authentication (device-auth.ts), ACLs
 * from acl.ts, and in-process ingest at authorization, before the PUBACK (see `authorizePublish`). What
 * no client may do to it: send
 * a packet larger than `maxPacketBytes` (refused from its header, before the body is buffered; before
 * authentication the CONNECT limit applies), hold a socket open without a CONNECT past
 * `connectTimeoutMs`, turn a wrong-password loop into a queue of scrypt runs, or go on speaking for an
 * id provisioned after it connected without credentials. Refusals are logged with the offender's id
 * or address, at most once per interval each. I/O shell.
 */
import type { EventEmitter } from 'node:events';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Aedes, AuthorizeForwardHandler, Client } from 'aedes';
import type { AedesPersistence } from 'aedes-persistence';
import { systemClock, type Clock } from '@fleet/protocol/clock';
import { FleetError } from '@fleet/protocol/errors';
import { LogLimiter } from '../log-limiter.js';
import { authorizeDevicePublish, authorizeDeviceSubscribe } from './acl.js';
import { certificateMismatch, createBrokerTlsServer, type BrokerTlsFiles } from './client-certificate.js';
import { ConnectAdmission, DEFAULT_CONNECT_ADMISSION, type ConnectAdmissionOptions } from './connect-admission.js';
import type { CredentialStore } from './credentials.js';
import { AuthRefusal, DeviceAuthenticator, type BrokerAnomalyKind } from './device-auth.js';
import type { LoginThrottle } from './login-throttle.js';
import { CONNECT_PACKET_LIMIT, limitPacketSize } from './packet-limit.js';
import { indexedMemoryPersistence } from './retained-index.js';
import { connectRedisCluster, willOrigin, type RedisCluster } from './redis-cluster.js';
import { withSessionQueues } from './session-queue.js';
import type { Counters } from '../metrics.js';
import type { DeviceConnectionEvents, InboundMessage, PublishOptions, Transport } from './transport.js';
import { definedProps } from '@fleet/firmware/defined-props';

export type { BrokerAnomalyKind };

export interface EmbeddedBrokerOptions {
  port: number;
  host: string;
  /** MQTT over TLS; with `clientCaPath`, devices need a certificate whose CN is their id (mTLS). */
  tls?: BrokerTlsFiles;
  credentials: CredentialStore;
  /**
   * Accept devices without credentials (development, explicit opt-in): identity is then the client id,
   * only from a loopback address, never a provisioned id, and such a device never receives rollouts.
   */
  allowAnonymous: boolean;
  /** The model a device is known by (provisioning or hello), for the rollout-topic ACL. */
  hardwareModelOf: (deviceId: string) => string | undefined;
  logger: Logger;
  counters: Counters;
  /** Largest packet an authenticated device may send, bytes. Default 128 KiB. */
  maxPacketBytes?: number;
  /** A socket that sends no complete CONNECT within this is closed. Default 10 s. */
  connectTimeoutMs?: number;
  /** Failed-login throttling; default LoginThrottle's defaults. */
  loginThrottle?: LoginThrottle;
  /**
   * How many CONNECTs this node takes at once and per second; the rest are refused early with CONNACK 3
   * (connect-admission.ts). Default DEFAULT_CONNECT_ADMISSION.
   */
  admission?: ConnectAdmissionOptions;
  /** Real time for throttling, held-back refusals and log limits. Default: the system clock. */
  timers?: Clock;
  /** Something a device (by its id) did that operators should see. */
  onAnomaly?: (deviceId: string, kind: BrokerAnomalyKind, detail: string) => void;
  /**
   * Cluster this broker with the others on one Redis (docs/embedded-cluster.md): messages, sessions,
   * retained messages and QoS 1 queues shared; devices, authentication and ingest stay per node.
   * Absent: a broker of its own, in memory.
   */
  cluster?: {
    redisUrl: string;
    nodeName?: string | undefined;
    /** What names this node across restarts (redis-cluster.ts `nodeKey`): its previous run's devices are reported gone. */
    nodeKey?: string | undefined;
    /** How often this node says it is alive (default 10 s); a node silent for three is dead. */
    heartbeatMs?: number;
  };
}

const DEFAULT_MAX_PACKET_BYTES = 128 * 1024;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** One log line per source address (refusals) or device (oversize) per this interval. */
const LOG_INTERVAL_MS = 10_000;
/**
 * Clustered, how often a node tells the others it is alive. A node silent for three of these is
 * dead: another node then publishes the last wills of the dead node's devices (Aedes's own rule).
 * Aedes's default is a minute; ten seconds brings a dead node's devices' wills within a minute.
 */
const CLUSTER_HEARTBEAT_MS = 10_000;
/** How long a stop waits for a clustered Aedes to close before its Redis connections are dropped. */
const CLUSTER_CLOSE_MS = 5_000;

/** The device id a client authenticated as; set in `authenticate`. */
const DEVICE_ID = Symbol('fleetDeviceId');
/** Set when the device connected without credentials. */
const ANONYMOUS = Symbol('fleetAnonymous');
/** Set while the client's CONNECT holds an admission slot; cleared when it gives the slot back. */
const ADMITTED = Symbol('fleetAdmitted');
type FleetClient = Client & { [DEVICE_ID]?: string; [ANONYMOUS]?: boolean; [ADMITTED]?: boolean };

/** The peer's address, IPv4-mapped addresses as plain IPv4. */
function remoteAddressOf(client: Client): string {
  const address = (client.conn as Partial<Socket>).remoteAddress ?? 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/** Waits for `p`, at most `ms`; the timer is cleared either way (it must not hold the process). */
async function boundedWait(p: Promise<void>, ms: number, timers: Clock): Promise<void> {
  let timer: ReturnType<Clock['setTimeout']> | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (timer = timers.setTimeout(resolve, ms)))]);
  timers.clearTimeout(timer!);
}

/**
 * Clustered, nothing reaches a device before its CONNACK. Aedes restores a persistent session's
 * subscriptions from Redis before it writes the CONNACK, so a message published meanwhile (a command,
 * a manifest) went out first; mqtt.js then queues that message's PUBACK until it is connected and
 * reads no further packet until the PUBACK is out, so the CONNACK sat unread until the connect timeout
 * (30 s) closed the connection, at the next node again. A QoS 1 message held back here stays in the
 * session's queue in Redis, which Aedes sends right after the CONNACK. Not in memory: there the
 * restore and the CONNACK leave no such window (test/coordinator/session-queue.test.ts).
 */
const afterConnack: AuthorizeForwardHandler = (client, packet) => ((client as Client & { connackSent?: boolean }).connackSent ? packet : null);

/**
 * The in-memory broker's storage: retained manifests looked up by topic on SUBSCRIBE, not matched
 * against every bucket's (retained-index.ts; the Redis persistence looks an exact filter up by topic
 * itself, one HGET), and persistent sessions' queues that hold up while a device reconnects with
 * messages flowing (session-queue.ts): the replay after a CONNACK skips what the device has already.
 */
function inMemory(): { persistence: AedesPersistence; authorizeForward: AuthorizeForwardHandler } {
  const queues = withSessionQueues(indexedMemoryPersistence());
  return { persistence: queues.persistence, authorizeForward: (_client, packet) => (queues.unsent(packet) ? null : packet) };
}

export class EmbeddedBroker implements Transport {
  private aedes: Aedes | undefined;
  private server: Server | undefined;
  private handler: ((m: InboundMessage) => void) | undefined;
  private events: DeviceConnectionEvents = {};
  private readonly connected = new Set<string>();
  /** The connection of each authenticated device, to close when its credentials change. */
  private readonly clients = new Map<string, Client>();
  private boundUrl = '';
  private readonly logLimit: LogLimiter;
  private readonly auth: DeviceAuthenticator;
  private readonly admission: ConnectAdmission;
  private cluster: RedisCluster | undefined;
  private readonly timers: Clock;
  private onClusterReset: (() => void) | undefined;
  private stopCredentialWatch: (() => void) | undefined;

  constructor(private readonly options: EmbeddedBrokerOptions) {
    const timers = options.timers ?? systemClock;
    this.timers = timers;
    this.logLimit = new LogLimiter(LOG_INTERVAL_MS, () => timers.now());
    this.admission = new ConnectAdmission(options.admission ?? DEFAULT_CONNECT_ADMISSION);
    this.auth = new DeviceAuthenticator({
      credentials: options.credentials,
      allowAnonymous: options.allowAnonymous,
      logger: options.logger,
      counters: options.counters,
      timers,
      ...definedProps({ throttle: options.loginThrottle, onAnomaly: options.onAnomaly }),
    });
  }

  get url(): string {
    return this.boundUrl;
  }

  onMessage(handler: (message: InboundMessage) => void): void {
    this.handler = handler;
  }

  onConnection(events: DeviceConnectionEvents): void {
    this.events = events;
  }

  /** The devices connected to this node (clustered: not those on other nodes). */
  connectedDevices(): ReadonlySet<string> {
    return this.connected;
  }

  /**
   * Clustered: called when Redis came back without the cluster's retained messages, so the caller
   * publishes them again from its store. Never called without a cluster.
   */
  onRetainedLost(handler: () => void): void {
    this.onClusterReset = handler;
    // Only a node that can publish them again claims the reset (redis-cluster.ts).
    this.cluster?.onReset(handler);
  }

  /**
   * Closes a device's connection (its secret was issued, rotated or revoked: the session must not
   * outlive it). A session without credentials holding an id just provisioned is an impostor: flagged
   * on the device. False when it is not connected.
   */
  disconnectDevice(deviceId: string): boolean {
    const client = this.clients.get(deviceId);
    if (!client) return false;
    this.clients.delete(deviceId);
    if ((client as FleetClient)[ANONYMOUS] && this.options.credentials.isProvisioned(deviceId)) {
      this.options.onAnomaly?.(deviceId, 'spoofed-identity', `a session without credentials from ${remoteAddressOf(client)} held the id when it was provisioned; disconnected`);
    }
    client.close();
    return true;
  }

  async prepare(): Promise<void> {
    if (this.aedes) return;
    const { Aedes } = await import('aedes');
    const log = this.options.logger;
    const counters = this.options.counters;
    const clusterOptions = this.options.cluster;
    const cluster = clusterOptions
      ? await connectRedisCluster({ url: clusterOptions.redisUrl, logger: log, counters, ...definedProps({ nodeName: clusterOptions.nodeName, nodeKey: clusterOptions.nodeKey }) })
      : undefined;
    // The previous run of this node crashed holding these devices: they are gone (not the other nodes' devices).
    for (const id of cluster?.orphaned ?? []) this.events.onDisconnect?.(id);
    if (this.onClusterReset) cluster?.onReset(this.onClusterReset);
    this.cluster = cluster;
    /** Wills whose device was looked up already (the second pass through authorizePublish). */
    const willsChecked = new WeakSet<object>();
    const aedes = await Aedes.createBroker({
      ...(cluster
        ? { id: cluster.brokerId, persistence: cluster.persistence, mq: cluster.mq, heartbeatInterval: clusterOptions?.heartbeatMs ?? CLUSTER_HEARTBEAT_MS, authorizeForward: afterConnack }
        : inMemory()),
      connectTimeout: this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      authenticate: (client, username, password, done) => {
        // Admission first: a node past what it can answer refuses here, before any store, scrypt or
        // Redis work, with CONNACK 3 (server unavailable) that clients back off from.
        const verdict = this.admission.admit(this.timers.now());
        if (!verdict.admitted) {
          counters.inc('mqtt.connect.overloaded');
          const held = this.logLimit.admit('overloaded');
          if (held !== undefined) log.warn({ by: verdict.by, connecting: this.admission.connecting, refusedSinceLastLine: held }, 'broker busy: CONNECT refused (server unavailable); the client backs off and retries');
          return done(new AuthRefusal(3, 'server busy; retry later'), false);
        }
        (client as FleetClient)[ADMITTED] = true;
        // With device certificates (mTLS), checked before the (deliberately slow) secret: the
        // certificate must be the claimed device's.
        const mismatch = this.options.tls?.clientCaPath !== undefined ? certificateMismatch(client.conn, username ?? client.id) : undefined;
        const who = mismatch !== undefined ? Promise.reject(new AuthRefusal(5, mismatch)) : this.auth.authenticate(client.id, remoteAddressOf(client), username, password, () => this.released(client));
        who.then(
          ({ deviceId, anonymous }) => {
            (client as FleetClient)[DEVICE_ID] = deviceId;
            if (anonymous) (client as FleetClient)[ANONYMOUS] = true;
            done(null, true);
          },
          (err: AuthRefusal) => {
            this.released(client);
            counters.inc('mqtt.auth.refused');
            const address = remoteAddressOf(client);
            // One line per source address per interval: a wrong-password loop must not flood the log.
            const held = this.logLimit.admit(`refused:${address}`);
            if (held !== undefined) log.warn({ clientId: client.id, username, address, reason: err.message, refusedSinceLastLine: held }, 'device connection refused');
            done(err, false);
          },
        );
      },
      authorizePublish: (client, packet, done) => {
        // Clustered, a last will is first checked against where its device is now (staleWill).
        const will = cluster ? willOrigin(packet) : undefined;
        if (cluster && will && !willsChecked.has(packet)) {
          void cluster.holderOf(will.clientId).then((holder) => {
            const stale = this.staleWill(aedes.id, will, holder);
            if (stale) return done(stale === 'refuse' ? new Error('stale will: the device is connected on another node') : null);
            willsChecked.add(packet);
            aedes.authorizePublish(client, packet, done);
          });
          return;
        }
        if (!client) {
          // The coordinator's own in-process publishes.
          if (will === undefined) return done(null);
          // The last will of a device whose node died, published by this node: checked and ingested as
          // the device's own publish would have been on its node.
          const decision = authorizeDevicePublish({ deviceId: will.clientId }, packet.topic);
          if (!decision.ok) return done(new Error(`will refused: ${decision.reason}`));
          return this.deliver(packet, { [DEVICE_ID]: will.clientId } as FleetClient, done);
        }
        const deviceId = (client as FleetClient)[DEVICE_ID];
        let decision = deviceId
          ? authorizeDevicePublish({ deviceId }, packet.topic)
          : { ok: false as const, reason: 'not authenticated' };
        // A session without credentials whose id has been provisioned since is an impostor now.
        if (decision.ok && deviceId && (client as FleetClient)[ANONYMOUS] && this.options.credentials.isProvisioned(deviceId)) {
          decision = { ok: false, reason: 'this id has been provisioned: reconnect with its credentials' };
          this.options.onAnomaly?.(deviceId, 'spoofed-identity', `a session without credentials from ${remoteAddressOf(client)} kept publishing after the id was provisioned; disconnected`);
        }
        // Ingest happens here, not in the `published` hook: Aedes writes a QoS 1 PUBACK before it runs
        // `published`, so a status handed over there could be acknowledged and then lost in a crash.
        // Here the PUBACK waits for the handler (a status is stored first); a handler error closes the
        // connection unacknowledged and the device sends the message again.
        if (decision.ok) return this.deliver(packet, client, done);
        const reason = decision.reason;
        counters.inc('mqtt.acl.publish.refused');
        const held = this.logLimit.admit(`publish:${deviceId ?? remoteAddressOf(client)}`);
        if (held !== undefined) log.warn({ deviceId, topic: packet.topic, reason, refusedSinceLastLine: held }, 'device publish refused');
        // An error here closes the connection (Aedes).
        done(new Error(`publish refused: ${reason}`));
      },
      authorizeSubscribe: (client, sub, done) => {
        const deviceId = (client as FleetClient)[DEVICE_ID];
        const decision = deviceId
          ? authorizeDeviceSubscribe(
              { deviceId, hardwareModel: this.options.hardwareModelOf(deviceId), anonymous: (client as FleetClient)[ANONYMOUS] === true },
              sub.topic,
            )
          : { ok: false as const, reason: 'not authenticated' };
        if (decision.ok) return done(null, sub);
        counters.inc('mqtt.acl.subscribe.refused');
        const held = this.logLimit.admit(`subscribe:${deviceId ?? remoteAddressOf(client)}`);
        if (held !== undefined) log.warn({ deviceId, topic: sub.topic, reason: decision.reason, refusedSinceLastLine: held }, 'device subscription refused');
        // A null subscription makes Aedes answer SUBACK 0x80 (failure) for this topic.
        done(null, null);
      },
      // Device messages were handed to ingest in authorizePublish; the broker only routes them on.
      published: (_packet, _client, done) => done(null),
    });
    // Credentials changed by another coordinator of the same store: the session must not outlive them.
    this.stopCredentialWatch = this.options.credentials.onChangedElsewhere((id) => this.disconnectDevice(id));
    aedes.on('clientReady', (client) => {
      this.released(client);
      const id = (client as FleetClient)[DEVICE_ID];
      if (!id) return;
      this.connected.add(id);
      this.clients.set(id, client);
      this.events.onConnect?.(id);
    });
    aedes.on('clientDisconnect', (client) => {
      const id = (client as FleetClient)[DEVICE_ID];
      if (!id) return;
      this.connected.delete(id);
      if (this.clients.get(id) === client) this.clients.delete(id);
      if (!cluster) return this.events.onDisconnect?.(id);
      // Clustered, a connection closed because the device connected to another node (which told
      // this one to drop it) is no disconnect: the device is online there.
      void cluster.holderOf(id).then((holder) => {
        if (holder === undefined || holder === aedes.id) return this.events.onDisconnect?.(id);
        this.options.counters.inc('cluster.disconnects.moved');
      });
    });
    aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'mqtt client error'));
    // Aedes reports persistence failures (Redis unreachable for too long) as an error event, which
    // would end the process unhandled (its typings leave the event out). The Redis connections log
    // the outage itself.
    (aedes as unknown as EventEmitter).on('error', (err: Error) => {
      counters.inc('mqtt.broker.errors');
      log.warn({ err: err.message }, 'broker error');
    });
    this.aedes = aedes;
  }

  async start(): Promise<void> {
    if (this.server) return;
    await this.prepare();
    const aedes = this.aedes!;
    const log = this.options.logger;
    const tls = this.options.tls;
    const onConnection = (socket: Socket): void => this.accept(aedes, socket);
    const server = tls
      ? createBrokerTlsServer(tls, onConnection)
      : createNetServer(onConnection);
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

  /** A CONNECT in progress ended (session ready, refused, or connection gone): its admission slot is free. */
  private released(client: Client): void {
    const c = client as FleetClient;
    if (!c[ADMITTED]) return;
    c[ADMITTED] = false;
    this.admission.release();
  }

  /** Hands a new socket to Aedes with the packet-size limit on its parser. */
  private accept(aedes: Aedes, socket: Socket): void {
    const client = aedes.handle(socket) as FleetClient;
    // Whatever ends a CONNECT before its session is ready (refused, timed out, dropped) closes the socket.
    socket.once('close', () => this.released(client));
    const max = this.options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
    const beforeAuth = Math.min(CONNECT_PACKET_LIMIT, max);
    limitPacketSize(client, {
      limitFor: () => (client[DEVICE_ID] === undefined ? beforeAuth : max),
      onOversize: (declared, limit, cmd) => {
        const deviceId = client[DEVICE_ID];
        const address = remoteAddressOf(client);
        this.options.counters.inc('mqtt.packets.oversize');
        const held = this.logLimit.admit(`oversize:${deviceId ?? address}`);
        if (held !== undefined) {
          this.options.logger.warn({ deviceId, clientId: client.id, address, cmd, declared, limit, refusedSinceLastLine: held }, 'oversized MQTT packet refused; connection closed');
        }
        if (deviceId !== undefined) this.options.onAnomaly?.(deviceId, 'oversized-packet', `${cmd ?? 'packet'} of ${declared} bytes (limit ${limit}) from ${address}`);
      },
    });
  }

  /**
   * Clustered, whether a last will is stale: its device is connected now under another broker id
   * (`holder`, from the cluster's connection registry). A will is this node's own (the device's
   * connection here just ended) or a dead node's (Aedes on a surviving node publishes those); a stale
   * one must report nothing. This node's own is refused (Aedes then neither routes nor keeps it); a
   * dead node's, which Aedes publishes in a batch that one refusal would end, is let through but not
   * ingested (the will stream drops those before they get here, redis-cluster.ts: this covers a
   * device that connected in between).
   */
  private staleWill(ownId: string, will: { clientId: string; brokerId: string }, holder: string | undefined): 'refuse' | 'skip' | undefined {
    if (holder === undefined || holder === will.brokerId) return undefined;
    this.options.counters.inc('cluster.wills.stale');
    this.options.logger.info({ deviceId: will.clientId, willOf: will.brokerId, connectedTo: holder }, 'last will of a device connected on another node not ingested');
    return will.brokerId === ownId ? 'refuse' : 'skip';
  }

  private deliver(packet: { topic: string; payload: Buffer | string }, client: FleetClient, done: (err?: Error | null) => void): void {
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
    const cluster = this.cluster;
    this.aedes = undefined;
    this.server = undefined;
    this.cluster = undefined;
    // Aedes first: it closes every client connection, which lets the listener's close complete.
    this.auth.stop();
    this.stopCredentialWatch?.();
    this.stopCredentialWatch = undefined;
    if (aedes) {
      const closed = new Promise<void>((resolve) => aedes.close(() => resolve()));
      // Clustered, Aedes's close ends with QUITs to Redis, which a Redis that is down never answers:
      // bounded, and the connections are dropped after it.
      if (cluster) await boundedWait(closed, CLUSTER_CLOSE_MS, this.timers);
      else await closed;
    }
    await cluster?.close();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.connected.clear();
    this.clients.clear();
  }
}
