/**
 * Delivers webhook events: each event is stored as one pending delivery per subscribed webhook, then
 * POSTed, signed, with a bounded number of attempts, waiting longer after each failure (exponential
 * backoff with jitter, on the injected clock; a receiver's Retry-After is honoured up to the longest
 * wait). Every attempt is recorded (HTTP status, latency, error). Nothing here blocks the caller:
 * `publish` stores the deliveries and returns; sending runs beside the engine, a few at a time. A
 * delivery pending at a stop is sent after the next start. Each attempt takes its delivery with a
 * conditional lease, so coordinators sharing one store never send a delivery twice at once. I/O shell
 * (fetch, the Sql store).
 */
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '@fleet/protocol/clock';
import { WEBHOOK_HEADERS, WebhookEventSchema, type WebhookEvent } from '@fleet/protocol/webhooks';
import { formatIssues } from '@fleet/protocol/parse';
import { signWebhook } from './webhook-signature.js';
import type { DeliveryRecord, WebhookStore } from './webhook-store.js';

export interface DeliveryLimits {
  maxAttempts: number;
  backoffMs: number;
  backoffMaxMs: number;
  timeoutMs: number;
  concurrency: number;
}

/** What one attempt came to. */
export interface AttemptResult {
  deliveryId: number;
  attempt: number;
  delivered: boolean;
  /** The receiver's HTTP status, or null when it never answered. */
  status: number | null;
  latencyMs: number;
  error: string | null;
  /** pending (will be retried at `nextAttemptAt`), delivered or failed (given up). */
  state: DeliveryRecord['status'];
  nextAttemptAt: number | null;
}

export type AttemptOutcome = 'delivered' | 'retry' | 'failed';

export interface WebhookDispatcherOptions {
  store: WebhookStore;
  /** Real-time timers and time for attempts and backoff. */
  timers: Clock;
  logger: Logger;
  limits: DeliveryLimits;
  /** Jitter source. Default Math.random. */
  random?: () => number;
  /** Each finished attempt (metrics). */
  onAttempt?: (outcome: AttemptOutcome, seconds: number) => void;
}

/** The most of a receiver's answer kept for the attempt's error. */
const ERROR_BODY_BYTES = 200;
/** An attempt holds its delivery this much past the timeout before another may take it. */
const LEASE_MARGIN_MS = 5_000;
const USER_AGENT = 'fleet-webhooks/1';

/**
 * The wait after the `attempt`-th failed attempt: `backoffMs · 2^(attempt−1)` capped at `backoffMaxMs`,
 * of which a random half is taken off (equal jitter), so receivers recovering from an outage are not
 * hit by every coordinator's retries at once; never shorter than a Retry-After (capped too). Pure.
 */
export function retryDelay(attempt: number, limits: Pick<DeliveryLimits, 'backoffMs' | 'backoffMaxMs'>, random: () => number, retryAfterMs?: number): number {
  const full = Math.min(limits.backoffMaxMs, limits.backoffMs * 2 ** Math.max(0, attempt - 1));
  const jittered = Math.round(full / 2 + (random() * full) / 2);
  return retryAfterMs === undefined ? jittered : Math.max(jittered, Math.min(retryAfterMs, limits.backoffMaxMs));
}

/** Retry-After in ms (seconds or an HTTP date), if the receiver sent one. */
function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export class WebhookDispatcher {
  /** Deliveries the pump has in flight (the concurrency bound). */
  private readonly inflight = new Set<number>();
  /** Every attempt running (the pump's and sendOnce's), and how to cut each short at stop(). */
  private readonly running = new Set<Promise<unknown>>();
  private readonly aborts = new Map<number, AbortController>();
  private timer: { at: number; handle: TimerHandle } | undefined;
  private started = false;
  private stopped = false;
  /** A pump is reading the store; another asked for meanwhile runs when it ends. */
  private pumping = false;
  private pumpAgain = false;

  constructor(private readonly o: WebhookDispatcherOptions) {}

  /** Starts sending what is pending (deliveries left from the last run included). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.pump();
  }

  /** Stops timers and aborts attempts in flight (their deliveries stay pending); safe twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) this.o.timers.clearTimeout(this.timer.handle);
    this.timer = undefined;
    for (const a of this.aborts.values()) a.abort();
    await Promise.allSettled([...this.running]);
  }

  /**
   * Stores `event` as a delivery to each of `webhookIds` and resolves with their ids. Never rejects
   * (none stored: logged, and no ids). With `queue: false` the deliveries are not sent by the queue:
   * the caller sends them with sendOnce.
   */
  async publish(event: WebhookEvent, webhookIds: readonly string[], options: { queue?: boolean } = {}): Promise<number[]> {
    if (webhookIds.length === 0) return [];
    const parsed = WebhookEventSchema.safeParse(event);
    if (!parsed.success) {
      // Our own bug: an event off the published contract is never sent.
      this.o.logger.error({ eventType: event.type, issues: formatIssues(parsed.error) }, 'webhook event does not match its schema; not sent');
      return [];
    }
    try {
      const now = this.o.timers.now();
      const ids = await this.o.store.enqueue(webhookIds, { id: event.id, type: event.type, body: JSON.stringify(parsed.data) }, now, options.queue === false ? null : now);
      this.pump();
      return ids;
    } catch (err) {
      this.o.logger.error({ err, eventType: event.type }, 'webhook deliveries could not be stored; this event is not sent');
      return [];
    }
  }

  /** Sends one stored delivery now, once, outside the queue (`fleet webhooks test`); resolves with the attempt. */
  async sendOnce(deliveryId: number): Promise<AttemptResult> {
    const d = await this.o.store.delivery(deliveryId);
    if (!d) throw new Error(`no webhook delivery ${deliveryId}`);
    return this.track(this.attempt(d, 1));
  }

  /** Resolves when nothing is in flight (tests). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /**
   * Starts what is due and arms the timer for what is next. One pump reads the store at a time (two
   * would start the same deliveries); the pump's own promise is tracked until the next one is, so
   * idle() and stop() wait for it.
   */
  private pump(): void {
    if (!this.started || this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    void this.track(
      this.pumpOnce()
        .catch((err: unknown) => this.o.logger.error({ err }, 'webhook deliveries could not be read; retried at the next event or attempt'))
        .finally(() => {
          this.pumping = false;
          if (this.pumpAgain) {
            this.pumpAgain = false;
            this.pump();
          }
        }),
    );
  }

  private async pumpOnce(): Promise<void> {
    const now = this.o.timers.now();
    const free = this.o.limits.concurrency - this.inflight.size;
    if (free > 0) {
      for (const d of await this.o.store.due(now, free)) {
        if (this.stopped) return;
        if (!this.inflight.has(d.id)) await this.begin(d, now);
      }
    }
    await this.arm();
  }

  /** One timer, at the earliest pending delivery; none while every slot is busy (a finish pumps). */
  private async arm(): Promise<void> {
    const at = this.inflight.size < this.o.limits.concurrency ? await this.o.store.nextDueAt() : undefined;
    if (this.stopped) return;
    const now = this.o.timers.now();
    if (this.timer && this.timer.at === at) return;
    if (this.timer) this.o.timers.clearTimeout(this.timer.handle);
    this.timer = undefined;
    if (at === undefined) return;
    const handle = this.o.timers.setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, Math.max(0, at - now));
    this.timer = { at, handle };
  }

  private async begin(d: DeliveryRecord, now: number): Promise<void> {
    this.inflight.add(d.id);
    let leased = false;
    try {
      leased = await this.o.store.lease(d.id, now, now + this.o.limits.timeoutMs + LEASE_MARGIN_MS);
    } finally {
      if (!leased || this.stopped) this.inflight.delete(d.id);
    }
    if (!leased || this.stopped) return;
    const max = d.eventType === 'webhook.test' ? 1 : this.o.limits.maxAttempts;
    // The next pump is asked for inside the tracked promise, so idle() never sees a gap between them.
    void this.track(
      this.attempt(d, max)
        .catch((err: unknown) => this.o.logger.error({ err, deliveryId: d.id, webhookId: d.webhookId }, 'webhook attempt failed unexpectedly'))
        .finally(() => {
          this.inflight.delete(d.id);
          this.pump();
        }),
    );
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.running.add(p);
    void p.finally(() => this.running.delete(p)).catch(() => undefined);
    return p;
  }

  /** One attempt: sign, POST, record, and decide what comes next. */
  private async attempt(d: DeliveryRecord, maxAttempts: number): Promise<AttemptResult> {
    const hook = await this.o.store.webhook(d.webhookId);
    const attempt = d.attempts + 1;
    const started = this.o.timers.now();
    let status: number | null = null;
    let error: string | null = null;
    let retryAfter: number | undefined;
    if (!hook) {
      error = 'the webhook was removed';
    } else {
      const abort = new AbortController();
      this.aborts.set(d.id, abort);
      const timestamp = Math.floor(started / 1000);
      const timeout = this.o.timers.setTimeout(() => abort.abort(new Error(`no answer within ${this.o.limits.timeoutMs} ms`)), this.o.limits.timeoutMs);
      try {
        const res = await fetch(hook.url, {
          method: 'POST',
          redirect: 'manual',
          signal: abort.signal,
          headers: {
            'content-type': 'application/json',
            'user-agent': USER_AGENT,
            [WEBHOOK_HEADERS.event]: d.eventType,
            [WEBHOOK_HEADERS.delivery]: String(d.id),
            [WEBHOOK_HEADERS.timestamp]: String(timestamp),
            [WEBHOOK_HEADERS.signature]: signWebhook(hook.secret, timestamp, d.body),
          },
          body: d.body,
        });
        status = res.status;
        const text = await readSome(res, ERROR_BODY_BYTES);
        if (status < 200 || status > 299) {
          error = `HTTP ${status}${text ? `: ${text}` : ''}`;
          retryAfter = retryAfterMs(res.headers.get('retry-after'), this.o.timers.now());
        }
      } catch (err) {
        error = describeFetchError(err, abort.signal);
      } finally {
        this.o.timers.clearTimeout(timeout);
        this.aborts.delete(d.id);
      }
    }
    const end = this.o.timers.now();
    const latencyMs = Math.max(0, end - started);
    const delivered = error === null;
    if (this.stopped && !delivered) {
      // Cut short by stop(): not the receiver's failure; the delivery stays pending for the next start.
      return { deliveryId: d.id, attempt: d.attempts, delivered, status, latencyMs, error, state: 'pending', nextAttemptAt: d.nextAttemptAt };
    }
    const givingUp = !delivered && (attempt >= maxAttempts || !hook);
    const nextAttemptAt = delivered || givingUp ? null : end + retryDelay(attempt, this.o.limits, this.o.random ?? Math.random, retryAfter);
    const state = delivered ? 'delivered' : givingUp ? 'failed' : 'pending';
    if (hook) await this.o.store.recordAttempt(d, { attempt, at: started, status, latencyMs, error }, { status: state, nextAttemptAt });
    this.o.onAttempt?.(delivered ? 'delivered' : givingUp ? 'failed' : 'retry', latencyMs / 1000);
    const fields = { webhookId: d.webhookId, deliveryId: d.id, eventType: d.eventType, attempt, status, latencyMs };
    if (delivered) this.o.logger.debug(fields, 'webhook delivered');
    else if (givingUp) this.o.logger.warn({ ...fields, error }, `webhook delivery failed after ${attempt} attempt(s); given up (fleet webhooks list shows it)`);
    else this.o.logger.info({ ...fields, error, nextAttemptAt }, 'webhook delivery failed; will retry');
    return { deliveryId: d.id, attempt, delivered, status, latencyMs, error, state, nextAttemptAt };
  }
}

/** Up to `max` bytes of the body as text (an error page, for the record); the rest is discarded. */
async function readSome(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const stream = Readable.fromWeb(res.body);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const buf = chunk as Buffer;
      chunks.push(buf);
      size += buf.length;
      if (size >= max) break;
    }
  } catch {
    // The receiver closed mid-answer: what arrived is enough for the record.
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).toString('utf8', 0, Math.min(size, max)).replace(/\s+/g, ' ').trim();
}

function describeFetchError(err: unknown, signal: AbortSignal): string {
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    return reason instanceof Error ? reason.message : 'aborted';
  }
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return `cannot connect: ${cause.code}`;
  if (typeof cause?.message === 'string') return cause.message;
  return err instanceof Error ? err.message : String(err);
}
