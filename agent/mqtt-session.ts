/**
 * The agent's MQTT session (mqtt.js 5). I/O adapter.
 *
 * - Persistent session (clean: false, client id = device id), QoS 1 for everything but telemetry.
 * - A last will that marks the device offline (presence; retained only if configured).
 * - Our own reconnect loop with exponential backoff and full jitter (mqtt.js's fixed reconnectPeriod
 *   would make a whole fleet reconnect in lock-step after a broker restart). Losing the broker is
 *   never fatal: the session retries for as long as it runs. The backoff starts over only after a
 *   connection has lasted `reconnectMaxMs`, so two clients taking the same client id from each other
 *   back off instead of fighting; a refused login retries at the long end of the backoff. A broker
 *   that says it is busy (CONNACK 3, server unavailable: a node's CONNECT admission in a connect storm)
 *   is retried with the same growing, jittered backoff, at the next node when there are several.
 * - Unacknowledged QoS 1 messages (a status sent just before the connection dropped) survive the
 *   reconnect and are sent again.
 * - A bounded queue for messages published while offline, flushed on reconnect; when it is full the
 *   oldest droppable message (telemetry) goes first, then the oldest of any kind.
 * - Subscribes on every connect (cheap, and correct even if the broker lost the session).
 */
import mqtt, { ReasonCodes, type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { systemClock, type Clock, type TimerHandle } from '@fleet/protocol/clock';

/** The MQTT connect seam: tests and the simulator may pass their own. Default: mqtt.connect. */
export type MqttConnect = (options: IClientOptions) => MqttClient;

export interface PublishOptions {
  qos: 0 | 1;
  retain?: boolean;
  /** May be dropped first when the offline queue is full (telemetry). */
  droppable?: boolean;
}

export interface MqttSessionOptions {
  clientId: string;
  /** The broker's address (brokerAddress), credentials, TLS material and timers. */
  clientOptions: Partial<IClientOptions>;
  will: { topic: string; payload: Buffer; retain: boolean };
  subscriptions: readonly string[];
  reconnectMinMs: number;
  reconnectMaxMs: number;
  queueLimit: number;
  clock: Clock;
  random: () => number;
  logger: Logger;
  connect?: MqttConnect;
  onConnect: () => void;
  onMessage: (topic: string, payload: Buffer) => void;
}

/**
 * mqtt.js's own debug output goes through the `debug` package: a logger per client and an argument
 * array per packet, even when it prints nothing (a seventh of a simulated device's connect allocations).
 * It stays on when DEBUG is set, so `DEBUG=mqttjs*` still shows the packets.
 */
const mqttDebugLog = process.env['DEBUG'] ? {} : { log: (): void => undefined };

/** Longest a clean stop waits for the broker (presence publish, then the disconnect). */
const STOP_TIMEOUT_MS = 2_000;

interface Queued {
  topic: string;
  payload: Buffer;
  options: PublishOptions;
}

/** A connection the peer closed with a reset rather than a FIN (ECONNRESET, EPIPE). */
function isConnectionReset(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

/** Full-jitter backoff: uniform in [0, min(max, min · 2^attempt)]. Pure. */
export function reconnectDelay(attempt: number, minMs: number, maxMs: number, random: number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.max(minMs / 2, Math.floor(random * ceiling));
}

/** After a refused login: the long end of the backoff, still jittered (a fleet refused together). Pure. */
export function refusedDelay(maxMs: number, random: number): number {
  return Math.floor(maxMs / 2 + (random * maxMs) / 2);
}

/**
 * CONNACK codes (MQTT 3.1.1 and 5) that refuse this client as such — its credentials, its client id,
 * a ban — rather than say the broker is busy: retrying soon cannot help.
 */
const REFUSED_CODES = new Set([2, 4, 5, 133, 134, 135, 138]);

function refusalCode(err: Error): number | null {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' && REFUSED_CODES.has(code) ? code : null;
}

/**
 * CONNACK codes that say the broker is busy, not that this client is unwelcome (3.1.1: 3 server
 * unavailable; 5: 0x88 server unavailable, 0x89 server busy, 0x97 quota exceeded, 0x9F connection rate
 * exceeded): back off and try again, elsewhere when there is an elsewhere.
 */
const BUSY_CODES = new Set([3, 136, 137, 151, 159]);

function busyCode(err: Error): number | null {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' && BUSY_CODES.has(code) ? code : null;
}

export class MqttSession {
  private client: MqttClient | null = null;
  private readonly queue: Queued[] = [];
  private attempt = 0;
  private timer: TimerHandle | null = null;
  private stopped = false;
  private connectWaiters: Array<() => void> = [];
  /** When the current connection was accepted (null while offline). */
  private connectedAt: number | null = null;
  /**
   * The current time without a connection (null while connected): since when, connect attempts that
   * failed, whether the broker had closed the last connection cleanly soon after accepting it, and
   * whether the offline queue overflowed.
   */
  private outage: { since: number; failures: number; closedSoonAfterMs?: number; dropped: boolean } | null = null;
  /** What ended the last connection or connect attempt, for the log line that follows it. */
  private lastError: Error | null = null;
  /** Messages dropped from the full offline queue. */
  dropped = 0;

  constructor(private readonly options: MqttSessionOptions) {}

  get connected(): boolean {
    return this.client?.connected === true;
  }

  start(): void {
    const o = this.options;
    const connect = o.connect ?? mqtt.connect;
    const client = connect({
      ...o.clientOptions,
      ...mqttDebugLog,
      clientId: o.clientId,
      clean: false,
      reconnectPeriod: 0,
      // We subscribe on every connect ourselves. mqtt.js's own resubscription belongs to its reconnect
      // loop (reconnectPeriod 0: off), but with this on it still records every SUBSCRIBE's topics.
      resubscribe: false,
      protocolVersion: 4,
      will: { topic: o.will.topic, payload: o.will.payload, qos: 1, retain: o.will.retain },
    });
    this.client = client;
    // Our listeners go quiet once this client is no longer ours (stop, kill) rather than being removed:
    // removeAllListeners would also strip mqtt.js's own, and its 'close' listener is what stops the
    // client's keepalive timer (left running, it held a stopped agent's process open for ~90 s).
    const ours = (): boolean => this.client === client;
    client.on('connect', () => {
      if (!ours()) return;
      this.onConnected();
      // The subscription, presence, hello and queued messages leave in one write, not a write each:
      // mqtt.js writes every packet on its own, and a fleet reconnecting at once pays per syscall.
      const stream = client.stream as { cork?: () => void; uncork?: () => void } | undefined;
      stream?.cork?.();
      process.nextTick(() => stream?.uncork?.());
      if (o.subscriptions.length) {
        client.subscribe([...o.subscriptions], { qos: 1 }, (err) => {
          if (err) o.logger.warn({ err: err.message }, 'subscribe failed');
        });
      }
      o.onConnect();
      this.flush();
      const waiters = this.connectWaiters;
      this.connectWaiters = [];
      for (const w of waiters) w();
    });
    client.on('message', (topic, payload) => {
      if (ours()) o.onMessage(topic, payload);
    });
    client.on('error', (err) => {
      // Connection errors are reported with the reconnect they lead to; others as they come.
      if (!ours()) return;
      this.lastError = err;
      if (client.connected) o.logger.warn({ err: err.message }, 'mqtt error');
    });
    client.on('close', () => {
      if (ours()) this.scheduleReconnect();
    });
  }

  private onConnected(): void {
    const o = this.options;
    const now = o.clock.now();
    const outage = this.outage;
    if (!outage) {
      o.logger.info({ clientId: o.clientId }, 'mqtt connected');
    } else if (outage.closedSoonAfterMs !== undefined && outage.failures === 0) {
      // The broker dropped a fresh connection without an error and took us back at once: it stayed
      // up, so what closed us was most likely another client connecting with our client id.
      o.logger.warn(
        { attempt: this.attempt, offlineMs: now - outage.since, previousConnectedMs: outage.closedSoonAfterMs, clientId: o.clientId },
        "mqtt reconnected; another client may have taken over this device's session (the broker closed it soon after accepting it, while staying up); backing off",
      );
    } else {
      o.logger.info({ attempt: this.attempt, offlineMs: now - outage.since }, 'mqtt reconnected');
    }
    this.connectedAt = now;
    this.outage = null;
    this.lastError = null;
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.timer) return;
    const o = this.options;
    const now = o.clock.now();
    const upMs = this.connectedAt === null ? null : now - this.connectedAt;
    const err = this.lastError;
    this.connectedAt = null;
    this.lastError = null;
    const outageBegins = this.outage === null;
    const outage = (this.outage ??= { since: now, failures: 0, dropped: false });
    if (upMs === null) outage.failures++;
    // Closed by the other side soon after it accepted us: a FIN, or a reset when the broker closed the
    // socket with our bytes still unread (what a takeover looks like under load).
    else if (upMs < o.reconnectMaxMs && (!err || isConnectionReset(err))) outage.closedSoonAfterMs = upMs;
    // Only a connection that held for a full backoff period starts the backoff over: one taken away
    // soon after it was accepted (another client with our id, a broker refusing us) keeps it growing.
    if (upMs !== null && upMs >= o.reconnectMaxMs) this.attempt = 0;
    const refused = err ? refusalCode(err) : null;
    const busy = err ? busyCode(err) : null;
    const attempt = ++this.attempt;
    const delayMs = refused !== null ? refusedDelay(o.reconnectMaxMs, o.random()) : reconnectDelay(attempt - 1, o.reconnectMinMs, o.reconnectMaxMs, o.random());
    const fields = { attempt, delayMs, ...(err ? { err: err.message } : {}) };
    if (refused !== null) {
      o.logger.error({ ...fields, code: refused, refusal: (ReasonCodes as Record<number, string>)[refused] }, "the broker refused this client; check broker.username and the password, or the device's credentials on the broker; retrying with the long backoff");
    } else if (busy !== null) {
      // Expected in a connect storm: logged once per outage, then quietly.
      if (outage.failures === 1) o.logger.warn({ ...fields, code: busy }, 'the broker is busy (server unavailable); backing off and retrying');
      else o.logger.info({ ...fields, code: busy }, 'the broker is still busy; backing off');
    } else if (upMs !== null) {
      o.logger.warn({ ...fields, connectedMs: upMs }, 'mqtt connection lost; reconnecting');
    } else if (outageBegins) {
      o.logger.warn(fields, 'cannot reach the broker; retrying');
    } else {
      o.logger.info(fields, 'mqtt reconnect failed; retrying');
    }
    this.timer = o.clock.setTimeout(() => {
      this.timer = null;
      const client = this.client;
      // Keep mqtt.js's stores: a QoS 1 message sent but not acknowledged is sent again on the new
      // connection (reconnect() without them would start empty stores and lose it).
      if (!this.stopped && client && !client.connected) client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
    }, delayMs);
  }

  /** Publishes now if connected, else queues (bounded). Never throws. */
  publish(topic: string, payload: Buffer, options: PublishOptions): void {
    if (this.client?.connected) {
      this.send({ topic, payload, options });
      return;
    }
    if (this.queue.length >= this.options.queueLimit) {
      const i = this.queue.findIndex((q) => q.options.droppable);
      this.queue.splice(i >= 0 ? i : 0, 1);
      this.dropped++;
      if (this.outage && !this.outage.dropped) {
        this.outage.dropped = true;
        this.options.logger.warn({ queueLimit: this.options.queueLimit }, 'offline queue full; dropping the oldest messages, telemetry first');
      }
    }
    this.queue.push({ topic, payload, options });
  }

  private send(q: Queued): void {
    this.client?.publish(q.topic, q.payload, { qos: q.options.qos, retain: q.options.retain ?? false }, (err) => {
      if (err) this.options.logger.debug({ err: err.message, topic: q.topic }, 'publish failed');
    });
  }

  private flush(): void {
    while (this.queue.length && this.client?.connected) this.send(this.queue.shift()!);
  }

  /** Resolves true once connected, false after `timeoutMs` of clock time (or on stop). */
  waitConnected(timeoutMs: number): Promise<boolean> {
    if (this.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      let done = false;
      const waiter = () => {
        if (done) return;
        done = true;
        this.options.clock.clearTimeout(timer);
        resolve(this.connected);
      };
      const timer = this.options.clock.setTimeout(() => {
        if (done) return;
        done = true;
        this.connectWaiters = this.connectWaiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      this.connectWaiters.push(waiter);
    });
  }

  /** Ends the session; `final` messages (presence offline) are sent first if connected. Safe twice. */
  async stop(final?: Queued): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = null;
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w();
    const client = this.client;
    this.client = null;
    if (!client) return;
    // A broker that stops answering must not hold the agent up: every wait here is bounded, and the
    // bound is cleared when the broker does answer (a pending timer would delay the process's exit).
    // The bound is wall time: a socket flush takes real milliseconds, however fast a simulated clock runs.
    const clock = systemClock;
    const bounded = (p: Promise<unknown>): Promise<unknown> => {
      let timer: TimerHandle | undefined;
      const timeout = new Promise<void>((resolve) => (timer = clock.setTimeout(resolve, STOP_TIMEOUT_MS)));
      return Promise.race([p, timeout]).finally(() => clock.clearTimeout(timer!));
    };
    if (final && client.connected) {
      await bounded(new Promise<void>((resolve) => client.publish(final.topic, final.payload, { qos: final.options.qos, retain: final.options.retain ?? false }, () => resolve())));
    }
    await bounded(client.endAsync(!client.connected));
    if (!client.disconnected) client.stream?.destroy();
  }

  /** Drops the connection as a power cut would: no DISCONNECT, so the broker sends the last will. */
  async kill(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = null;
    const client = this.client;
    this.client = null;
    if (!client) return;
    client.stream?.destroy();
    await client.endAsync(true);
  }
}
