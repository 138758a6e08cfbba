/**
 * `GET /v1/events`: the console's live feed as Server-Sent Events (the HTML living standard's
 * EventSource format). Deployments, decisions and audit entries go to every connected client as they
 * happen; device records are coalesced to at most one per device per second; a `clock` event gives the
 * coordinator's time at connect and every few seconds, and a `: ping` comment keeps proxies from
 * closing an idle stream. `handle` takes Node's raw request and response, so any router can mount it
 * (authentication is the router's job; it may hand a re-check, run at every ping, that ends the stream
 * once its credentials have: a logout, a removed user, a new token). A client that stops reading — its
 * socket does not drain for `stallMs`, or its backlog passes a hard bound — is dropped; EventSource
 * reconnects and the page reloads what it shows. A burst (every device going offline with the broker) only backs a reading
 * client up for a moment. I/O shell (node:http).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '@fleet/protocol/clock';
import type { ConsoleEventType } from '@fleet/protocol/console';
import { Coalescer } from './coalescer.js';

export interface EventStreamOptions {
  /** Real-time timers (pings, coalescing). */
  timers: Clock;
  /** The coordinator's clock, for `clock` events (it may run faster in a simulation). */
  now: () => number;
  logger?: Logger;
  /** Comment line to keep the connection alive. Default 15 s. */
  pingMs?: number;
  /** `clock` event period. Default 5 s. */
  clockMs?: number;
  /** At most one `device` event per device per this long. Default 1 s. */
  deviceIntervalMs?: number;
  /** Connected clients at most; more get 503. Default 64. */
  maxClients?: number;
  /** A client whose socket has not drained for this long (real time) is dropped. Default 15 s. */
  stallMs?: number;
  /** A client whose unsent backlog passes this is dropped at once. Default 16 MiB. */
  maxBacklogBytes?: number;
}

/** How long EventSource waits before reconnecting (sent to the client). */
const RETRY_MS = 3000;

interface Client {
  res: ServerResponse;
  who: string;
  /** False once the client's credentials no longer hold (asked of the store: may take a round trip). */
  stillAllowed: (() => boolean | Promise<boolean>) | undefined;
  /** Real time since which a write has waited for the socket to drain. */
  blockedSince: number | undefined;
}

export class EventStream {
  private readonly clients = new Set<Client>();
  private readonly devices: Coalescer<unknown>;
  private nextId = 1;
  private pingTimer: TimerHandle | undefined;
  private clockTimer: TimerHandle | undefined;
  private stopped = false;
  /** Clients dropped for falling behind, since start. */
  dropped = 0;

  constructor(private readonly o: EventStreamOptions) {
    this.devices = new Coalescer(o.timers, o.deviceIntervalMs ?? 1000, (_id, record) => this.broadcast('device', record));
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** A change for every client; without clients it costs nothing. */
  publish(type: Exclude<ConsoleEventType, 'device' | 'clock'>, data: unknown): void {
    if (this.clients.size > 0) this.broadcast(type, data);
  }

  /** A changed device record, coalesced per device. */
  publishDevice(deviceId: string, record: unknown): void {
    if (this.clients.size > 0) this.devices.push(deviceId, record);
  }

  /**
   * Serves one client until it disconnects. `who` names it in logs; `stillAllowed`, asked at every
   * ping, ends the stream when it says no (EventSource reconnects and is refused: the page logs out).
   */
  handle(req: IncomingMessage, res: ServerResponse, who = 'unknown', stillAllowed?: () => boolean | Promise<boolean>): void {
    if (this.stopped || this.clients.size >= (this.o.maxClients ?? 64)) {
      res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '10' });
      res.end(JSON.stringify({ error: { code: 'busy', message: 'too many live event streams open; close a dashboard tab or retry later' } }));
      return;
    }
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Reverse proxies (nginx) buffer responses unless told not to.
      'x-accel-buffering': 'no',
    });
    const client: Client = { res, who, stillAllowed, blockedSince: undefined };
    this.clients.add(client);
    res.write(`retry: ${RETRY_MS}\n\n`);
    this.write(client, this.frame('clock', { now: this.o.now() }));
    const gone = (): void => {
      this.clients.delete(client);
      if (this.clients.size === 0) this.idle();
    };
    res.once('close', gone);
    res.once('error', gone);
    this.arm();
    this.o.logger?.debug({ who, clients: this.clients.size }, 'event stream opened');
  }

  /** Ends every stream and clears every timer; safe twice. */
  stop(): void {
    this.stopped = true;
    for (const c of this.clients) c.res.end();
    this.clients.clear();
    this.idle();
  }

  private frame(type: ConsoleEventType, data: unknown): string {
    return `id: ${this.nextId++}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  private broadcast(type: ConsoleEventType, data: unknown): void {
    const text = this.frame(type, data);
    for (const c of [...this.clients]) this.write(c, text);
  }

  private write(c: Client, text: string): void {
    if (c.res.writableEnded || c.res.destroyed) return;
    const now = this.o.timers.now();
    if (!c.res.write(text) && c.blockedSince === undefined) {
      c.blockedSince = now;
      c.res.once('drain', () => (c.blockedSince = undefined));
    }
    const stalled = c.blockedSince !== undefined && now - c.blockedSince > (this.o.stallMs ?? 15_000);
    if (stalled || c.res.writableLength > (this.o.maxBacklogBytes ?? 16 * 1024 * 1024)) {
      this.dropped++;
      this.o.logger?.warn({ who: c.who, backlogBytes: c.res.writableLength, stalled }, 'event stream client is not reading: dropped (it reconnects and reloads)');
      this.clients.delete(c);
      c.res.destroy();
      if (this.clients.size === 0) this.idle();
    }
  }

  /** Pings a client whose credentials still hold, ends one whose do not (or cannot be checked). */
  private pingIfAllowed(c: Client): void {
    const settle = (allowed: boolean): void => {
      if (!this.clients.has(c)) return;
      if (allowed) this.write(c, ': ping\n\n');
      else this.end(c, 'credentials no longer valid');
    };
    let answer: boolean | Promise<boolean>;
    try {
      answer = c.stillAllowed?.() ?? true;
    } catch {
      answer = false;
    }
    if (typeof answer === 'boolean') settle(answer);
    else answer.then(settle, () => settle(false));
  }

  private end(c: Client, why: string): void {
    this.o.logger?.info({ who: c.who }, `event stream ended: ${why}`);
    this.clients.delete(c);
    c.res.end();
    if (this.clients.size === 0) this.idle();
  }

  /** Timers run only while someone listens. */
  private arm(): void {
    const t = this.o.timers;
    if (!this.pingTimer) {
      const ping = (): void => {
        this.pingTimer = undefined;
        for (const c of [...this.clients]) this.pingIfAllowed(c);
        // The last client may just have been dropped or ended: then the timers rest until the next.
        if (this.clients.size > 0) this.pingTimer = t.setTimeout(ping, this.o.pingMs ?? 15_000);
      };
      this.pingTimer = t.setTimeout(ping, this.o.pingMs ?? 15_000);
    }
    if (!this.clockTimer) {
      const tick = (): void => {
        this.clockTimer = undefined;
        this.broadcast('clock', { now: this.o.now() });
        if (this.clients.size > 0) this.clockTimer = t.setTimeout(tick, this.o.clockMs ?? 5000);
      };
      this.clockTimer = t.setTimeout(tick, this.o.clockMs ?? 5000);
    }
  }

  private idle(): void {
    if (this.pingTimer) this.o.timers.clearTimeout(this.pingTimer);
    if (this.clockTimer) this.o.timers.clearTimeout(this.clockTimer);
    this.pingTimer = undefined;
    this.clockTimer = undefined;
    this.devices.clear();
  }
}
