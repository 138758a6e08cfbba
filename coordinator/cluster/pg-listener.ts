/**
 * LISTEN on a dedicated PostgreSQL connection (a pooled one would hand the subscription to whoever
 * borrows it), reconnecting after it is lost. Notifications sent while it was away are gone, so each
 * (re)connection is reported to `onConnected`: the listener's owner reads again what it may have
 * missed. I/O shell (node-postgres); timers injected.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '@fleet/protocol/clock';
import { errorMessage } from '@fleet/protocol/errors';

export interface PgListenerOptions {
  url: string;
  channels: readonly string[];
  onNotification: (channel: string, payload: string) => void;
  /** After every (re)connection, once LISTEN is in place. */
  onConnected?: () => void;
  logger: Logger;
  timers: Clock;
  /** Wait before reconnecting. Default 1000 ms. */
  retryMs?: number;
  applicationName?: string;
}

export class PgListener {
  private client: pg.Client | undefined;
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(private readonly o: PgListenerOptions) {}

  /** Connects and listens; a failure is retried in the background (resolves either way). */
  async start(): Promise<void> {
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.o.timers.clearTimeout(this.timer);
    this.timer = undefined;
    const client = this.client;
    this.client = undefined;
    if (client) await client.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ connectionString: this.o.url, application_name: this.o.applicationName ?? 'fleet-listener', keepAlive: true, connectionTimeoutMillis: 10_000 });
    const lost = (reason: string): void => {
      if (this.client !== client) return;
      this.client = undefined;
      this.o.logger.warn({ reason }, 'lost the notification connection; reconnecting');
      client.end().catch(() => undefined);
      this.retry();
    };
    client.on('error', (err) => lost(errorMessage(err)));
    client.on('end', () => lost('closed'));
    client.on('notification', (n) => {
      try {
        this.o.onNotification(n.channel, n.payload ?? '');
      } catch (err) {
        this.o.logger.error({ err, channel: n.channel }, 'notification handler failed');
      }
    });
    try {
      await client.connect();
      for (const channel of this.o.channels) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (err) {
      this.o.logger.warn({ err: errorMessage(err) }, 'cannot listen for notifications; retrying');
      await client.end().catch(() => undefined);
      this.retry();
      return;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.o.onConnected?.();
  }

  private retry(): void {
    if (this.stopped) return;
    this.timer = this.o.timers.setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, this.o.retryMs ?? 1000);
  }
}
